"""The "vs best" column and calibration columns of a sweep report, on job folders laid out as
training writes them (metrics.json, config.yaml, review/test/predictions.csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.results.sweep_report import write_report


def _job(sweep: Path, num: int, backbone: str, val_auroc: float, scores: np.ndarray, labels):
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={backbone}"]))
    data = {"_target_": "x.FracAtlasDataModule", "root": str(sweep / "data"), "split_seed": 42}
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    SplitPredictions(
        split="test",
        class_names=["non_fractured", "fractured"],
        paths=[str(sweep / "data" / f"IMG{i:04d}.jpg") for i in range(labels.size)],
        labels=labels,
        probs=np.column_stack([1 - scores, scores]),
        threshold=0.5,
    ).write_csv(folder / "review" / "test" / "predictions.csv")
    summary = {
        "status": "done",
        "backbone": backbone,
        "classes": ["non_fractured", "fractured"],
        "val": {"metrics": {"val/auroc": val_auroc}, "n": 50},
        "test": {
            "metrics": {"test/auroc": 0.8, "test/ece": 0.05, "test/brier": 0.2},
            "ci95": {"ece": [0.05, 0.02, 0.09], "brier": [0.2, 0.15, 0.25]},
            "n": int(labels.size),
        },
    }
    (folder / "metrics.json").write_text(json.dumps(summary))


def test_sweep_report_has_vs_best_and_calibration_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(120) < 0.4).astype(np.int64)
    strong = 1 / (1 + np.exp(-(2.5 * (2 * labels - 1) + rng.normal(size=120))))
    weak = 1 / (1 + np.exp(-(0.2 * (2 * labels - 1) + rng.normal(size=120))))
    _job(tmp_path, 0, "resnet18", 0.90, strong, labels)
    _job(tmp_path, 1, "efficientnet_b0", 0.70, weak, labels)
    write_report(tmp_path, show=False, html=True)
    md = (tmp_path / "results.md").read_text()
    assert "vs best" in md and "ECE" in md and "Brier" in md
    assert "resnet18 is the best job by val/auroc (0.900)." in md
    assert "efficientnet_b0 is worse than resnet18: ΔAUROC -0." in md
    with (tmp_path / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["test_vs_best"] == "best (val/auroc 0.900)"
    assert (
        rows[1]["test_vs_best"].startswith("ΔAUROC -0.") and "p=<0.001" in rows[1]["test_vs_best"]
    )
    assert rows[0]["test_ece"] == "0.05" and rows[0]["test_brier_high"] == "0.25"
    record = json.loads((tmp_path / "vs_best.json").read_text())
    assert record["best"] == "resnet18"
    assert record["comparisons"]["efficientnet_b0"]["verdict"] == "worse"
    page = (tmp_path / "report.html").read_text()
    assert "vs best" in page and "is worse than" in page
