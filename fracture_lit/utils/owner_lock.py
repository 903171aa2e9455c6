"""A lock file that names its owner: ``flock`` for exclusion, the owner line for staleness.

Used for the decoded-image cache (``data/cache.py``: one builder per cache) and for job
folders (``utils/job_lock.py``: one trainer per job). Why ``flock`` plus an owner line
rather than an ``O_EXCL`` lock file alone:

* ``flock`` is released by the kernel when its holder dies, however it dies (``kill -9``,
  out of memory, node lost on NFSv4, whose server drops a dead client's locks), so a
  killed owner never blocks the next one; an ``O_EXCL`` file stays until someone judges
  it stale, and judging a process on another machine is guesswork;
* the owner line (host, pid, process start time, SLURM job id) says who holds the lock,
  so a waiting or refused process can name it, and covers what ``flock`` cannot: a lock
  still held by leftovers of a dead owner (forked workers that inherited it) is cleared,
  and on a file system without ``flock`` (Lustre mounted ``noflock``: ``ENOLCK``) or with
  only node-local locks, a live owner on another node is still recognised by its SLURM
  job.

Owner line: ``<host> <pid> [start=<ticks>] [slurm=<job id>]``; ``<host> <pid>`` alone
(older versions) still reads. The line is emptied on release, so a line found by the next
owner means the previous one was killed.

Limits: without ``flock`` the line is read and written without atomicity (two processes
starting in the same instant could both take the lock), and where ``flock`` is only
node-local, a plain process on another node (no SLURM job) cannot be told from a dead one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: squeue states of a SLURM job that is (or will be) running.
SLURM_LIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
}
#: ``flock`` errors of a file system that has no (working) flock.
_NO_FLOCK = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, ``/proc``): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slurm_job_live(job_id: str) -> bool | None:
    """Whether SLURM still runs (or will run) ``job_id``; None when SLURM cannot tell."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # A job the controller no longer knows is gone; a controller that does not answer
        # says nothing about it.
        return False if "invalid job id" in out.stderr.lower() else None
    return any(state.strip() in SLURM_LIVE_STATES for state in out.stdout.splitlines())


