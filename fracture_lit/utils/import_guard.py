"""Start-up time: import a dependency without the optional packages it loads "just in case".

Two dependencies import a heavy optional package the moment they load, although nothing
here uses it through them: timm imports wandb for one optional logging helper
(``timm.utils.summary``, ``try: import wandb``), and scikit-learn, which pytorch-grad-cam
imports for a PCA the review never uses, imports pandas to recognise DataFrames
(``sklearn.utils.fixes``). That is 1-2 s of every training run on 2 CPU cores (README,
Performance). :func:`import_without` imports such a dependency while those packages look
absent (``sys.modules[name] = None`` makes ``import name`` raise ImportError, which both
dependencies expect), then makes them importable again: ``logger=wandb`` still imports
wandb when it starts a run, and only the dependency's own optional helper stays off.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_without"]


def import_without(module: str, *optional: str) -> ModuleType:
    """Import ``module`` with the packages ``optional`` hidden from it while it loads.

    A package already imported stays as it is (nothing to save), and so does ``module`` if
    it is; afterwards ``import <optional>`` works again as usual.
    """
    hidden = [name for name in optional if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        return importlib.import_module(module)
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
