"""Localization in the reports, on folders laid out as training writes them: the sweep's
localization columns (with the paired comparison against the best job) in results.md,
results.csv and the HTML page, and the run page's section."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fracture_lit.layout import ReviewLayout
from fracture_lit.localization.files import save_heatmaps
from fracture_lit.localization.names import IMAGE_SCORES, METHODS
from fracture_lit.results.sweep_report import write_report

N_IMAGES = 60


def _block(pointing: np.ndarray, regions_file: str) -> dict:
    """A localization block as the review writes it (its numbers from ``pointing``)."""
    mean = float(pointing.mean())
    scores = {"value": mean, "low": mean - 0.1, "high": mean + 0.1}
    method = {s: dict(scores) for s in (*IMAGE_SCORES, "max_box_acc")}
    return {
        "n_images": int(pointing.size),
        "n_regions": int(pointing.size),
        "target_layer": "layer4",
        "explains": "fractured",
        "image_size": 64,
        "resize_mode": "resize",
        "decision_threshold": 0.4,
        "regions_file": regions_file,
        "settings": {"tolerance_px": 15.0, "threshold": 0.15, "box_min_iou": 0.5},
        "skipped": {},
        "groups": {"all": {"n": int(pointing.size), **{m: method for m in METHODS}}},
        "panels": [],
    }


def _job(sweep: Path, num: int, backbone: str, val: float, test: np.ndarray, root: str) -> None:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={backbone}"]))
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"root": root}}))
    ids = [f"{root}/images/Fractured/IMG{i:04d}.jpg" for i in range(test.size)]
    columns = np.column_stack([test, test / 2, test / 3, test])
    save_heatmaps(
        ReviewLayout(folder / "review").localization("test"),
        ids,
        np.zeros((test.size, 4, 4)),
        {"split": "test"},
        scores={m: columns for m in METHODS},
        columns=IMAGE_SCORES,
    )
    regions = str(sweep / "regions.json")
    summary = {
        "status": "done",
        "backbone": backbone,
        "classes": ["non_fractured", "fractured"],
        "val": {"metrics": {"val/auroc": 0.8}, "n": 76},
        "test": {"metrics": {"test/auroc": 0.8}, "n": 76},
        "localization": {
            "val": _block(np.full(20, val), regions),
            "test": _block(test, regions),
        },
    }
    (folder / "metrics.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    weak = (rng.random(N_IMAGES) < 0.2).astype(float)
    strong = np.maximum(weak, rng.random(N_IMAGES) < 0.6)  # every hit of weak, and more
    root = str(tmp_path / "FracAtlas")
    _job(tmp_path, 0, "resnet18", 0.30, weak, root)
    _job(tmp_path, 1, "efficientnet_b0", 0.55, strong, root)
    _job(tmp_path, 2, "mobilenetv2_100", 0.10, weak, str(tmp_path / "other"))
    write_report(tmp_path, show=False, html=True)
    return {"folder": tmp_path, "weak": weak, "strong": strong}


def test_sweep_shows_the_localization_column_and_its_paired_comparison(sweep: dict) -> None:
    folder, weak, strong = sweep["folder"], sweep["weak"], sweep["strong"]
    with (folder / "results.csv").open() as stream:
        rows = {r["backbone"]: r for r in csv.DictReader(stream)}
    assert rows["resnet18"]["test_localization"].startswith(f"{weak.mean():.3f} [")
    assert rows["resnet18"]["test_localization"].endswith(f"(n={N_IMAGES})")
    assert rows["resnet18"]["val_localization"].startswith("0.300")
    # The best job is chosen on validation (efficientnet_b0, 0.55), compared on test.
    assert rows["efficientnet_b0"]["test_localization_vs_best"] == "best (val pointing 0.550)"
    cell = rows["resnet18"]["test_localization_vs_best"]
    delta = weak.mean() - strong.mean()
    assert cell.startswith(f"Δpointing {delta:+.3f} [") and "p=<0.001" in cell
    low, high = (float(x) for x in cell.split("[")[1].split("]")[0].split(", "))
    assert low <= delta <= high < 0  # a paired interval: the strong job hits every weak hit
    assert rows["mobilenetv2_100"]["test_localization_vs_best"].startswith(
        "not compared: data.root differs"
    )
    assert rows["resnet18"]["val_localization_vs_best"] == ""
    md = (folder / "results.md").read_text()
    assert "localization (pointing game)" in md and "localization vs best" in md
    assert "efficientnet_b0 has the best validation pointing game (0.550)." in md
    assert f"resnet18 vs efficientnet_b0 on {N_IMAGES} test images: Δpointing" in md
    page = (folder / "report.html").read_text()
    assert "localization vs best" in page and "best (val pointing 0.550)" in page
    # Each job's section on the sweep page has its localization table.
    assert page.count("Localization, test (95% bootstrap CI)") == 3


def test_job_page_has_the_section_with_baselines(sweep: dict) -> None:
    page = (sweep["folder"] / "0" / "report.html").read_text()
    assert "Localization: where does the model look?" in page
    for row in ("Grad-CAM", "random heatmap", "centre prior"):
        assert f"<td>{row}</td>" in page
    # Validation first, whatever order metrics.json has.
    assert page.index("Localization, validation") < page.index("Localization, test")


def test_a_sweep_without_regions_has_no_localization_column(tmp_path: Path) -> None:
    for num in (0, 1):
        folder = tmp_path / str(num)
        folder.mkdir()
        summary = {"status": "done", "backbone": f"b{num}", "test": {"metrics": {}, "n": 5}}
        (folder / "metrics.json").write_text(json.dumps(summary))
    write_report(tmp_path, show=False, html=True)
    assert "localization" not in (tmp_path / "results.md").read_text()
    assert "Localization" not in (tmp_path / "report.html").read_text()
