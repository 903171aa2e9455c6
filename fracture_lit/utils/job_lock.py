"""One owner per job folder: the process that trains a job holds its lock until it is done.

Two resumes of one sweep (two terminals, or a SLURM requeue and a manual
``fracture_lit.resume``) used to train the same job side by side from the same
``last.ckpt``. Now a job takes ``<job folder>/.resume/owner.lock`` (``utils/owner_lock.py``:
``flock`` plus an owner line naming host, pid and SLURM job id) before it looks at its
folder, and keeps it until its ``metrics.json`` is written:

* a folder held by a live owner is skipped: one line names the owner, the job returns a
  ``running`` record without touching the folder, and the sweep report shows it running;
* a lock left by an owner that no longer runs (killed, preempted and requeued, node lost)
  is taken over with a log line;
* only rank 0 takes it: DDP ranks 1..n are that same job (their parent holds the lock);
* once it holds the folder, a job clears the temporary files of killed writers there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fracture_lit.errors import UserError
from fracture_lit.layout import RunLayout
from fracture_lit.utils.atomic import clear_orphans
from fracture_lit.utils.distributed import global_rank
from fracture_lit.utils.owner_lock import Owner, OwnerLock

log = logging.getLogger(__name__)

#: The status of a job another process is training (never written to its metrics.json).
RUNNING = "running"
_LABEL = "Job folder lock"


class JobFolderBusyError(UserError, RuntimeError):
    """A single run's folder is being trained by another live process."""


class JobFolderLock:
    """The lock of one job folder, taken by rank 0 (a no-op in DDP ranks 1..n)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._lock = OwnerLock(RunLayout(self.folder).owner_lock, _LABEL)

    def acquire(self) -> Owner | None:
        """Own the folder: None once this process does (or is a DDP child of its owner),
        else the live owner that holds it."""
        if global_rank() != 0:
            return None
        self._lock.path.parent.mkdir(parents=True, exist_ok=True)
        holder = self._lock.try_acquire()
        if holder is None:
            for folder in (self.folder, self.folder / "checkpoints"):
                clear_orphans(folder)
        return holder

    def announce(self) -> None:
        """Say, in the job's log, who trains it (once it is not skipped as done)."""
        if self._lock.held:
            log.info("Job folder %s: owned by %s, training", self.folder, Owner.me().describe())

    def release(self) -> None:
        self._lock.release()


def busy_record(folder: Path, owner: Owner, job: str, multirun: bool) -> dict[str, Any]:
    """The record of a job skipped because ``owner`` trains it (a single run: an error)."""
    busy = f"{folder} is being trained by {owner.describe()} (lock {RunLayout(folder).owner_lock})"
    if not multirun:
        raise JobFolderBusyError(
            f"{busy}. Wait for it to finish, or choose another folder (hydra.run.dir=...). "
            "If that process is gone (another machine), delete the lock file and run again."
        )
    log.warning("%s: skipped here, reported as running.", busy)
    return {"job": job, "status": RUNNING, "owner": owner.line()}


def folder_owner(folder: Path) -> Owner | None:
    """The live process training the job in ``folder`` now (None: nobody)."""
    return OwnerLock(RunLayout(Path(folder)).owner_lock, _LABEL).holder()
