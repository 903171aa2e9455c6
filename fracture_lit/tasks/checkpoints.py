"""The checkpoint (or ensemble) an inference task runs, as its config asks for it."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from fracture_lit.inference.ensemble import Ensemble, load_ensemble

__all__ = ["configured_ensemble"]


def configured_ensemble(cfg: DictConfig, **extra: Any) -> Ensemble:
    """``ckpt_path`` (one checkpoint, a list or a sweep folder) with the config's ``tta``,
    ``threshold`` and ``batch_size``, on CUDA when there is one and ``device`` allows it."""
    device = "cuda" if torch.cuda.is_available() and cfg.get("device", "auto") != "cpu" else "cpu"
    return load_ensemble(
        cfg.ckpt_path,
        tta=cfg.get("tta", "none"),
        threshold=cfg.get("threshold"),
        device=device,
        batch_size=int(cfg.batch_size),
        **extra,
    )
