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

    Runs before the optimizer step would spread the NaN into the weights, so ``last.ckpt``
    and the best checkpoint keep the last finite weights.
    """

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach())
        if math.isfinite(value):
            return
        raise NonFiniteLossError(
            f"the training loss is {value} at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step} (batch {trainer.fit_loop.epoch_loop.batch_idx}): training "
            "stopped. Lower model.optimizer.lr, check model.class_weights and the images of "
            "that batch; the checkpoints written before are intact."
        )

    def state_dict(self) -> dict[str, Any]:
        return {}
