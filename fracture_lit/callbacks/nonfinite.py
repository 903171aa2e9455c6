"""Stop training at the first step whose loss is NaN or infinite, saying where.

A NaN loss otherwise trains on for the rest of the run (every weight NaN after the next
optimizer step) and surfaces epochs later as an AUROC of 0.5 or a metric error.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from fracture_lit.errors import UserError

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`NonFiniteLossError` naming the epoch and step of a NaN/inf loss.

    On CPU every step's loss is checked before its backward pass, so the optimizer never
    spreads a NaN into the weights. On a GPU reading the loss each step would make the host
    wait for the device every step; there the first non-finite step is recorded on the
    device and read every ``check_every_n_steps`` (default: ``trainer.log_every_n_steps``,
    when the logger reads the loss anyway), before validation, at the end of each epoch
    and before any checkpoint is written. Either way ``last.ckpt`` and the best checkpoint keep finite
    weights, and the error names the first bad step.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        # (global step, epoch, batch, loss) of the first non-finite loss, on the device;
        # step -1 while every loss was finite.
        self._first_bad: torch.Tensor | None = None

    def _every(self, trainer: L.Trainer) -> int:
        if self.check_every_n_steps is not None:
            return max(1, int(self.check_every_n_steps))
        on_cpu = trainer.strategy.root_device.type == "cpu"
        return 1 if on_cpu else max(1, int(trainer.log_every_n_steps))

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        where = (trainer.global_step, trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_idx)
        every = self._every(trainer)
        if every == 1:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise _error(value, *where)
            return
        loss = loss.detach().float()
        if self._first_bad is None:
            self._first_bad = torch.tensor([-1.0, 0.0, 0.0, 0.0], device=loss.device)
        now = torch.stack([loss.new_tensor(float(v)) for v in where] + [loss])
        newly = ~torch.isfinite(loss) & (self._first_bad[0] < 0)
        self._first_bad = torch.where(newly, now, self._first_bad)  # no host sync
        if (trainer.global_step + 1) % every == 0:
            self._check()

    def _check(self) -> None:
        if self._first_bad is None:
            return
        step, epoch, batch, value = self._first_bad.tolist()
        if step >= 0:
            raise _error(value, int(step), int(epoch), int(batch))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check()  # before validation meets NaN weights

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check()

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._check()  # raised here, the checkpoint is never written

    def state_dict(self) -> dict[str, Any]:
        return {}


def _error(value: float, step: int, epoch: int, batch: int) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"the training loss is {value} at epoch {epoch}, step {step} (batch {batch}): "
        "training stopped. Lower model.optimizer.lr, check model.class_weights and the "
        "images of that batch; the checkpoints written before are intact."
    )
