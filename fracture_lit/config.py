"""Where the Hydra config tree lives, and the resolvers it uses.

The configs are kept in the repository's top-level ``conf/`` and ship inside the wheel as
``fracture_lit/conf``; ``CONFIG_DIR`` finds whichever exists, so ``python -m
fracture_lit.train`` works from any working directory, from a checkout or an install.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find_config_dir() -> Path:
    override = os.environ.get("FRACTURE_LIT_CONFIG_DIR")
    candidates = [Path(override)] if override else []
    candidates += [_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"]
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "fracture_lit cannot find its Hydra configs; looked in "
        + ", ".join(str(c) for c in candidates)
        + ". Reinstall the package (`make install`) or set FRACTURE_LIT_CONFIG_DIR."
    )


CONFIG_DIR = _find_config_dir()


def _run_id() -> str:
    """A short id unique to this launch, shared with DDP children through the environment.

    ``${now:...}`` alone collides when two sweeps start in the same second, and every DDP
    rank must resolve the same folder, so the id is made once and inherited.
    """
    key = "FRACTURE_LIT_RUN_ID"
    if key not in os.environ:
        os.environ[key] = uuid.uuid4().hex[:6]
    return os.environ[key]


# Preprocessing that turns a greyscale radiograph into colour (data.preprocess).
COLOUR_PREPROCESSING = frozenset({"jet"})


def starts_pretrained(weights: Any, pretrained: Any = None, pretrained_file: Any = None) -> bool:
    """Whether ``model.weights`` (or its deprecated ``pretrained``/``pretrained_file``) asks
    for trained starting weights: ``imagenet`` or a file, anything but none/null/false."""
    if pretrained_file not in (None, ""):
        return True
    if pretrained is not None:
        return bool(pretrained)
    return weights not in (None, False, "") and str(weights).strip().lower() not in (
        "none",
        "null",
    )


def input_channels(
    weights: Any, pretrained: Any = None, pretrained_file: Any = None, preprocess: Any = None
) -> int:
    """Channels the backbone's first layer takes: 3 where ImageNet weights, a weights file or
    a colour preprocessing need them, else 1 (a greyscale radiograph repeated 3 times costs a
    3-channel first convolution and carries no more information)."""
    steps = [preprocess] if isinstance(preprocess, str) else list(preprocess or [])
    needs_colour = starts_pretrained(weights, pretrained, pretrained_file) or any(
        str(step) in COLOUR_PREPROCESSING for step in steps
    )
    return 3 if needs_colour else 1


def source_names(sources: Any) -> str:
    """``data.sources`` as a sweep's values, ``fracatlas,multiregion``: the names of its
    entries (a name, a ``{name, root, ...}`` entry, or the keys of a dict keyed by name).
    ``experiment=leave_one_dataset_out`` sweeps ``data.held_out`` over them."""
    if hasattr(sources, "keys"):
        return ",".join(str(name) for name in sources)
    names = [entry if isinstance(entry, str) else entry.get("name") for entry in sources or ()]
    return ",".join(str(name) for name in names)


def group_options(group: str) -> tuple[str, ...]:
    """The options of a config group (``conf/<group>/*.yaml``, ``_``-prefixed partials
    excluded): the one list of, e.g., the finders ``python -m fracture_lit.tune`` runs."""
    return tuple(
        sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))
    )


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the config tree uses (idempotent)."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", _run_id, use_cache=True)
    if not OmegaConf.has_resolver("cwd"):
        # The launch directory; unlike ${hydra:runtime.cwd} it resolves before Hydra has
        # set its runtime config (sweep folders are resolved that early).
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("input_channels"):
        # model.in_chans: 1 for greyscale from scratch, 3 for imagenet/a file or jet.
        OmegaConf.register_new_resolver("input_channels", input_channels)
    if not OmegaConf.has_resolver("source_names"):
        OmegaConf.register_new_resolver("source_names", source_names)
