"""Process-level settings made once, before anything heavy is imported or started."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
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


# CPU flags of native bf16 arithmetic (Intel AMX, AVX-512 BF16; AMD Zen 4+ has the latter).
# Without them bf16 is emulated and slower than fp32, so ``auto`` keeps fp32.
FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively (checked at run time, not at install)."""
    return bool(FAST_BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))


#: ``trainer.accelerator`` values; every one but cpu and mps means CUDA where there is one.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: ``trainer.precision`` values; ``auto`` is resolved by :func:`resolve_precision`.
PRECISIONS = (
    "auto",
    "32",
    "32-true",
    "64",
    "64-true",
    "16",
    "16-mixed",
    "16-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
)
#: ``device`` of eval, predict and serve: auto (CUDA when there is one), cpu or cuda.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def uses_gpu(accelerator: str | None) -> bool:
    """Whether a trainer with this ``accelerator`` setting runs on a CUDA GPU here."""
    wants_gpu = accelerator in (None, "auto", "gpu", "cuda")
    return wants_gpu and torch.cuda.is_available()


def resolve_precision(
    precision: str | int | None,
    accelerator: str | None = "auto",
    flags: frozenset[str] | None = None,
) -> str | int:
    """``auto``: bf16 autocast where the hardware computes bf16 fast, fp32 elsewhere.

    GPUs with bf16 support (Ampere and newer) and CPUs with AMX or AVX-512 BF16 get
    ``bf16-mixed``; older GPUs (fp16 would need loss scaling) and other CPUs (bf16 is
    emulated there, slower than fp32) keep ``32-true``. Other values pass unchanged.
    """
    if precision not in (None, "auto"):
        return precision
    if uses_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_fast_bf16(flags) else "32-true"


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
