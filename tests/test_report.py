"""The sweep report: hand-written job folders, then one real sweep through the Hydra callback."""

from __future__ import annotations

import csv
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf
from rich.console import Console

from fracture_lit.report import main
from fracture_lit.results.files import csv_columns
from fracture_lit.results.folders import NO_METRICS_ERROR, load_jobs
from fracture_lit.results.sweep_report import write_report
from fracture_lit.results.table import seed_groups
from fracture_lit.sweeps.callbacks import WriteSweepReport
from tests.conftest import REPO_ROOT, TINY, run_cli

SHARED = ["data=fracatlas", "trainer.max_epochs=3"]
PAPER = {
    "id": "A",
    "title": "A paper",
    "citation": "Someone (2025)",
    "reported": {
        # Percentages and aliases are accepted: 97.0 -> 0.97 under "sensitivity".
        "resnet18": {"test/acc": 0.9759, "sensitivity": 97.0, "val/auroc": 0.99},
        "default": {"test/acc": 0.5},
    },
}


def _stage(stage: str, acc: float, auroc: float, n: int = 100) -> dict[str, Any]:
    metrics = {
        f"{stage}/acc": acc,
        f"{stage}/recall": 0.8,
        f"{stage}/specificity": 0.7,
        f"{stage}/f1": 0.75,
        f"{stage}/auroc": auroc,
        f"{stage}/kappa": 0.5,
    }
    ci95 = {k.split("/")[1]: [v, v - 0.05, v + 0.05] for k, v in metrics.items()}
    return {"metrics": metrics, "confusion_matrix": [[1, 2], [3, 4]], "n": n, "ci95": ci95}


