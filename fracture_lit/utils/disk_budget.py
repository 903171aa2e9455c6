"""What a sweep job leaves on disk, estimated before it runs; what a folder uses after.

A job's checkpoints dominate: float32 weights (parameters and buffers) plus, in a complete
checkpoint, the optimizer's state (Adam keeps two values per parameter, SGD with momentum
one). The default checkpoint callback keeps the best checkpoint and ``last.ckpt``, both
complete (one file when they are the same epoch, two otherwise); the ``sweep_lean`` preset
keeps the best weights only and removes ``last.ckpt`` once the job is done. While a job
writes a checkpoint its temporary file briefly exists beside the old one.

The Hydra callback that checks a sweep against its free space before the first job is
``fracture_lit/sweeps/disk_check.py``; it counts parameters there (models layer).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.errors import UserError

MB = 1_000_000
BYTES_PER_VALUE = 4  # float32 weights and optimizer states
#: Hyperparameters, metric states, loops, generator states: per checkpoint file.
CHECKPOINT_OVERHEAD = 1 * MB
#: Per job, estimates from real runs: review/ (ROC, PR, confusion PNGs, predictions,
#: Grad-CAM panels, ~3 MB) plus report.html (embeds them, ~4 MB); an offline W&B run
#: (history, the review images again); csv logs, manifest, logs and records.
REVIEW_BYTES = 10 * MB
WANDB_BYTES = 10 * MB
OTHER_BYTES = 1 * MB
#: States the optimizer keeps per parameter, by class name (unknown: 2, as Adam).
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "nadam": 2, "radam": 2, "adamax": 2, "rmsprop": 2}


class DiskBudgetError(UserError, OSError):
    """A sweep that cannot fit the free space of its folder's file system."""


def human(n: float) -> str:
    """``134.2 MB``, ``12.40 GB``: decimal units, as ``df -H`` prints them."""
    if abs(n) >= 1000 * MB:
        return f"{n / (1000 * MB):.2f} GB"
    return f"{n / MB:.1f} MB"


def optimizer_slots(target: str, settings: dict[str, Any]) -> int:
    """States per parameter of ``torch.optim.<Name>`` with ``settings``."""
    name = target.rsplit(".", 1)[-1].lower()
    if name == "sgd":
        return 1 if float(settings.get("momentum") or 0) > 0 else 0
    if name == "adam" and settings.get("amsgrad"):
        return 3
    return OPTIMIZER_SLOTS.get(name, 2)


@dataclass(frozen=True)
class JobNeed:
    """One job's disk need: what it leaves when done, and the extra while it runs."""

    weights: int  # bytes of a weights-only checkpoint
    full: int  # bytes of a complete checkpoint (weights + optimizer state)
    best_weights_only: bool
    remove_last: bool  # last.ckpt removed once the job is done
    extras: int  # review, W&B, logs

    @property
    def done(self) -> int:
        """Left when the job is done (best and last may be two complete files)."""
        best = self.weights if self.best_weights_only else self.full
        return best + (0 if self.remove_last else self.full) + self.extras

    @property
    def running(self) -> int:
        """More while it runs: a ``last.ckpt`` removed at the end, and the temporary file
        of the checkpoint being written."""
        return (self.full if self.remove_last else 0) + self.full


def job_need(
    values: int,
    slots: int,
    *,
    best_weights_only: bool = False,
    remove_last: bool = False,
    review: bool = True,
    wandb: bool = False,
) -> JobNeed:
    """The need of a job whose network has ``values`` parameters and buffers and whose
    optimizer keeps ``slots`` states per parameter (every parameter counted as trained:
    a phase that unfreezes the backbone later grows the state to that)."""
    weights = values * BYTES_PER_VALUE + CHECKPOINT_OVERHEAD
    full = weights + slots * values * BYTES_PER_VALUE
    extras = OTHER_BYTES + (REVIEW_BYTES if review else 0) + (WANDB_BYTES if wandb else 0)
    return JobNeed(weights, full, best_weights_only, remove_last, extras)


def sweep_need(needs: list[JobNeed], parallel: int) -> int:
    """Bytes the sweep adds: every job's files when done, plus the largest running extra
    times the jobs running at once."""
    if not needs:
        return 0
    running = sorted((n.running for n in needs), reverse=True)[: max(1, parallel)]
    return sum(n.done for n in needs) + sum(running)


def free_bytes(folder: Path) -> int:
    """Free bytes of the file system ``folder`` will be on (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def folder_bytes(folder: Path) -> int:
    """Disk used under ``folder`` (allocated blocks; hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (stat.st_dev, stat.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += getattr(stat, "st_blocks", 0) * 512 or stat.st_size
    return total
