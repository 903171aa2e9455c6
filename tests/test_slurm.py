"""Sweeps on a real SLURM cluster (the one-node cluster of `make slurm`), through submitit.

Skipped with the reason when no cluster answers. Each job is a tiny synthetic run; the jobs
run in SLURM's own processes, so these tests hold both CPU slots (`heavy heavy pytest ...`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fracture_lit.utils.slurm_jobs import unfinished_states
from tests.conftest import TINY, run_cli
from tests.slurm_cluster import (
    cancel,
    only_sweep,
    requeue_after_first_checkpoint,
    require_cluster,
    submission,
    submit_detached,
    wait_for_record,
    wait_until,
)
from tests.wandb_records import read_offline_run

pytestmark = pytest.mark.slurm

NO_WANDB_LOGIN = ["logger=wandb"]


@pytest.fixture(scope="module")
def cluster() -> None:
    require_cluster()


def _env(tmp_path: Path) -> dict[str, str]:
    # The jobs inherit the submitting environment (sbatch --export=ALL): no W&B login.
    return {
        "FRACTURE_LIT_ROOT": str(tmp_path),
        "WANDB_API_KEY": "",
        "NETRC": str(tmp_path / "none"),
        "HOME": str(tmp_path),
    }


def _sweep_args(synthetic_root: Path, *overrides: str) -> list[str]:
    return [
        "-m",
        "fracture_lit.train",
        "-m",
        f"data.root={synthetic_root}",
        *TINY,
        "hydra/launcher=slurm_cpu",
        *overrides,
    ]


def _metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_two_job_sweep_on_slurm(cluster, tmp_path, synthetic_root) -> None:
    result = run_cli(
        _sweep_args(synthetic_root, "seed=1,2", *NO_WANDB_LOGIN),
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=900,
    )
    sweep = only_sweep(tmp_path)
    record = submission(sweep)
    job_ids = [record[num]["slurm_job_id"] for num in ("0", "1")]
    if result.returncode != 0:
        cancel(job_ids)
    assert result.returncode == 0, result.stderr[-4000:]
    for num, seed in (("0", 1), ("1", 2)):
        job = sweep / num
        summary = _metrics(job)
        assert summary["status"] == "done", summary.get("error")
        assert f"seed={seed}" in record[num]["overrides"]
        # Each job ran inside its own SLURM job, and logged one offline W&B run.
        assert (sweep / ".submitit" / record[num]["slurm_job_id"]).is_dir()
        [wandb_run] = list((job / "wandb").glob("offline-run-*"))
        assert read_offline_run(wandb_run).history_keys
    table = (sweep / "results.md").read_text()
    assert "seed=1" in table and "seed=2" in table
    # The scheduler's own record: both jobs completed (sacct, or the job completion log).
    assert wait_for_record(job_ids) == dict.fromkeys(job_ids, "COMPLETED")


def test_detached_sweep_returns_at_once_and_runs_on_without_it(
    cluster, tmp_path, synthetic_root
) -> None:
    started = time.time()
    result = run_cli(
        _sweep_args(
            synthetic_root,
            "seed=1,2",
            "hydra.launcher.detach=true",
            "hydra.launcher.array_parallelism=1",
        ),
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=300,
    )
    submit_s = time.time() - started
    sweep = only_sweep(tmp_path)
    record = submission(sweep)
    job_ids = [record[num]["slurm_job_id"] for num in ("0", "1")]
    try:
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Detached: 2 SLURM job(s) queued" in result.stderr + result.stdout
        # One at a time (array_parallelism=1): job 1 is still queued behind job 0.
        assert unfinished_states(sweep).get(1) == "pending"
        # The jobs finish without the submitting process; the report collects them.
        deadline = time.time() + 600
        while time.time() < deadline and not all(
            (sweep / num / "metrics.json").is_file() for num in ("0", "1")
        ):
            time.sleep(3)
        _report(sweep, tmp_path)
        assert _states(sweep) == {"0": "done", "1": "done"}
    except BaseException:
        cancel(job_ids)  # a failing test leaves nothing in the queue (a passing one
        raise  # leaves the scheduler's record alone: cancelling ended jobs marks them)
    assert wait_for_record(job_ids) == dict.fromkeys(job_ids, "COMPLETED")
    assert submit_s < 120, f"detached submission took {submit_s:.0f}s"


def _report(sweep: Path, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "fracture_lit.report", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _states(sweep: Path) -> dict[str, str]:
    """Each job's status column in the sweep's results.csv."""
    import csv

    with (sweep / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {row["job"]: row["status"] for row in rows}


def _comparable(summary: dict) -> dict:
    """What an uninterrupted and a resumed run must agree on exactly."""
    return {
        "epochs": summary.get("epochs"),
        "best": Path(summary["best_model_path"]).name if summary.get("best_model_path") else None,
        "val": summary.get("val"),
        "test": summary.get("test"),
    }


LONGER = ["trainer.max_epochs=6", "data.n_per_class=48"]


@pytest.mark.slow
def test_requeued_job_resumes_and_ends_as_if_uninterrupted(cluster, tmp_path, synthetic_root):
    """Two identical jobs (they differ only in a tag); job 1 is requeued with `scontrol
    requeue` after its first checkpoint. SLURM starts it again, it resumes from
    last.ckpt, and both end with the same metrics, and job 1 with a single W&B run id."""
    sweep, job_ids = submit_detached(
        _sweep_args(
            tmp_path / "synthetic48",  # more images than the shared tiny set
            *LONGER,
            "tags=[plain],[requeued]",
            "hydra.launcher.detach=true",
            *NO_WANDB_LOGIN,
        ),
        tmp_path,
        _env(tmp_path),
    )
    requeued_job, requeued_dir = job_ids[1], sweep / "1"
    try:
        requeue_after_first_checkpoint(requeued_job, requeued_dir, timeout=600)
        wait_until(
            lambda: (
                all((sweep / n / "metrics.json").is_file() for n in ("0", "1"))
                and _metrics(requeued_dir)["status"] in ("done", "failed")
            ),
            900,
            "both jobs to finish",
            poll=2,
        )
    except BaseException:
        cancel(job_ids)  # only when the test fails: see the detached test
        raise
    # The scheduler's own record: the requeued job ended COMPLETED on its second start.
    assert wait_for_record(job_ids) == dict.fromkeys(job_ids, "COMPLETED")
    plain, requeued = _metrics(sweep / "0"), _metrics(requeued_dir)
    assert requeued["status"] == "done", requeued.get("error")
    assert _comparable(requeued) == _comparable(plain)
    # It really was stopped and resumed: the first attempt logged the signal.
    logs = "".join(p.read_text(errors="replace") for p in requeued_dir.glob("*.log"))
    assert "SIGTERM" in logs and "Resuming from" in logs
    # The first attempt ended as preempted, not as a failed job (W&B's service, signalled
    # with the step, must not turn the preemption into an error).
    assert "Job failed" not in logs, logs[-3000:]
    ids = {p.name.rsplit("-", 1)[-1] for p in (requeued_dir / "wandb").glob("offline-run-*")}
    assert len(ids) == 1, ids  # one W&B run, continued


@pytest.mark.slow
def test_sweep_survives_its_submitting_process_and_resumes(cluster, tmp_path, synthetic_root):
    """kill -9 of the submitting process while job 1 of 3 runs: the jobs run on in SLURM;
    the same command with hydra.sweep.dir adopts the queued ones (no double submission),
    keeps the done one, and ends with a report of 3 done jobs."""
    args = _sweep_args(synthetic_root, "seed=1,2,3", "hydra.launcher.array_parallelism=1")
    env = {**__import__("os").environ, **_env(tmp_path)}
    first = subprocess.Popen(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sweep: Path | None = None
    try:
        wait_until(
            lambda: list((tmp_path / "multirun_outputs").glob("*/*/slurm_jobs.json")),
            300,
            "submission",
        )
        sweep = only_sweep(tmp_path)
        wait_until(lambda: (sweep / "1").is_dir(), 600, "job 1 to start", poll=0.5)
        first.kill()
        first.wait(30)
        record = submission(sweep)
        job0_done = (sweep / "0" / "metrics.json").stat().st_mtime
        second = run_cli(
            [*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=_env(tmp_path), timeout=900
        )
        assert second.returncode == 0, second.stderr[-4000:]
    except BaseException:
        if sweep is not None and (sweep / "slurm_jobs.json").is_file():
            cancel([job["slurm_job_id"] for job in submission(sweep).values()])
        raise
    finally:
        if first.poll() is None:
            first.kill()
    again = submission(sweep)
    # Job 2 was still queued behind job 1: adopted, not submitted a second time.
    assert again["2"]["slurm_job_id"] == record["2"]["slurm_job_id"]
    assert "already pending as SLURM job" in second.stderr + second.stdout
    assert (sweep / "0" / "metrics.json").stat().st_mtime == job0_done  # kept, not rerun
    assert [_metrics(sweep / n)["status"] for n in "012"] == ["done"] * 3
    table = (sweep / "results.md").read_text()
    assert all(f"seed={s}" in table for s in (1, 2, 3))


def test_report_marks_jobs_still_in_the_queue_pending(tmp_path: Path) -> None:
    """A detached sweep's report lists a job the scheduler still holds as pending, not failed."""
    require_cluster()
    from fracture_lit.results.folders import load_jobs
    from fracture_lit.utils.slurm_jobs import record_submission

    held = (
        subprocess.run(
            ["sbatch", "--hold", "--parsable", "--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .split(";")[0]
    )
    try:
        record_submission(tmp_path, {0: {"overrides": ["seed=1"], "slurm_job_id": held}})
        (job,) = load_jobs(tmp_path)
        assert (job.num, job.status, job.overrides) == (0, "pending", ["seed=1"])
        cancel([held])
        deadline = time.time() + 30
        while unfinished_states(tmp_path) and time.time() < deadline:
            time.sleep(1)
        (job,) = load_jobs(tmp_path)  # gone from the queue without results: failed
        assert job.status == "failed" and "no metrics.json" in job.error
    finally:
        cancel([held])
