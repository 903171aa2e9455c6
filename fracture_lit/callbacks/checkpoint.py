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
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` plus a ``last.ckpt`` after every epoch (same
    qualified name, so its state in existing checkpoints still loads)."""

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
        linkable = same_step and is_last and source != filepath
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
            tmp = f"{target}.link-tmp"
            try:
                if os.path.lexists(tmp):
                    os.remove(tmp)
                os.link(source, tmp)
                os.replace(tmp, target)
            except OSError:
                ok = False
        # Every rank takes the same branch (rank 0 decides), as the save itself is collective.
        return bool(trainer.strategy.broadcast(ok))
