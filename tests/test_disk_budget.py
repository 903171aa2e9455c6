"""Sweeps that fit their disk: the estimate before the first job (sweeps/disk_check.py),
the sweep_lean checkpoint preset, and each job's disk use in the sweep report."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
import torch

from fracture_lit.sweeps.disk_check import check_fits, count_values
from fracture_lit.utils.disk_budget import MB, folder_bytes, job_need, optimizer_slots, sweep_need
from tests.conftest import TINY
from tests.resume_helpers import environment, train_command

SMALL = "mobilenetv3_small_050"


def test_estimates_follow_parameters_optimizer_and_preset() -> None:
    values = count_values("resnet18", 1, 2)
    assert 11_000_000 < values < 11_400_000  # resnet18: 11.2 M parameters and buffers
    assert count_values("efficientnet_b6", 3, 2) > 3 * values
    adam, sgd = optimizer_slots("torch.optim.Adam", {}), optimizer_slots("torch.optim.SGD", {})
    assert (adam, sgd, optimizer_slots("torch.optim.SGD", {"momentum": 0.9})) == (2, 0, 1)
    default = job_need(values, adam)
    lean = job_need(values, adam, best_weights_only=True, remove_last=True)
    assert 125 * MB < default.full < 140 * MB  # what a resnet18 + Adam checkpoint weighs
    assert default.full > 2.9 * (default.weights - 1 * MB)
    assert lean.done < default.done / 4
    assert sweep_need([lean] * 10, 1) < sweep_need([default] * 10, 1) / 3
    assert sweep_need([default] * 10, 2) == 10 * default.done + 2 * default.running


def test_tight_disk_warns_and_a_sweep_that_cannot_fit_is_refused(tmp_path: Path, caplog) -> None:
    needs = [job_need(count_values("resnet18", 1, 2), 2)] * 4
    total = sweep_need(needs, 1)
    with caplog.at_level("INFO"):
        assert check_fits(needs, 1, tmp_path, free=int(total * 1.1)) == total
    assert "(tight)" in caplog.text and "4 job(s) to run" in caplog.text
    with pytest.raises(SystemExit) as info:
        check_fits(needs, 1, tmp_path, free=total // 2)
    assert info.value.code == 1


def _sweep(tmp_path: Path, sweep: Path, synthetic_root: Path, *extra: str) -> list[str]:
    return [
        *train_command(),
        "-m",
        *TINY,
        "trainer.max_epochs=2",
        "model=timm",
        f"model.backbone={SMALL}",
        f"data.root={synthetic_root}",
        "~callbacks.review",
        "test=false",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=root, env=environment(root), capture_output=True, text=True, timeout=900
    )


def test_sweep_that_cannot_fit_is_refused_before_any_job(
    tmp_path: Path, synthetic_root: Path
) -> None:
    sweep = tmp_path / "sweep"
    args = _sweep(tmp_path, sweep, synthetic_root, "seed=1,2,3")
    result = _run([*args, "hydra.callbacks.disk_budget.free_bytes=5e6"], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = errors[0]
    assert f"in {sweep} (3 job(s) to run" in line and "has 5.0 MB free" in line
    assert "refusing to start it (nothing was run)" in line and "callbacks=sweep_lean" in line
    assert not sweep.exists()  # no job folder, not even the sweep folder


@pytest.mark.timeout(900)
def test_lean_preset_keeps_only_the_best_weights_and_the_report_counts_disk(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """Job 0 with the default checkpoints, job 1 with callbacks=sweep_lean: job 1 keeps one
    weights-only best checkpoint that eval's loader reads, and far less disk; the estimate
    of a complete checkpoint is within a few percent of the file written."""
    from fracture_lit.models.loading import load_checkpoint

    sweep = tmp_path / "sweep"
    result = _run(_sweep(tmp_path, sweep, synthetic_root, "callbacks=default,sweep_lean"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Disk: the sweep needs about" in result.stdout + result.stderr

    default, lean = sweep / "0" / "checkpoints", sweep / "1" / "checkpoints"
    assert (default / "last.ckpt").is_file()
    (best,) = lean.iterdir()  # the best weights, nothing else
    assert best.name.startswith("epoch_")
    saved = torch.load(best, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in saved and "fracture_lit" in saved
    loaded = load_checkpoint(best)
    assert loaded.backbone == SMALL
    default_best = next(p for p in default.iterdir() if p.name.startswith("epoch_"))
    assert best.stat().st_size < default_best.stat().st_size / 2.5
    assert folder_bytes(sweep / "1") < folder_bytes(sweep / "0") / 2

    estimate = job_need(count_values(SMALL, 1, 2), 2).full
    actual = (default / "last.ckpt").stat().st_size
    assert actual <= estimate < 1.3 * actual

    with (sweep / "results.csv").open() as stream:
        rows = {row["job"]: row for row in csv.DictReader(stream)}
    # Measured when the report was written (each job's report.html came after).
    assert 0.9 < int(rows["0"]["disk_bytes"]) / folder_bytes(sweep / "0") <= 1.0
    assert int(rows["1"]["disk_bytes"]) < int(rows["0"]["disk_bytes"])
    markdown = (sweep / "results.md").read_text()
    assert "| disk |" in markdown.splitlines()[markdown.splitlines().index("## Jobs") + 2]
    assert "MB on disk" in markdown and "MB on disk" in (sweep / "report.html").read_text()
