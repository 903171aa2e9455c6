"""Helpers for the tests that submit to the real SLURM cluster of `make slurm` (two virtual
nodes on this machine)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")


def only_sweep(root: Path) -> Path:
    """The one sweep folder a test's command made under ``root``."""
    sweeps = list((root / "multirun_outputs").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def submission(sweep: Path) -> dict[str, dict]:
    """The sweep's ``slurm_jobs.json``: ``{job number: {"overrides", "slurm_job_id"}}``."""
    return json.loads((sweep / "slurm_jobs.json").read_text())


def submit_detached(args: list[str], root: Path, env: dict[str, str]) -> tuple[Path, list[str]]:
    """Run a detached SLURM sweep command from ``root``; its folder and job ids in order."""
    result = run_cli(args, cwd=root, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    sweep = only_sweep(root)
    record = submission(sweep)
    return sweep, [record[num]["slurm_job_id"] for num in sorted(record, key=int)]


def require_cluster() -> None:
    """Skip (with the reason) unless a SLURM controller answers and a node is usable."""
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM cluster: `sinfo` is not installed (run `make slurm` as root)")
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip("no SLURM cluster: `sinfo` did not answer within 20 s (run `make slurm`)")
    if out.returncode != 0:
        reason = (out.stderr or out.stdout).strip().splitlines()
        pytest.skip(
            f"no SLURM cluster answers (sinfo: {reason[-1] if reason else '?'}); run `make slurm`"
        )
    states = set(out.stdout.split())
    if not states & {"idle", "mix", "alloc"}:
        pytest.skip(f"the SLURM cluster has no usable node (sinfo states: {sorted(states)})")


def accounting_works() -> bool:
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def scheduler_record(job_ids: list[str]) -> dict[str, str]:
    """How the scheduler recorded each job's end: ``sacct`` with accounting, else the job
    completion log (``JobCompType=jobcomp/filetxt``). ``{job id: state}``."""
    if accounting_works():
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = (line.split("|") for line in out.stdout.splitlines() if "|" in line)
        return {job_id: state.split()[0] for job_id, state in rows if job_id in job_ids}
    states: dict[str, str] = {}
    text = JOBCOMP_LOG.read_text() if JOBCOMP_LOG.is_file() else ""
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        array_id, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        key = (
            f"{array_id}_{task}"
            if array_id and task not in (None, "", "4294967294")
            else fields.get("JobId")
        )
        if key in job_ids:
            states[key] = fields.get("JobState", "")
    return states


#: States of a job that has not ended yet.
UNFINISHED = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "CONFIGURING", "SUSPENDED"}


def wait_for_record(job_ids: list[str], timeout: float = 90) -> dict[str, str]:
    """The scheduler's record once every job has ended (a job whose result is back may
    still be completing; slurmdbd writes its record asynchronously)."""
    deadline = time.time() + timeout
    record = scheduler_record(job_ids)
    while time.time() < deadline and (
        len(record) < len(job_ids) or set(record.values()) & UNFINISHED
    ):
        time.sleep(2)
        record = scheduler_record(job_ids)
    return record


def cancel(job_ids: list[str]) -> None:
    """Stop whatever is left of the jobs a test submitted."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if arrays and shutil.which("scancel"):
        subprocess.run(["scancel", *arrays], capture_output=True, timeout=30, check=False)


def job_nodes(job_id: str) -> list[str]:
    """The nodes the scheduler's accounting (``sacct``) records for a job, one name each."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,NodeList", "-j", job_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", rows[job_id]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return hosts.stdout.split()


def usable_nodes() -> int:
    """How many nodes of the cluster can run jobs now."""
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=20
    )
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return sum(state.rstrip("*~#") in ("idle", "mix", "alloc") for state in states.values())


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30, check=True)


def queue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", job_id.split("_")[0], "-o", "%i %T %r"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == job_id:
            return " ".join(parts[1:])
    return ""


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def requeue_after_first_checkpoint(
    job_id: str, job_dir: Path, look: Callable[[], Any] = lambda: None, timeout: float = 900
) -> Any:
    """`scontrol requeue` a running job as soon as its first ``last.ckpt`` is on disk, then
    let SLURM start it again at once. ``look()`` runs (and its value is returned) while the
    job waits in the queue, with its preemption checkpoint on disk."""
    last = job_dir / "checkpoints" / "last.ckpt"
    wait_until(
        lambda: last.is_file() or (job_dir / "metrics.json").is_file(),
        timeout,
        f"job {job_id}'s first last.ckpt",
        poll=0.2,
    )
    metrics = job_dir / "metrics.json"
    assert not metrics.is_file(), f"job {job_id} ended before the requeue: {metrics.read_text()}"
    scontrol("requeue", job_id)
    # SLURM holds a requeued job ~2 minutes (BeginTime); let it start at once.
    wait_until(lambda: "PENDING" in queue_state(job_id), 120, f"job {job_id} back in the queue")
    seen = look()
    scontrol("update", f"jobid={job_id}", "starttime=now")
    return seen