def _job(
    sweep: Path,
    num: int,
    overrides: list[str],
    summary: dict[str, Any] | None,
    config: dict[str, Any] | None = None,
) -> Path:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if summary is not None:
        (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def _done(job: str, backbone: str, test_acc: float, test_auroc: float) -> dict[str, Any]:
    return {
        "job": job,
        "backbone": backbone,
        "status": "done",
        "wall_time_s": 12.5,
        "epochs": 3,
        "best_model_path": "/x/epoch_002.ckpt",
        "stopped_early": False,
        "val": _stage("val", 0.81, 0.88),
        "test": _stage("test", test_acc, test_auroc),
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Jobs 0/1: one config, two seeds; 2 failed; 3 killed (no metrics.json); 10 done."""
    root = tmp_path / "multirun_outputs" / "2026-01-01" / "10-00-00_abc123"
    # As resolved from a preset: paper.model is ${hydra:runtime.choices.model}.
    resnet = {"model": {"backbone": "resnet18"}, "paper": {**PAPER, "model": "resnet18"}}
    for num, seed, acc, auroc in ((0, 1, 0.80, 0.90), (1, 2, 0.90, 0.94)):
        overrides = ["model=resnet18", f"seed={seed}", *SHARED]
        _job(root, num, overrides, _done(",".join(overrides), "resnet18", acc, auroc), resnet)
    _job(
        root,
        2,
        ["model=efficientnet_b0", "seed=1", *SHARED],
        {
            "job": "model=efficientnet_b0",
            "backbone": "efficientnet_b0",
            "status": "failed",
            "error": "RuntimeError: CUDA out of memory",
            "traceback": "Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n",
            "wall_time_s": 3.0,
        },
    )
    killed = _job(root, 3, ["model=resnet50", "seed=1", *SHARED], None)
    (killed / "train.log").write_text(
        "[2026-01-01 10:00:01][fracture_lit.train][INFO] - Instantiating model\n"
        "[2026-01-01 10:00:02][lightning][INFO] - Epoch 0\n"
    )
    mobilenet = {
        "model": {"backbone": "mobilenetv2_100"},
        "paper": {**PAPER, "model": "mobilenetv2_100"},
    }
    _job(
        root,
        10,
        ["model=mobilenetv2_100", *SHARED],
        _done("m", "mobilenetv2_100", 0.7, 0.8),
        mobilenet,
    )
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_csv_has_one_row_per_job_in_numeric_order(sweep: Path) -> None:
    paths = write_report(sweep, show=False)
    assert paths.csv == sweep / "results.csv" and paths.markdown.is_file()
    rows = _rows(paths.csv)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "10"]
    assert list(rows[0]) == csv_columns()
    done = rows[0]
    assert done["status"] == "done" and done["error"] == ""
    assert done["overrides"] == "model=resnet18 seed=1 data=fracatlas trainer.max_epochs=3"
    assert done["epochs"] == "3" and float(done["wall_time_s"]) == 12.5
    assert float(done["test_acc"]) == 0.80
    assert float(done["test_acc_low"]) == pytest.approx(0.75)
    assert float(done["test_acc_high"]) == pytest.approx(0.85)
    assert float(done["test_sensitivity"]) == 0.8 and float(done["val_auroc"]) == 0.88
    assert done["test_n"] == "100"


def test_failed_and_killed_jobs_are_listed_with_their_error(sweep: Path) -> None:
    rows = {r["job"]: r for r in _rows(write_report(sweep, show=False).csv)}
    assert rows["2"]["status"] == "failed"
    assert rows["2"]["error"] == "RuntimeError: CUDA out of memory"
    assert rows["2"]["test_acc"] == ""
    assert rows["3"]["status"] == "failed"
    # No metrics.json: the fixed message, then where the job's own log stopped.
    assert rows["3"]["error"].startswith(NO_METRICS_ERROR)
    assert rows["3"]["error"].endswith("Epoch 0")
    md = (sweep / "results.md").read_text()
    assert "failed: RuntimeError: CUDA out of memory" in md
    assert f"failed: {NO_METRICS_ERROR}" in md


def test_wrapped_error_reports_its_cause(tmp_path: Path) -> None:
    tb = (
        'Traceback (most recent call last):\n  File "f.py", line 1, in g\n'
        "fracture_lit.models.factory.UnknownBackboneError: Unknown backbone 'x' (model.backbone)."
        "\n\nThe above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "t.py", line 2, in run\n'
        "hydra.errors.InstantiationException: Error in call to target 'M':\n"
        "UnknownBackboneError(\"Unknown backbone 'x'\")\nfull_key: model\n"
    )
    summary = {
        "status": "failed",
        "error": "InstantiationException: Error in call to target 'M':",
        "traceback": tb,
    }
    _job(tmp_path, 0, ["model.backbone=x"], summary)
    [job] = load_jobs(tmp_path)
    assert job.error == "UnknownBackboneError: Unknown backbone 'x' (model.backbone)."


def test_seeds_of_one_config_are_aggregated(sweep: Path) -> None:
    jobs = load_jobs(sweep)
    [group] = seed_groups(jobs)  # 2, 3 and 10 have no second seed
    assert [j.num for j in group.jobs] == [0, 1]
    mean, sd = group.mean_sd("acc")
    assert mean == pytest.approx(0.85)
    assert sd == pytest.approx(statistics.stdev([0.80, 0.90]))
    write_report(sweep, show=False)
    md = (sweep / "results.md").read_text()
    test_seeds = md.split("## Test: mean ± sd over seeds")[1]
    seed_row = next(line for line in test_seeds.splitlines() if line.startswith("| 0, 1 |"))
    assert "| 1, 2 | 2 |" in seed_row
    assert f"0.850 ± {statistics.stdev([0.80, 0.90]):.3f}" in seed_row
    assert f"0.920 ± {statistics.stdev([0.90, 0.94]):.3f}" in seed_row  # AUROC


def test_paper_numbers_sit_beside_the_metrics(sweep: Path) -> None:
    rows = {r["job"]: r for r in _rows(write_report(sweep, show=False).csv)}
    # Keyed by the job's model; percentages become fractions; unprefixed names are test.
    assert float(rows["0"]["test_acc_paper"]) == 0.9759
    assert float(rows["0"]["test_sensitivity_paper"]) == pytest.approx(0.97)
    assert float(rows["0"]["val_auroc_paper"]) == 0.99
    assert rows["0"]["test_kappa_paper"] == ""
    # A backbone the paper does not list falls back to its "default" entry.
    assert float(rows["10"]["test_acc_paper"]) == 0.5
    assert rows["2"]["test_acc_paper"] == ""  # no paper block
    md = (sweep / "results.md").read_text()
    test_table = md.split("## Test (95% bootstrap CI)")[1].split("##")[0]
    header = next(line for line in test_table.splitlines() if line.startswith("| job"))
    assert header.startswith("| job | backbone | n | accuracy | paper | sensitivity | paper |")
    job0 = next(line for line in test_table.splitlines() if line.startswith("| 0 |"))
    assert "0.800 [0.750, 0.850] | paper 0.9759 | 0.800 [0.750, 0.850] | paper 0.97 |" in job0
    assert "Paper numbers" in md and "A · A paper" in md


def test_md_moves_shared_overrides_out_of_the_rows(sweep: Path) -> None:
    console = Console(record=True, width=200)
    write_report(sweep, console=console)
    md = (sweep / "results.md").read_text()
    assert "Overrides shared by every job: `data=fracatlas trainer.max_epochs=3`" in md
    assert "| 0 | model=resnet18 seed=1 | done | 3 | 12.5 s |" in md
    printed = console.export_text()
    assert "Jobs" in printed and "mean ± sd over seeds" in printed
    assert f"Wrote {sweep / 'results.md'}" in printed


def test_cli_writes_to_out_and_exits_2_without_jobs(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "elsewhere"
    assert main([str(sweep), "--out", str(out)]) == 0  # failed jobs do not fail the report
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    # The date folder above a sweep: no job folder, but the message names the sweep.
    assert main([str(sweep.parent)]) == 2
    assert str(sweep) in capsys.readouterr().err


def test_report_module_does_not_import_torch() -> None:
    code = (
        "import sys, fracture_lit.report, fracture_lit.sweeps.callbacks,"
        " fracture_lit.results.sweep_report;"
        "sys.exit('torch' in sys.modules or 'lightning' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


def test_callback_writes_the_report_and_never_raises(
    sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = WriteSweepReport(show=False)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert (sweep / "results.csv").is_file()
    missing = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "gone")}}})
    with caplog.at_level(logging.WARNING, logger="fracture_lit.report"):
        WriteSweepReport(show=False).on_multirun_end(missing)
    assert "Could not write the sweep report" in caplog.text


def test_sweep_ends_with_its_report(tmp_path: Path, synthetic_root: Path) -> None:
    # model=<missing config> would stop the whole sweep at composition; an unknown timm
    # name fails inside its job, which is the case the report is for.
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            "model.backbone=resnet18,not_a_model",
            f"data.root={synthetic_root}",
            *TINY,
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep_dir] = (tmp_path / "multirun_outputs").glob("*/*")
    assert (sweep_dir / "results.md").is_file()
    rows = _rows(sweep_dir / "results.csv")
    assert [(r["job"], r["backbone"], r["status"]) for r in rows] == [
        ("0", "resnet18", "done"),
        ("1", "not_a_model", "failed"),
    ]
    assert "Unknown backbone" in rows[1]["error"]
    for stage in ("val", "test"):
        for metric in ("acc", "sensitivity", "specificity", "f1", "auroc", "kappa"):
            assert rows[0][f"{stage}_{metric}"] != "", (stage, metric)
    assert float(rows[0]["test_auroc_low"]) <= float(rows[0]["test_auroc_high"])
    assert rows[0]["epochs"] == "1"
    assert "Sweep report" in result.stdout and "results.md" in result.stdout
