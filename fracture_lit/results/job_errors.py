"""Why a job failed, in one line: from its job record, else from the logs it left.

A job record holds the first line of the error; a job killed before writing one (out of
memory, node lost) leaves only its logs, where the last error line is the best guess.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout, SweepLayout

__all__ = ["crash_hint", "error_text"]


def _last_line(path: Path, pattern: re.Pattern[str] | None = None) -> str | None:
    """The last non-empty line of a text file (matching ``pattern`` when given)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.strip() and (pattern is None or pattern.search(line)):
            return line.strip()
    return None


_ERROR_LEVEL = re.compile(r"\]\[(ERROR|CRITICAL)\]|\b(ERROR|CRITICAL)\b")


def crash_hint(job_dir: Path, num: int) -> str | None:
    """Best effort at why a job left no metrics.json: the last line of its error log.

    Looked for, in order: ``*.err`` files in the job folder; the submitit logs of this job
    (:meth:`~fracture_lit.layout.SweepLayout.submitit_error_logs`); the job's own Hydra log
    (``<job folder>/*.log``, last ERROR line, else its last line: where the job was when it
    died).
    """
    job = RunLayout(job_dir)
    candidates = job.error_logs() + SweepLayout(job.folder.parent).submitit_error_logs(num)
    for path in reversed(candidates):
        line = _last_line(path)
        if line:
            return line
    for log in job.logs():
        line = _last_line(log, _ERROR_LEVEL) or _last_line(log)
        if line:
            return line
    return None


_CHAIN = re.compile(
    r"\n\s*(?:The above exception was the direct cause of the following exception:"
    r"|During handling of the above exception, another exception occurred:)\s*\n"
)
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Za-z_]\w*(?::|$))")


def _exception_line(block: str) -> str | None:
    """The ``Type: message`` line of one traceback block, without the module path."""
    for line in block.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith("Traceback ("):
            return _QUALIFIED.sub("", line.strip())
    return None


def error_text(summary: dict[str, Any]) -> str:
    """The job's error line; for a wrapper whose own line says nothing, its cause's.

    The job record holds the first line of the error. For hydra's InstantiationException
    that line is only "Error in call to target '...':"; the cause (an unknown backbone, a
    missing folder) is the first exception of the recorded traceback, which a reader needs.
    """
    error = str(summary.get("error") or "").strip()
    first = error.splitlines()[0] if error else ""
    tb = summary.get("traceback")
    if isinstance(tb, str) and (not first or first.endswith(":")):
        blocks = _CHAIN.split(tb)
        if len(blocks) > 1:
            cause = _exception_line(blocks[-2])
            if cause:
                return cause
        last = _exception_line(blocks[-1])
        if last and not first:
            return last
    return first
