"""Feed an Optuna search's pruner each epoch's monitored metric, and stop when it says so.

Hydra's Optuna sweeper runs each trial as a Hydra job, possibly in another process
(joblib), on another machine (SLURM) or on several ranks (DDP), so the trial object never
reaches the training code (lightning-hydra-template #176). This callback finds its trial
in the study storage instead (``fracture_lit.utils.search_study``): the sweep folder
records where the study lives, and trial ``n`` runs in job folder ``n``.

Only global rank 0 talks to the study; the decision is broadcast so every rank stops at
the same epoch. A pruned trial stops like an early-stopped one (Lightning's
``should_stop``, after the epoch's checkpoints are written); ``train`` then records the
job as ``pruned`` with its last epoch, and the sweeper tells the study PRUNED. Outside an
Optuna search with a pruner (a single run, a grid sweep) the callback does nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from fracture_lit.utils.search_study import (
    PRUNED_EPOCH_ATTR,
    finite,
    open_study,
    read_search_record,
    trial_of_job,
)

__all__ = ["OptunaPruning", "pruned_by"]

log = logging.getLogger(__name__)
_MODES = {"max": "MAXIMIZE", "min": "MINIMIZE"}


def _this_job() -> tuple[Path, int] | None:
    """(sweep folder, job number) when this process runs a sweep job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.job.get("num") is None:
        return None
    return Path(str(hydra_cfg.sweep.dir)), int(hydra_cfg.job.num)


class OptunaPruning(L.Callback):
    """Report ``monitor`` to this job's trial after every validation; stop when pruned.

    ``pruned`` holds ``{epoch, monitor, value, pruner}`` once the trial was pruned.
    """

    def __init__(self, monitor: str = "val/auroc", monitor_mode: str = "max") -> None:
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.pruned: dict[str, Any] | None = None
        self._trial: Any = None
        self._pruner = "none"
        # The epoch a previous attempt of this trial was pruned at (killed before its
        # job recorded it): the resumed fit stops at once.
        self._pruned_before: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or self._trial is not None:
            return
        job = _this_job()
        record = read_search_record(job[0]) if job else None
        pruner = (record or {}).get("pruner") or {}
        if job is None or record is None or pruner.get("name", "none") == "none":
            return
        sweep_dir, num = job
        try:
            study = open_study(record)
            self._trial = trial_of_job(study, sweep_dir, num)
        except LookupError as error:
            log.warning("Not pruned: %s (%s)", error, sweep_dir)
            return
        self._pruner = str(pruner["name"])
        self._pruned_before = self._trial.storage.get_trial(self._trial._trial_id).user_attrs.get(
            PRUNED_EPOCH_ATTR
        )
        expected = _MODES.get(self.monitor_mode)
        if expected and study.direction.name != expected:
            log.warning(
                "The search %ss but monitor_mode=%s: the %s pruner compares %s the wrong "
                "way round (set hydra.sweeper.direction to match monitor_mode).",
                study.direction.name.lower(),
                self.monitor_mode,
                self._pruner,
                self.monitor,
            )
        log.info("Trial %d reports %s to the %s pruner each epoch", num, self.monitor, self._pruner)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        before = self._pruned_before
        if _decide(trainer, before is not None):
            self._stop(trainer, int(before or 0), None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only the fit's own validations: not the sanity check, nor the evaluation of the
        # best checkpoint that follows the fit.
        fitting = trainer.state.fn == TrainerFn.FITTING
        if not fitting or trainer.sanity_checking or self.pruned is not None:
            return
        epoch = trainer.current_epoch
        metric = trainer.callback_metrics.get(self.monitor)
        value = float(metric) if metric is not None else None
        prune = False
        if trainer.is_global_zero and self._trial is not None and value is not None:
            self._trial.report(value, step=epoch)
            prune = bool(self._trial.should_prune())
        if _decide(trainer, prune):
            self._stop(trainer, epoch, value)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Tell the study once the pruned epoch's checkpoints are on disk: the sweeper
        then records the trial PRUNED, not failed."""
        if self.pruned is not None and trainer.is_global_zero and self._trial is not None:
            self._trial.storage.set_trial_user_attr(
                self._trial._trial_id, PRUNED_EPOCH_ATTR, self.pruned["epoch"]
            )

    def _stop(self, trainer: L.Trainer, epoch: int, value: float | None) -> None:
        self.pruned = {
            "epoch": epoch,
            "monitor": self.monitor,
            "value": finite(value),
            "pruner": self._pruner,
        }
        trainer.should_stop = True
        if trainer.is_global_zero:
            log.info(
                "Trial pruned by the %s pruner after epoch %d (%s = %s): stopping; the "
                "checkpoints of this epoch are kept.",
                self._pruner,
                epoch,
                self.monitor,
                value,
            )


def _decide(trainer: L.Trainer, on_rank_zero: bool) -> bool:
    """Rank 0's decision, the same on every rank (every rank must call this)."""
    if trainer.world_size > 1:
        return bool(trainer.strategy.broadcast(bool(on_rank_zero), src=0))
    return bool(on_rank_zero)


def pruned_by(trainer: L.Trainer) -> dict[str, Any] | None:
    """What :class:`OptunaPruning` recorded when it stopped this fit, else None."""
    for callback in trainer.callbacks:
        if isinstance(callback, OptunaPruning) and callback.pruned is not None:
            return callback.pruned
    return None
