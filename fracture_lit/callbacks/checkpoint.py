"""``ModelCheckpoint`` whose ``last.ckpt`` really is the last epoch.

Lightning 2.6 writes ``last.ckpt`` only in epochs where a top-k checkpoint was saved too,
so after an epoch that did not improve the monitored metric ``last.ckpt`` is older than
the run, and a run resumed from it repeats epochs and ends differently. This subclass
writes it at the end of every epoch, as ``save_last=True`` promises.

When the epoch improved, the best checkpoint and ``last.ckpt`` hold the same state (134 MB
for resnet18 + Adam); then ``last.ckpt`` becomes a hard link to the file just written:
the same bytes on disk, one serialisation and one write instead of two. It stays an
independent name: Lightning replaces a checkpoint by writing a temporary file and renaming
it over the old name, so a later ``last.ckpt`` never touches the best file's data (and
deleting an old best leaves ``last.ckpt`` intact). On remote storage, where hard links
fail, or at another step, it is written normally.

For sweeps, where every job's checkpoints add up (``callbacks=sweep_lean``):
``best_weights_only`` writes the best checkpoint without optimizer and callback states
(about a third of the size with Adam; eval, review, ensembles and serve only read the
weights, hyperparameters and the ``fracture_lit`` block, all kept), while ``last.ckpt``
stays complete for resuming; ``remove_last_when_done`` deletes ``last.ckpt`` once the job
has recorded itself done (:func:`drop_last_when_done`), when nothing resumes from it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from fracture_lit.utils.atomic import unique_tmp

log = logging.getLogger(__name__)


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` plus a ``last.ckpt`` after every epoch (same
    qualified name, so its state in existing checkpoints still loads), and the sweep
    options above."""

    def __init__(
        self,
        *args: Any,
        best_weights_only: bool = False,
        remove_last_when_done: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.best_weights_only = bool(best_weights_only)
        self.remove_last_when_done = bool(remove_last_when_done)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = self._should_save_on_train_epoch_end(trainer)
        self._save_with_last(trainer, due, super().on_train_epoch_end, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = not self._should_save_on_train_epoch_end(trainer)
        self._save_with_last(trainer, due, super().on_validation_end, pl_module)

    def _save_with_last(self, trainer: L.Trainer, due: bool, save, pl_module) -> None:  # noqa: ANN001
        due = due and not self._should_skip_saving_checkpoint(trainer)
        save(trainer, pl_module)
        if due and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        source = self._last_checkpoint_saved
        same_step = bool(source) and self._last_global_step_saved == trainer.global_step
        is_last = Path(filepath).stem.startswith(self.CHECKPOINT_NAME_LAST)
        if self.best_weights_only and not is_last:
            trainer.save_checkpoint(filepath, weights_only=True)
        else:
            # last.ckpt never links to a weights-only best: it must resume the optimizer.
            linkable = same_step and is_last and source != filepath and not self.best_weights_only
            if not (linkable and self._link(trainer, source, filepath)):
                super()._save_checkpoint(trainer, filepath)
                return
        # The bookkeeping super() does after writing (the loggers learn of the checkpoint).
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)

    def _link(self, trainer: L.Trainer, source: str, target: str) -> bool:
        """Hard-link ``target`` to ``source`` atomically; False where that is not possible."""
        ok = _is_local_file_protocol(target)
        if ok and trainer.is_global_zero:
            tmp = unique_tmp(target)  # never shared with another writer of this folder
            try:
                os.link(source, tmp)
                os.replace(tmp, target)
            except OSError:
                ok = False
                if os.path.lexists(tmp):
                    os.remove(tmp)
        # Every rank takes the same branch (rank 0 decides), as the save itself is collective.
        return bool(trainer.strategy.broadcast(ok))


def drop_last_when_done(cfg: DictConfig, record: dict[str, Any]) -> Path | None:
    """Delete ``last.ckpt`` of a job recorded done when its checkpoint callback asks to
    (``remove_last_when_done``): it only served to resume. Runs after ``metrics.json`` is
    written, so a job killed before that still resumes from it."""
    conf = OmegaConf.select(cfg, "callbacks.model_checkpoint", default=None)
    if record.get("status") != "done" or not conf or not conf.get("remove_last_when_done"):
        return None
    last = Path(str(conf.dirpath)) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
    if not last.is_file() or str(last) == str(record.get("best_model_path")):
        return None
    size = last.stat().st_size
    last.unlink()
    log.info("Removed %s (%.1f MB; only needed to resume, the job is done)", last, size / 1e6)
    return last
