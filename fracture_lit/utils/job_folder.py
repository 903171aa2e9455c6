"""What to do with a run or sweep-job folder that already exists: the resume policy.

Running the same command again against the same folder finishes the work (``resume=auto``):

* ``metrics.json`` says done (or pruned: an Optuna search stopped it on purpose): nothing
  is rerun or rewritten; the recorded results stand;
* it says failed: that attempt is moved to ``.attempts/<n>/`` and the job starts again;
* no ``metrics.json`` (killed), ``preempted`` or ``interrupted`` (Ctrl-C, Lightning's
  SIGTERM exit): training continues from ``checkpoints/last.ckpt``;
* the folder was made by a job with other overrides: refused, never overwritten.

A job records its overrides (and a copy of Hydra's ``.hydra/`` files) in ``.resume/`` the
first time it runs in a folder; that record is what a later job is compared with.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.errors import ConfigError, UserError
from fracture_lit.layout import RunLayout
from fracture_lit.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)


class JobFolderMismatchError(UserError, RuntimeError):
    """The folder belongs to a job with other overrides."""


@dataclass(frozen=True)
class JobPlan:
    """``action``: ``fresh``, ``resume`` (from ``checkpoint``) or ``skip`` (done)."""

    action: str
    checkpoint: str | None = None
    recorded: dict[str, Any] | None = None


def read_status(folder: Path) -> dict[str, Any] | None:
    """The folder's ``metrics.json``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(RunLayout(folder).metrics.read_text())
    except (OSError, ValueError):
        return None


def check_same_job(folder: Path, overrides: list[str]) -> None:
    """Record this job's overrides in a new folder; refuse a folder made by another job.

    Hydra has already rewritten ``.hydra/`` by the time a job runs, so a refused job puts
    back the copy taken when the folder's own job first ran.
    """
    run = RunLayout(folder)
    record = run.resume_record
    if not record.is_file():
        if _has_results(run):
            return  # made before records were kept: nothing to compare with
        write_text_atomic(record, json.dumps({"overrides": list(overrides)}, indent=1))
        if run.hydra.is_dir():
            shutil.copytree(run.hydra, run.resume_hydra, dirs_exist_ok=True)
        return
    recorded = json.loads(record.read_text()).get("overrides", [])
    if sorted(recorded) == sorted(overrides):
        return
    if run.resume_hydra.is_dir():
        shutil.copytree(run.resume_hydra, run.hydra, dirs_exist_ok=True)
    raise JobFolderMismatchError(
        f"{folder} belongs to the job `{' '.join(recorded) or '(no overrides)'}`, not to "
        f"`{' '.join(overrides) or '(no overrides)'}`: refusing to reuse it (nothing in it "
        "was changed). Resume a sweep with its own command (`python -m fracture_lit.resume "
        "<sweep folder>`), or give a new sweep a new folder."
    )


#: Recorded ends that did not fail: the run stopped from outside and continues.
RESUMABLE_STATUSES = ("preempted", "interrupted")
#: Recorded ends of a job that finished: ``pruned`` is a search trial its pruner stopped.
FINISHED_STATUSES = ("done", "pruned")


def _has_results(run: RunLayout) -> bool:
    return run.metrics.is_file() or run.last_checkpoint.is_file()


def plan_job(folder: Path, mode: str = "auto") -> JobPlan:
    """Decide how a job starts in ``folder`` (see the module docstring)."""
    if mode not in ("auto", "never"):
        raise ConfigError(f"resume={mode!r}: use auto (continue this folder's run) or never.")
    status = read_status(folder)
    last = RunLayout(folder).last_checkpoint
    if mode == "auto" and status is not None and status.get("status") in FINISHED_STATUSES:
        return JobPlan("skip", recorded=status)
    unfinished = status is None or status.get("status") in RESUMABLE_STATUSES
    if mode == "auto" and unfinished and last.is_file():
        return JobPlan("resume", checkpoint=str(last))
    archive_attempt(folder)
    return JobPlan("fresh")


def archive_attempt(folder: Path) -> Path | None:
    """Move what an earlier attempt left (results, checkpoints, logs) to ``.attempts/<n>/``,
    so a fresh start neither mixes with it nor deletes it."""
    run = RunLayout(folder)
    present = [path for path in run.attempt_files() if path.exists()]
    if not present:
        return None
    attempts = run.attempts
    n = 1 + max((int(p.name) for p in attempts.glob("*") if p.name.isdigit()), default=0)
    target = attempts / str(n)
    target.mkdir(parents=True)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    log.info("Moved the previous attempt's files to %s", target)
    return target
