"""The W&B run of a training job: its name, group and id, and closing it between jobs.

A sweep's jobs must not merge into one W&B run (a new ``WandbLogger`` joins any live
``wandb.run``), must tell themselves apart in the dashboard, and a resumed job must
continue the run that wrote its checkpoint (NOTES-hydra-ddp-wandb.md, trap 4).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

__all__ = ["checkpoint_wandb_id", "finish_wandb", "is_multirun", "job_name", "wandb_settings"]

log = logging.getLogger("fracture_lit.train")


def job_name(cfg: DictConfig) -> str:
    """A sweep job's overrides (``model=resnet18,seed=1``), or the task name."""
    if HydraConfig.initialized():
        overrides = HydraConfig.get().job.override_dirname
        if overrides:
            return overrides
    return str(cfg.task_name)


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def wandb_settings(cfg: DictConfig) -> dict[str, Any]:
    """Name, group and (on resume) id of the job's W&B run.

    * name: the job's overrides (``model=resnet18,seed=1``), so sweep runs tell themselves
      apart in the dashboard;
    * group: ``logger.wandb.group`` when set, else the task name, plus the sweep's id in a
      multirun, so two sweeps of the same task never share a group;
    * id: resuming from a checkpoint continues the W&B run that wrote it.
    """
    conf = cfg.logger.wandb
    group = conf.get("group")
    if not group:
        group = str(cfg.task_name)
        if is_multirun():
            group = f"{group}-{Path(HydraConfig.get().sweep.dir).name}"
    out: dict[str, Any] = {"name": conf.get("name") or job_name(cfg), "group": group}
    if cfg.get("ckpt_path") and not conf.get("id"):
        run_id = checkpoint_wandb_id(cfg.ckpt_path)
        if run_id:
            out.update(id=run_id, resume="allow")
            log.info("W&B: resuming run %s from %s", run_id, cfg.ckpt_path)
    return out


def checkpoint_wandb_id(ckpt_path: str) -> str | None:
    """The W&B run id a checkpoint was written under (read with weights_only=True)."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, ValueError):
        return None  # the fit itself reports an unreadable checkpoint
    return (checkpoint.get("fracture_lit") or {}).get("wandb_run_id")


def finish_wandb() -> None:
    """Close a live W&B run so the next sweep job starts its own instead of merging; an
    offline run says how to upload it."""
    if "wandb" not in sys.modules:  # never imported: no run to close (and no import cost)
        return
    import wandb

    run = wandb.run
    if run is None:
        return
    offline = bool(run.offline)
    run_dir = Path(run.dir).parent
    try:
        wandb.finish()
    except Exception as error:  # noqa: BLE001 - closing must not hide how the job ended
        # SLURM signals every process of a preempted step, W&B's service included.
        log.warning(
            "W&B could not close the run cleanly (%r); its files in %s are "
            "kept and a resumed job continues the same run.",
            error,
            run_dir,
        )
        return
    if offline:
        log.info("W&B run recorded offline; upload it with: wandb sync %s", run_dir)
