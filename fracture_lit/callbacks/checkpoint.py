"""``ModelCheckpoint`` whose ``last.ckpt`` really is the last epoch.

Lightning 2.6 writes ``last.ckpt`` only in epochs where a top-k checkpoint was saved too,
so after an epoch that did not improve the monitored metric ``last.ckpt`` is older than
the run, and a run resumed from it repeats epochs and ends differently. This subclass
writes it at the end of every epoch, as ``save_last=True`` promises.
"""

from __future__ import annotations

import lightning as L
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
