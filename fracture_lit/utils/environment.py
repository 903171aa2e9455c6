"""Process-level settings made once, before anything heavy is imported or started."""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any

import torch

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


def resolve_precision(precision: str | int | None) -> str | int:
    """``auto``: bf16 autocast on GPUs that support it, full precision elsewhere.

    bf16 on CPU is slower than fp32 on most CPUs, so it is not picked there.
    """
    if precision not in (None, "auto"):
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def resolve_trainer_overrides(trainer_cfg: Any) -> dict[str, Any]:
    """Trainer arguments that depend on the machine rather than on the config alone."""
    overrides: dict[str, Any] = {"precision": resolve_precision(trainer_cfg.get("precision"))}
    if trainer_cfg.get("sync_batchnorm"):
        # SyncBatchNorm needs CUDA; DDP on CPU (gloo) keeps per-process batch norm.
        on_gpu = trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto") and (
            torch.cuda.is_available()
        )
        overrides["sync_batchnorm"] = bool(on_gpu)
    return overrides


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
