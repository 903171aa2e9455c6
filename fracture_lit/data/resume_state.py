"""Where a checkpoint stopped in the training order, so a resumed run continues it exactly.

The order is a function of ``(sample_seed, epoch, index)`` (see
:mod:`fracture_lit.data.sampling`); a checkpoint therefore only needs the seed, the epoch
and how many of its batches were already trained on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["resume_point", "training_position"]


def training_position(trainer: Any) -> dict[str, int]:
    """Where training continues from a checkpoint written now: the epoch, and the
    batches of it already trained on (0 when the epoch's batches are all done); ``{}``
    outside a fit."""
    if trainer is None or trainer.state.fn != "fit":
        return {}
    epoch = trainer.current_epoch
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    if done >= trainer.num_training_batches:
        epoch, done = epoch + 1, 0
    return {"epoch": int(epoch), "batches_done": int(done)}


def resume_point(sampling: dict[str, Any]) -> tuple[int, int] | None:
    """``(epoch, batches_done)`` stored by :func:`training_position`, or None."""
    if "epoch" not in sampling:
        return None
    return int(sampling["epoch"]), int(sampling.get("batches_done", 0))