@dataclass(frozen=True)
class Owner:
    """A process that holds (or held) a lock."""

    host: str
    pid: int
    start: str | None = None
    slurm_job: str | None = None

    @classmethod
    def me(cls) -> Owner:
        return cls(
            socket.gethostname(),
            os.getpid(),
            process_start(os.getpid()),
            os.environ.get("SLURM_JOB_ID") or None,
        )

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner a lock file names (None for an empty or unreadable line)."""
        words = text.split()
        if len(words) < 2 or not words[1].isdigit():
            return None
        extra = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        return cls(words[0], int(words[1]), extra.get("start"), extra.get("slurm"))

    def line(self) -> str:
        words = [self.host, str(self.pid)]
        if self.start:
            words.append(f"start={self.start}")
        if self.slurm_job:
            words.append(f"slurm={self.slurm_job}")
        return " ".join(words)

    def describe(self) -> str:
        if not self.pid:
            return "another process"
        slurm = f" (SLURM job {self.slurm_job})" if self.slurm_job else ""
        return f"process {self.pid} on {self.host}{slurm}"

    def is_me(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()

    def gone(self) -> bool | None:
        """True when this owner no longer runs, False when it does, None: cannot tell.

        On this host: its pid (and start time, against a reused pid). On another host: its
        SLURM job (an earlier run of this very job, requeued, is gone; another job asks
        ``squeue``); another host's plain process cannot be judged from here.
        """
        if self.host == socket.gethostname():
            if not pid_running(self.pid):
                return True
            now = process_start(self.pid)
            return bool(self.start and now and now != self.start)
        if not self.slurm_job:
            return None
        if self.slurm_job == os.environ.get("SLURM_JOB_ID"):
            return True
        live = slurm_job_live(self.slurm_job)
        return None if live is None else not live


class OwnerLock:
    """An exclusive lock on ``path`` whose file names its owner (see the module docstring).

    ``label`` starts the log lines ("Cache lock", "Job folder lock"); ``cleared`` ends the
    line that says a dead owner's lock was cleared ("clearing it and rebuilding").
    """

    def __init__(self, path: Path, label: str, cleared: str = "taking it over") -> None:
        self.path, self.label, self.cleared = Path(path), label, cleared
        self.file: IO[str] | None = None

    def fileno(self) -> int:
        assert self.file is not None
        return self.file.fileno()

    @property
    def held(self) -> bool:
        return self.file is not None

    def try_acquire(self, retries: int = 3, pause_s: float = 0.2) -> Owner | None:
        """Lock now: None once this process holds it, else the live owner that does.

        A few quick retries let a report's probe (:meth:`holder`) pass.
        """
        for attempt in range(retries + 1):
            holder = self._attempt()
            if holder is None or attempt == retries:
                return holder
            time.sleep(pause_s)
        return None  # unreachable; for type checkers

    def acquire(self, poll_s: float = 0.5, report_every_s: float = 60.0, what: str = "") -> None:
        """Wait until this process holds the lock, saying every ``report_every_s`` whom for."""
        reported = 0.0
        while (holder := self._attempt()) is not None:
            now = time.monotonic()
            if now - reported >= report_every_s:
                log.info(
                    "Waiting for %s, which is %s %s",
                    holder.describe(),
                    what or "holding",
                    self.path,
                )
                reported = now
            time.sleep(poll_s)

    def release(self) -> None:
        """Empty the owner line and let go (a line left behind means a killed owner)."""
        handle, self.file = self.file, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.flush()
        except OSError:
            pass
        finally:
            handle.close()  # closing releases the flock

    def holder(self) -> Owner | None:
        """The live owner of the lock now, without taking it (for reports)."""
        try:
            owner = Owner.parse(self.path.read_text())
        except OSError:
            return None
        if owner is None:
            return None
        if owner.is_me():
            return owner if self.held else None
        gone = owner.gone()
        if gone is not None:
            return None if gone else owner
        try:  # another host's process: does anyone hold the flock?
            with open(self.path) as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return owner
        except OSError:
            return owner  # no flock here: the line is all there is
        return None

    def __enter__(self) -> OwnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ internals
    def _attempt(self) -> Owner | None:
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        has_flock = True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = Owner.parse(handle.read())
            handle.close()
            if owner is not None and owner.gone() is True:
                log.warning(
                    "%s %s is held by leftovers of %s, which no longer runs; %s.",
                    self.label,
                    self.path,
                    owner.describe(),
                    self.cleared,
                )
                self.path.unlink(missing_ok=True)  # the next attempt locks a fresh file
                return self._attempt()
            return owner or Owner("?", 0)
        except OSError as error:
            if error.errno not in _NO_FLOCK:
                handle.close()
                raise
            has_flock = False
        if not _same_file(handle, self.path):  # unlinked by a process that found it stale
            handle.close()
            return self._attempt()
        handle.seek(0)
        previous = Owner.parse(handle.read())
        if previous is not None and not previous.is_me():
            gone = previous.gone()
            # A free flock proves the owner dead, except across hosts (a file system may
            # keep node-local locks) and where there is no flock at all.
            trusted = has_flock and previous.host == socket.gethostname()
            if not trusted and (gone is False or (gone is None and not has_flock)):
                handle.close()
                return previous
            log.warning(
                "%s %s was left by %s, which no longer runs; %s.",
                self.label,
                self.path,
                previous.describe(),
                self.cleared,
            )
        handle.seek(0)
        handle.truncate()
        handle.write(Owner.me().line() + "\n")
        handle.flush()
        self.file = handle
        return None


def _same_file(handle: Any, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
