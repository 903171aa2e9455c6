"""Sweeps through the real Hydra launchers and sweepers, and DDP inside them (CPU, gloo)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli
from tests.wandb_records import read_offline_run


def _sweep(tmp_path: Path) -> Path:
    sweeps = list((tmp_path / "multirun_outputs").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def _jobs(sweep: Path) -> list[Path]:
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _n_split(run: Path, split: str) -> int:
    with (run / "split_manifest.csv").open() as handle:
        return sum(1 for row in csv.DictReader(handle) if row["split"] == split)


def _metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def _run_sweep(tmp_path: Path, synthetic_root: Path, *overrides: str, timeout: int = 900):
    result = run_cli(
        ["-m", "fracture_lit.train", "-m", f"data.root={synthetic_root}", *TINY, *overrides],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return _sweep(tmp_path)


def test_joblib_sweep_runs_jobs_in_parallel_processes(tmp_path, synthetic_root) -> None:
    sweep = _run_sweep(tmp_path, synthetic_root, "hydra/launcher=local_parallel", "seed=1,2")
    jobs = _jobs(sweep)
    assert len(jobs) == 2
    assert all(_metrics(j)["status"] == "done" for j in jobs)
    assert (sweep / "results.md").is_file()


def test_submitit_local_sweep(tmp_path, synthetic_root) -> None:
    sweep = _run_sweep(
        tmp_path,
        synthetic_root,
        "hydra/launcher=submitit_local",
        "seed=1,2",
        "hydra.launcher.timeout_min=20",
    )
    jobs = _jobs(sweep)
    assert len(jobs) == 2
    assert all(_metrics(j)["status"] == "done" for j in jobs)
    assert (sweep / "results.md").is_file()


def test_optuna_sweeper_searches_and_reads_the_objective(tmp_path, synthetic_root) -> None:
    sweep = _run_sweep(
        tmp_path,
        synthetic_root,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
    )
    jobs = _jobs(sweep)
    assert len(jobs) == 2
    lrs = {_metrics(j)["status"] for j in jobs}
    assert lrs == {"done"}
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "model.optimizer.lr" in best


@pytest.mark.ddp
def test_ddp_single_run_one_folder_full_validation(tmp_path, synthetic_root) -> None:
    no_login = {"WANDB_API_KEY": "", "NETRC": str(tmp_path / "none"), "HOME": str(tmp_path)}
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            f"data.root={synthetic_root}",
            *TINY,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "logger=wandb",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path), **no_login},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    run = runs[0]
    summary = _metrics(run)
    n_val = _n_split(run, "val")
    # Unpadded sharding: each validation image counted exactly once across both ranks.
    assert summary["val"]["n"] == n_val
    assert sum(map(sum, summary["val"]["confusion_matrix"])) == n_val
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert len(list((run / "checkpoints").glob("epoch_*.ckpt"))) == 1
    assert (run / "train_ddp_process_1.log").exists()  # rank 1 ran, in the same folder
    # Only rank 0 logs: one W&B run, one review (every validation image in it once).
    [wandb_run] = list((run / "wandb").glob("offline-run-*"))
    assert "val/gradcam/_type" in read_offline_run(wandb_run).history_keys
    with (run / "review" / "val" / "predictions.csv").open() as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == n_val


@pytest.mark.ddp
def test_ddp_inside_multirun_does_not_rerun_the_sweep(tmp_path, synthetic_root) -> None:
    sweep = _run_sweep(
        tmp_path,
        synthetic_root,
        "model=resnet18,mobilenetv2_100",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
    )
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    assert not (tmp_path / "outputs").exists()  # children did not start runs of their own
    for job, backbone in zip(jobs, ["resnet18", "mobilenetv2_100"], strict=True):
        summary = _metrics(job)
        assert summary["status"] == "done" and summary["backbone"] == backbone
        n_val = _n_split(job, "val")
        assert summary["val"]["n"] == n_val
        assert len(list((job / "checkpoints").glob("epoch_*.ckpt"))) == 1
