"""The job record: status, error, traceback and wall time, written whatever happens.

Every entry point that leaves a folder behind (train, eval, export, pipeline) records how
its job ended in a json file there, so a report can say why a job failed without its log
(in the spirit of lightning-hydra-template's ``task_wrapper``). :func:`job_record` is that
bookkeeping once: it always writes the record, then re-raises the error unchanged, so an
entry point's own handling (a clean one-line exit for a user error, a sweep that goes on
past a failed job) sees exactly what was raised.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fracture_lit.errors import user_error_of
from fracture_lit.results.folders import write_metrics
from fracture_lit.utils.job_folder import FINISHED_STATUSES

__all__ = ["error_line", "job_record"]


def error_line(error: BaseException) -> str:
    """``Type: first line`` of the error that started it all (Hydra wraps errors raised
    while instantiating in an InstantiationException whose own message says little); a
    user error in the chain is that error, as the console showed it (its message names
    the fix, the library error below it does not)."""
    user = user_error_of(error)
    if user is not None:
        return f"{type(user).__name__}: {user.one_line()}"
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


@contextmanager
def job_record(
    record: dict[str, Any],
    write: Path | Callable[[dict[str, Any]], Any] | None,
    *,
    on_error: Callable[[BaseException, dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Fill ``record`` with how the block ended, write it, and re-raise any error.

    On success ``status`` is ``done``, unless the block recorded another finished status
    (``pruned``: a search trial its pruner stopped); on an exception ``failed`` (``interrupted`` for
    Ctrl-C / SystemExit) with ``error`` (:func:`error_line`) and ``traceback``. Then
    ``wall_time_s`` and the block's ``started_at`` / ``ended_at`` (Unix seconds: when the
    jobs of a sweep ran, side by side) are set and the record is written: ``write`` is a
    folder (the record goes to its ``metrics.json``), a callable that writes it (for
    rank-zero-only or
    conditional writes), or None (the caller writes it). ``on_error(error, record)`` may
    adjust the record of an error before it is written (a preempted run's own status).
    """
    started = time.time()
    try:
        yield record
        if record.get("status") not in FINISHED_STATUSES:
            record["status"] = "done"
    except BaseException as error:
        record["status"] = "failed" if isinstance(error, Exception) else "interrupted"
        record["error"] = error_line(error)
        record["traceback"] = traceback.format_exc()
        if on_error is not None:
            on_error(error, record)
        raise
    finally:
        ended = time.time()
        record.update(
            wall_time_s=round(ended - started, 2),
            started_at=round(started, 3),
            ended_at=round(ended, 3),
        )
        if isinstance(write, Path):
            write_metrics(record, write)
        elif write is not None:
            write(record)
