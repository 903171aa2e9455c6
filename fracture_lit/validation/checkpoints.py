"""Checkpoints named in a config: refused before anything runs when unsafe, missing or
trained with another backbone (the same one-line refusal as loading them)."""

from __future__ import annotations

from typing import Any

from fracture_lit.errors import ConfigError
from fracture_lit.models.ensemble import checkpoint_paths
from fracture_lit.models.loading import check_checkpoint
from fracture_lit.validation.checkers import MISSING, get_value

__all__ = ["check_checkpoint_backbone", "check_checkpoint_path"]


def check_checkpoint_path(cfg: Any, key: str = "ckpt_path", *, required: bool = True) -> None:
    """Refuse a missing or unsafe checkpoint with loading's one line (weights_only=True)."""
    value = get_value(cfg, key)
    if value is MISSING or value is None:
        if required:
            raise ConfigError(key, value, "a checkpoint is required", f"Pass {key}=<file>.ckpt.")
        return
    # One checkpoint, a list of them or a sweep folder (an ensemble): each is checked.
    for path in checkpoint_paths(value):
        check_checkpoint(path)


def check_checkpoint_backbone(cfg: Any) -> None:
    """train ckpt_path=: the same refusal as eval/predict, and the same backbone."""
    value = get_value(cfg, "ckpt_path")
    if value in (MISSING, None):
        return
    checkpoint = check_checkpoint(str(value))
    trained = (checkpoint.get("hyper_parameters") or {}).get("backbone")
    wanted = get_value(cfg, "model.backbone")
    if trained and isinstance(wanted, str) and trained != wanted:
        raise ConfigError(
            "ckpt_path",
            value,
            f"was trained with backbone {trained!r} but model.backbone={wanted}",
            f"Resume with model.backbone={trained} (or the model/ preset that has it).",
        )
