"""One owner per job folder (utils/job_lock.py, utils/owner_lock.py): real processes hold,
die with, and hand over the lock; two writers of one checkpoint never share a temporary
file; two `fracture_lit.resume` of one killed sweep train each job once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fracture_lit.errors import UserError
from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import load_jobs
from fracture_lit.utils.job_lock import JobFolderLock, busy_record, folder_owner
from tests.conftest import REPO_ROOT
from tests.resume_helpers import (
    RESUMABLE,
    assert_same_results,
    environment,
    kill_after_checkpoint,
    metrics,
    run_to_end,
    train_command,
)

HOST = socket.gethostname()

# A process that takes the job lock of argv[1] and keeps it until killed (rank from env).
HOLDER = (
    "import sys, time\n"
    "from fracture_lit.utils.job_lock import JobFolderLock\n"
    "lock = JobFolderLock(sys.argv[1])\n"
    "owner = lock.acquire()\n"
    "print('free' if owner is None else 'busy ' + owner.line(), flush=True)\n"
    "time.sleep(600)\n"
)
# A process that holds the flock of a lock file naming someone else (leftovers of a dead owner).
FLOCK_HOLDER = (
    "import fcntl, sys, time\n"
    "f = open(sys.argv[1], 'a+')\n"
    "fcntl.flock(f, fcntl.LOCK_EX)\n"
    "f.truncate(0); f.write(sys.argv[2]); f.flush()\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def _start(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    return process


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _lock_file(folder: Path) -> Path:
    path = RunLayout(folder).owner_lock
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_live_owner_is_refused_and_named(tmp_path: Path) -> None:
    job = tmp_path / "sweep" / "1"
    holder = _start(HOLDER, str(job))
    try:
        assert holder.stdout.readline().strip() == "free"
        owner = JobFolderLock(job).acquire()
        assert owner is not None and owner.pid == holder.pid and owner.host == HOST
        assert folder_owner(job) == owner  # what the sweep report reads
        assert [j.status for j in load_jobs(job.parent)] == ["running"]
        record = busy_record(job, owner, "seed=2", multirun=True)
        assert record["status"] == "running" and f" {holder.pid} " in record["owner"] + " "
        with pytest.raises(UserError, match=f"is being trained by process {holder.pid}"):
            busy_record(job, owner, "seed=2", multirun=False)
    finally:
        _stop(holder)
    assert folder_owner(job) is None  # the kernel released it with the process
    assert [j.status for j in load_jobs(job.parent)] == ["failed"]  # killed, no record


def test_stale_lock_of_a_killed_owner_is_taken_over_with_a_log_line(tmp_path: Path, caplog) -> None:
    """kill -9 leaves the owner line (not the flock): the next owner says whose it was."""
    job = tmp_path / "job"
    holder = _start(HOLDER, str(job))
    assert holder.stdout.readline().strip() == "free"
    _stop(holder)
    assert f"{HOST} {holder.pid}" in _lock_file(job).read_text()
    lock = JobFolderLock(job)
    with caplog.at_level("INFO"):
        assert lock.acquire() is None
    assert f"was left by process {holder.pid} on {HOST}, which no longer runs" in caplog.text
    assert f"{HOST} {os.getpid()}" in _lock_file(job).read_text()
    lock.release()
    assert _lock_file(job).read_text() == ""  # released cleanly: nothing to take over


def test_lock_held_by_leftovers_of_a_dead_owner_is_cleared(tmp_path: Path, caplog) -> None:
    """A forked leftover (a DataLoader worker of a killed job) still holds the flock."""
    job = tmp_path / "job"
    dead = _dead_pid()
    leftover = _start(FLOCK_HOLDER, str(_lock_file(job)), f"{HOST} {dead}")
    try:
        assert leftover.stdout.readline().strip() == "locked"
        with caplog.at_level("INFO"):
            assert JobFolderLock(job).acquire() is None
    finally:
        _stop(leftover)
    assert f"held by leftovers of process {dead} on {HOST}, which no longer runs" in caplog.text


def test_ddp_child_of_the_owner_is_not_refused(tmp_path: Path) -> None:
    """Ranks 1..n are the same job as rank 0, which holds the lock: they pass, untouched."""
    job = tmp_path / "job"
    parent = _start(HOLDER, str(job))
    try:
        assert parent.stdout.readline().strip() == "free"
        before = _lock_file(job).read_text()
        child = _start(HOLDER, str(job), env={"LOCAL_RANK": "1", "RANK": "1"})
        try:
            assert child.stdout.readline().strip() == "free"
        finally:
            _stop(child)
        stranger = _start(HOLDER, str(job))  # rank 0 of another process: refused
        try:
            assert stranger.stdout.readline().strip().startswith(f"busy {HOST} {parent.pid}")
        finally:
            _stop(stranger)
        assert _lock_file(job).read_text() == before
    finally:
        _stop(parent)


def test_slurm_requeue_takes_over_its_earlier_run_on_another_node(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    """The requeued job (same SLURM job id, another node) takes over a lock whose flock the
    file server still keeps for the dead node; another SLURM job that cannot be asked about
    (no squeue) is refused."""
    job = tmp_path / "job"
    other = _start(FLOCK_HOLDER, str(_lock_file(job)), "node17 4242 start=99 slurm=7001")
    try:
        assert other.stdout.readline().strip() == "locked"
        monkeypatch.setenv("PATH", "/nonexistent")  # no squeue: SLURM cannot be asked
        monkeypatch.setenv("SLURM_JOB_ID", "7002")
        owner = JobFolderLock(job).acquire()
        assert owner is not None and owner.slurm_job == "7001" and owner.host == "node17"
        assert "SLURM job 7001" in owner.describe()
        monkeypatch.setenv("SLURM_JOB_ID", "7001")
        monkeypatch.delenv("SLURM_PROCID", raising=False)
        lock = JobFolderLock(job)
        with caplog.at_level("INFO"):
            assert lock.acquire() is None
        assert "leftovers of process 4242 on node17 (SLURM job 7001)" in caplog.text
        assert "slurm=7001" in _lock_file(job).read_text()  # the new owner's own record
        lock.release()
    finally:
        _stop(other)


_SAVE_MANY = """
import sys, torch
from fracture_lit.callbacks.resume import AtomicCheckpointIO
io = AtomicCheckpointIO()
for _ in range(int(sys.argv[3])):
    io.save_checkpoint({"w": torch.full((256, 256), float(sys.argv[2]))}, sys.argv[1])
