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

from tests.conftest import TINY, run_cli
from tests.slurm_cluster import cancel, require_cluster, wait_for_record
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


def _only_sweep(tmp_path: Path) -> Path:
    sweeps = list((tmp_path / "multirun_outputs").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def _record(sweep: Path) -> dict[str, dict]:
    return json.loads((sweep / "slurm_jobs.json").read_text())


def _metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_two_job_sweep_on_slurm(cluster, tmp_path, synthetic_root) -> None:
    result = run_cli(
        _sweep_args(synthetic_root, "seed=1,2", *NO_WANDB_LOGIN),
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=900,
    )
    sweep = _only_sweep(tmp_path)
    record = _record(sweep)
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


def test_detached_sweep_returns_at_once_and_report_marks_unfinished_jobs(
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
    sweep = _only_sweep(tmp_path)
    record = _record(sweep)
    job_ids = [record[num]["slurm_job_id"] for num in ("0", "1")]
    try:
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Detached: 2 SLURM job(s) queued" in result.stderr + result.stdout
        # One at a time (array_parallelism=1): job 1 waits while job 0 runs.
        report = _report(sweep, tmp_path)
        states = _states(sweep)
        assert states["1"] in ("pending", "running"), (states, report)
        assert not (sweep / "0" / "metrics.json").exists() or states["1"] == "pending"
        # The jobs finish without the submitting process, and the report collects them.
        deadline = time.time() + 600
        while time.time() < deadline and not all(
            (sweep / num / "metrics.json").is_file() for num in ("0", "1")
        ):
            time.sleep(3)
        _report(sweep, tmp_path)
        final = _states(sweep)
        assert final == {"0": "done", "1": "done"}, final
    finally:
        cancel(job_ids)
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
    return {row["job_num"] if "job_num" in row else row["run"]: row["status"] for row in rows}
