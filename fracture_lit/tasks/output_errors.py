"""Errors a training run meets while writing, translated into one line the user can act on."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fracture_lit.errors import OutputNotWritableError
from fracture_lit.models.loading import CheckpointError

__all__ = ["output_errors_named"]

_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def output_errors_named(trainer: Any, ckpt_path: str | None = None) -> Iterator[None]:
    """A checkpoint or log that cannot be written (disk full, read-only) mid-run becomes one
    line naming the file and the epoch; what was written before stays in the run folder.
    A resumed checkpoint whose weights do not fit the configured model is one line too."""
    try:
        yield
    except RuntimeError as error:
        if "Error(s) in loading state_dict" not in str(error) or not ckpt_path:
            raise
        detail = next((ln.strip() for ln in str(error).splitlines() if "size mismatch" in ln), "")
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: its weights do not fit the configured model "
            f"({detail or 'missing or unexpected keys'}). Resume with the settings it was "
            "trained with (model=, model.in_chans=, data.classes= of its run's config.yaml)."
        ) from error
    except OSError as error:
        if error.errno not in _OUTPUT_ERRNOS:
            raise
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        target = error.filename or (f"a checkpoint in {folder}" if folder else "an output file")
        raise OutputNotWritableError(
            f"could not write {target} at epoch {trainer.current_epoch} "
            f"({error.strerror}). Free space or make the folder writable, then resume with "
            "ckpt_path=<run folder>/checkpoints/last.ckpt; the checkpoints written before "
            "are intact."
        ) from error