"""


def test_two_writers_of_one_checkpoint_never_share_a_temporary_file(tmp_path: Path) -> None:
    """The race of the issue (two resumers writing last.ckpt): both writers succeed, the
    file is always one of them, whole, and no temporary file is left. The writers are fresh
    interpreters: a fork of this torch-initialised process can hang in its thread pools."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    writers = [
        subprocess.Popen([sys.executable, "-c", _SAVE_MANY, str(target), str(v), "15"])
        for v in (1, 2)
    ]
    try:
        codes = [w.wait(timeout=120) for w in writers]
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert codes == [0, 0]
    w = torch.load(target, weights_only=True)["w"]
    assert torch.equal(w, torch.full_like(w, w[0, 0].item())) and w[0, 0].item() in (1.0, 2.0)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


# --------------------------------------------------------------------------- two resumers
_OWNED = re.compile(r"Job folder .*/(\d+): owned by process (\d+) on ")


def _owners(job: Path, pids: set[int]) -> list[int]:
    """The pids (among ``pids``) that trained ``job``, from its log."""
    found = _OWNED.findall((job / "train.log").read_text())
    return [int(pid) for _num, pid in found if int(pid) in pids]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_resumes_of_one_killed_sweep_train_each_job_once(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """kill -9 during job 1 of 3; two `fracture_lit.resume` started together: no error,
    jobs 1 and 2 each trained by one of them (one owner in the job's log), the other one
    skips what is taken, and every job ends with a clean sweep's metrics."""
    args = [
        *train_command(),
        "-m",
        *RESUMABLE,
        "trainer.max_epochs=3",
        f"data.root={synthetic_root}",
        "seed=1,2,3",
    ]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end([*args, f"hydra.sweep.dir={reference}"], tmp_path, timeout=900)
    kill_after_checkpoint(
        [*args, f"hydra.sweep.dir={killed}"],
        tmp_path,
        killed / "1" / "checkpoints" / "last.ckpt",
        epoch=0,
        log=tmp_path / "killed.log",
    )
    assert not (killed / "1" / "metrics.json").exists() and not (killed / "2").exists()

    resume = [sys.executable, "-m", "fracture_lit.resume", str(killed)]
    logs = [tmp_path / "resume_a.log", tmp_path / "resume_b.log"]
    resumers = [
        subprocess.Popen(
            resume, cwd=tmp_path, env=environment(tmp_path), stdout=log.open("w"), stderr=-2
        )
        for log in logs
    ]
    codes = [r.wait(timeout=900) for r in resumers]
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], [o[-3000:] for o in outputs]
    for output in outputs:
        assert "Traceback" not in output and "Error:" not in output, output[-3000:]

    pids = {r.pid for r in resumers}
    assert _owners(killed / "0", pids) == []  # done before: neither resumer trained it
    for job in ("1", "2"):
        assert len(_owners(killed / job, pids)) == 1, (killed / job / "train.log").read_text()
    assert "skipped here, reported as running" in "".join(outputs)
    for job in ("0", "1", "2"):
        assert_same_results(reference / job, killed / job)
    rows = (killed / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 and all(metrics(killed / j)["status"] == "done" for j in "012")
    assert not list(killed.glob("*/checkpoints/*.tmp"))
