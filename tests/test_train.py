"""End-to-end training runs on the tiny synthetic task, through the real entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from fracture_lit.metrics import METRIC_KEYS
from fracture_lit.tasks.training import run
from tests.conftest import REPO_ROOT, TINY, run_cli


def test_run_writes_the_run_folder(tiny_cfg, tmp_path: Path) -> None:
    results = run(tiny_cfg())
    assert results["status"] == "done"
    out = tmp_path
    assert (out / "config.yaml").is_file()
    assert (out / "model_card.md").is_file() and (out / "report.html").is_file()
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("epoch_") for n in ckpts)
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    assert any(r.get("val/auroc") for r in rows) and any(r.get("train/loss") for r in rows)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["status"] == "done"
    for stage in ("val", "test"):
        metrics = summary[stage]["metrics"]
        for key in METRIC_KEYS:
            assert 0.0 <= metrics[f"{stage}/{key}"] <= 1.0 or key == "kappa"
        cm = summary[stage]["confusion_matrix"]
        assert sum(map(sum, cm)) == summary[stage]["n"]
    assert 0.0 <= summary["val"]["metrics"]["val/youden_threshold"] <= 1.0
    # The test threshold is the one chosen on validation, never on test.
    assert summary["test"]["metrics"]["test/threshold"] == pytest.approx(
        summary["val"]["metrics"]["val/youden_threshold"], abs=1e-6
    )
    low, high = summary["test"]["ci95"]["auroc"][1:]
    assert low <= summary["test"]["ci95"]["auroc"][0] <= high
    manifest = list(csv.DictReader((out / "split_manifest.csv").open()))
    assert {r["split"] for r in manifest} == {"train", "val", "test"}
    # No regions (the synthetic default): no localization computed, stored or shown.
    assert "localization" not in summary and not list(out.glob("review/*/localization*"))
    assert "Localization" not in (out / "report.html").read_text()


def test_checkpoint_loads_with_weights_only(tiny_cfg, tmp_path: Path) -> None:
    results = run(tiny_cfg())
    ckpt = torch.load(results["best_model_path"], map_location="cpu", weights_only=True)
    assert ckpt["fracture_lit"]["class_names"] == ["intact", "fractured"]
    assert 0.0 <= ckpt["fracture_lit"]["decision_threshold"] <= 1.0
    assert "net.conv1.weight" in ckpt["state_dict"]


def test_same_seed_same_result(tiny_cfg) -> None:
    first = run(tiny_cfg("seed=7"))["val"]["metrics"]
    second = run(tiny_cfg("seed=7"))["val"]["metrics"]
    assert first["val/loss"] == pytest.approx(second["val/loss"], rel=1e-5)
    assert first["val/auroc"] == pytest.approx(second["val/auroc"], rel=1e-5)


def test_local_weights_file_loads_through_the_config(tiny_cfg, tmp_path: Path) -> None:
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    weights = tmp_path / "resnet18_weights.pth"
    torch.save(source.state_dict(), weights)
    cfg = tiny_cfg(f"model.pretrained_file={weights}")
    import hydra

    model = hydra.utils.instantiate(cfg.model, num_classes=2, class_names=["a", "b"])
    assert torch.equal(model.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert model.net.fc.out_features == 2


def test_multirun_writes_one_folder_per_job(tmp_path: Path, synthetic_root: Path) -> None:
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            "model=resnet18,mobilenetv2_100",
            f"data.root={synthetic_root}",
            *TINY,
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "multirun_outputs").glob("*/*"))
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    backbones = {json.loads((j / "metrics.json").read_text())["backbone"] for j in jobs}
    assert backbones == {"resnet18", "mobilenetv2_100"}


def test_runs_from_any_working_directory(tmp_path: Path, synthetic_root: Path) -> None:
    result = run_cli(
        ["-m", "fracture_lit.train", f"data.root={synthetic_root}", *TINY, "test=false"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*/metrics.json"))
    assert len(runs) == 1
    assert REPO_ROOT not in runs[0].parents
