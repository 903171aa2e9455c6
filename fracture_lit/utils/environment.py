"""Process-level settings made once, before anything heavy is imported or started."""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any

# Precision lives in utils/precision.py; these names stay importable from here.
from fracture_lit.utils.precision import (
    PRECISIONS,
    cpu_flags,
    cpu_has_fast_bf16,
    resolve_precision,
    uses_gpu,
)

__all__ = [
    "ACCELERATORS",
    "DEVICE_CHOICES",
    "PRECISIONS",
    "configure_wandb_mode",
    "cpu_flags",
    "cpu_has_fast_bf16",
    "resolve_precision",
    "resolve_trainer_overrides",
    "route_lightning_logs_through_hydra",
    "skip_deterministic_memory_fill",
    "uses_gpu",
    "wandb_logged_in",
]

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """Whether W&B has credentials (env var or ~/.netrc), without prompting."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def configure_wandb_mode() -> str:
    """Offline when there is no login, so a run never prompts or fails for credentials.

    W&B prompting for a key would hang a DDP child or a SLURM job forever.
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    if "WANDB_MODE" not in os.environ and not wandb_logged_in():
        os.environ["WANDB_MODE"] = "offline"
        log.warning("W&B: no login found; logging offline (sync later with `wandb sync`).")
    return os.environ.get("WANDB_MODE", "online")


#: ``trainer.accelerator`` values; every one but cpu and mps means CUDA where there is one.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: ``device`` of eval, predict and serve: auto (CUDA when there is one), cpu or cuda.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_trainer_overrides(trainer_cfg: Any) -> dict[str, Any]:
    """Trainer arguments that depend on the machine rather than on the config alone."""
    accelerator = trainer_cfg.get("accelerator", "auto")
    overrides: dict[str, Any] = {
        "precision": resolve_precision(trainer_cfg.get("precision"), accelerator)
    }
    if trainer_cfg.get("sync_batchnorm"):
        # SyncBatchNorm needs CUDA; DDP on CPU (gloo) keeps per-process batch norm.
        overrides["sync_batchnorm"] = uses_gpu(accelerator)
    return overrides


def skip_deterministic_memory_fill() -> None:
    """Keep deterministic kernels but stop filling new tensors with NaN.

    With ``trainer.deterministic`` on, torch also fills every tensor from ``torch.empty``
    with NaN, so that an op reading uninitialised memory would at least be repeatable. No op
    in a fit reads it, and the fill cost 4% of a resnet18 train step on CPU (median of 60
    paired steps). PyTorch's docs say a valid program may turn it off and stay
    deterministic; the resume tests check that a resumed run matches an uninterrupted one.
    """
    import torch.utils.deterministic

    if torch.are_deterministic_algorithms_enabled():
        torch.utils.deterministic.fill_uninitialized_memory = False


def route_lightning_logs_through_hydra() -> None:
    """Lightning adds its own stderr handler on import; with Hydra's root handlers in place
    every message would print twice. Drop Lightning's and let records propagate to Hydra's
    (console and the run's train.log)."""
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
