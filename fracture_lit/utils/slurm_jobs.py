"""The SLURM jobs of a sweep: what was submitted, and where each one stands now.

A SLURM sweep (``hydra/launcher=slurm``) records its submission in
``<sweep folder>/slurm_jobs.json`` (job number, overrides, SLURM job id). With that record
the sweep no longer needs the process that submitted it: ``fracture_lit.report`` marks the
jobs that have not finished as pending or running (asking ``squeue``), and running the
sweep command again adopts the jobs still in the queue instead of submitting them twice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from fracture_lit.layout import SweepLayout
from fracture_lit.utils.atomic import write_text_atomic

#: squeue states of a job that will still run (or is running) without anyone's help.
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING"}
ACTIVE = {"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT"}
#: An asynchronous Optuna search submits from several threads at once (one per slot).
_RECORD_LOCK = threading.Lock()


def record_submission(sweep_dir: str | Path, jobs: dict[int, dict[str, Any]]) -> Path:
    """Add ``{job number: {"overrides": [...], "slurm_job_id": "12_0"}}`` to the record
    (a resumed sweep adds its new submissions to the old ones)."""
    path = SweepLayout(sweep_dir).slurm_jobs
    with _RECORD_LOCK:
        record = read_submission(sweep_dir)
        record.update({int(num): dict(job) for num, job in jobs.items()})
        text = json.dumps({str(k): v for k, v in sorted(record.items())}, indent=1)
        return write_text_atomic(path, text)


def read_submission(sweep_dir: str | Path) -> dict[int, dict[str, Any]]:
    """The sweep's submission record (empty when it was not a SLURM sweep)."""
    path = SweepLayout(sweep_dir).slurm_jobs
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """``{slurm job id: squeue state}`` for the jobs the scheduler still lists.

    Empty when ``squeue`` is missing or the cluster does not answer: nothing is then
    known to be queued.
    """
    if not job_ids or shutil.which("squeue") is None:
        return {}
    arrays = sorted({str(job_id).split("_")[0] for job_id in job_ids})
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(arrays)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            states[job_id] = state
    return states


def unfinished_states(sweep_dir: str | Path) -> dict[int, str]:
    """``{job number: "pending" | "running"}`` for the recorded jobs still in the queue
    (pending includes a job requeued after preemption)."""
    record = read_submission(sweep_dir)
    states = queue_states([str(job["slurm_job_id"]) for job in record.values()])
    out: dict[int, str] = {}
    for num, job in record.items():
        state = states.get(str(job["slurm_job_id"]), "")
        if state in QUEUED:
            out[num] = "pending"
        elif state in ACTIVE:
            out[num] = "running"
    return out


def job_states_for_report(sweep_dir: str | Path) -> dict[int, tuple[list[str], str | None]]:
    """``{job number: (overrides, "pending" | "running" | None)}`` for every job of the
    submission record: what a report shows for a job that has not written its results.

    None: no longer in the queue (it finished, or was killed and needs a resume).
    """
    record = read_submission(sweep_dir)
    if not record:
        return {}
    states = unfinished_states(sweep_dir)
    return {num: (list(job.get("overrides", [])), states.get(num)) for num, job in record.items()}
