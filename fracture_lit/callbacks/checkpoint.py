"""ModelCheckpoint that does not write the same weights twice in one epoch."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint


class ModelCheckpointOnce(ModelCheckpoint):
    """``save_last=True`` without a second serialisation and write of the same state.

    When an epoch improves, Lightning saves the best checkpoint and then ``last.ckpt`` with
    the same weights and optimiser state (134 MB for resnet18 + Adam, twice per epoch).
    Here ``last.ckpt`` becomes a hard link to the file just written at the same step: the
    same bytes on disk, one write. It stays a regular, independent file name: Lightning
    replaces checkpoints by writing a temporary file and renaming it over the old name,
    so a later ``last.ckpt`` never touches the best file's data (and deleting an old best
    leaves ``last.ckpt`` intact). Elsewhere (remote storage, no hard links, another step)
    it saves normally.
    """

    @property
    def state_key(self) -> str:
        # Lightning's own key, so checkpoints written before (or by a plain ModelCheckpoint)
        # restore this callback's state on resume, and the other way round.
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

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
