"""The old import path of the built-in DataModules, for run folders written before the
dataset registry.

Their ``config.yaml`` names ``fracture_lit.data.datamodules.<Class>`` as ``data._target_``,
and ensembles and evaluations instantiate that config again. Each class is looked up in the
registry by name, so this module lists nothing; configs name the dataset's own module
(``fracture_lit.data.datasets.<name>``).
"""

from __future__ import annotations

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.registry import registered_datasets


def __getattr__(name: str) -> type[FractureDataModule]:
    for cls in registered_datasets().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
