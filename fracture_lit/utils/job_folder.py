"""What to do with a run or sweep-job folder that already exists: the resume policy.

Running the same command again against the same folder finishes the work (``resume=auto``):

* ``metrics.json`` says done: nothing is rerun or rewritten; the recorded results stand;
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

from fracture_lit.errors import UserError
from fracture_lit.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

RECORD_DIR = ".resume"
ATTEMPTS_DIR = ".attempts"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: What a failed attempt leaves that a fresh start must not mix with its own.
ATTEMPT_FILES = ("metrics.json", "checkpoints", "csv", "wandb", "review", "report.html")


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
    path = folder / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _record_path(folder: Path) -> Path:
    return folder / RECORD_DIR / "overrides.json"


def check_same_job(folder: Path, overrides: list[str]) -> None:
    """Record this job's overrides in a new folder; refuse a folder made by another job.

    Hydra has already rewritten ``.hydra/`` by the time a job runs, so a refused job puts
    back the copy taken when the folder's own job first ran.
    """
    record = _record_path(folder)
    if not record.is_file():
        if _has_results(folder):
            return  # made before records were kept: nothing to compare with
        write_text_atomic(record, json.dumps({"overrides": list(overrides)}, indent=1))
        hydra_dir = folder / ".hydra"
        if hydra_dir.is_dir():
            shutil.copytree(hydra_dir, record.parent / "hydra", dirs_exist_ok=True)
        return
    recorded = json.loads(record.read_text()).get("overrides", [])
    if sorted(recorded) == sorted(overrides):
        return
    saved_hydra = record.parent / "hydra"
    if saved_hydra.is_dir():
        shutil.copytree(saved_hydra, folder / ".hydra", dirs_exist_ok=True)
    raise JobFolderMismatchError(
        f"{folder} belongs to the job `{' '.join(recorded) or '(no overrides)'}`, not to "
        f"`{' '.join(overrides) or '(no overrides)'}`: refusing to reuse it (nothing in it "
        "was changed). Resume a sweep with its own command (`python -m fracture_lit.resume "
        "<sweep folder>`), or give a new sweep a new folder."
    )


#: Recorded ends that did not fail: the run stopped from outside and continues.
RESUMABLE_STATUSES = ("preempted", "interrupted")


def _has_results(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or (folder / LAST_CHECKPOINT).is_file()


def plan_job(folder: Path, mode: str = "auto") -> JobPlan:
    """Decide how a job starts in ``folder`` (see the module docstring)."""
    if mode not in ("auto", "never"):
        from fracture_lit.errors import ConfigError

        raise ConfigError(f"resume={mode!r}: use auto (continue this folder's run) or never.")
    status = read_status(folder)
    last = folder / LAST_CHECKPOINT
    if mode == "auto" and status is not None and status.get("status") == "done":
        return JobPlan("skip", recorded=status)
    unfinished = status is None or status.get("status") in RESUMABLE_STATUSES
    if mode == "auto" and unfinished and last.is_file():
        return JobPlan("resume", checkpoint=str(last))
    archive_attempt(folder)
    return JobPlan("fresh")


def archive_attempt(folder: Path) -> Path | None:
    """Move what an earlier attempt left (results, checkpoints, logs) to ``.attempts/<n>/``,
    so a fresh start neither mixes with it nor deletes it."""
    present = [folder / name for name in ATTEMPT_FILES if (folder / name).exists()]
    if not present:
        return None
    attempts = folder / ATTEMPTS_DIR
    n = 1 + max((int(p.name) for p in attempts.glob("*") if p.name.isdigit()), default=0)
    target = attempts / str(n)
    target.mkdir(parents=True)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    log.info("Moved the previous attempt's files to %s", target)
    return target
