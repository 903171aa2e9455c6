"""Acceptance: a 3-backbone sweep on the real FracAtlas sample reports "vs best" (paired
ΔAUROC, its CI, DeLong's p), calibration columns and reliability diagrams, and the numbers
agree with an independent computation from the predictions the jobs saved."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tests.conftest import QUICK_TRAINER, run_cli
from tests.test_paired import brute_force_delong

BACKBONES = ("resnet18", "efficientnet_b0", "mobilenetv2_100")


@pytest.fixture(scope="module")
def sweep(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = shared_data / "FracAtlas"
    if not root.is_dir():
        pytest.skip(f"{root} not present (real dataset sample)")
    tmp = tmp_path_factory.mktemp("vs_best")
    sweep_dir = tmp / "sweep"
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            f"model={','.join(BACKBONES)}",
            "model.weights=none",
            "data=fracatlas",
            f"data.root={root}",
            f"data.cache_dir={tmp / 'cache'}",
            "data.image_size=32",
            "data.batch_size=32",
            *QUICK_TRAINER,
            "trainer.max_epochs=2",
            "callbacks.review.gradcam=false",
            "model.n_bootstrap=200",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp,
        env={"FRACTURE_LIT_ROOT": str(tmp)},
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return sweep_dir


def _predictions(job: Path) -> dict[str, tuple[float, int]]:
    with (job / "review" / "test" / "predictions.csv").open() as stream:
        return {
            Path(r["path"]).name: (float(r["prob_fractured"]), int(r["label"] == "fractured"))
            for r in csv.DictReader(stream)
        }


@pytest.mark.slow
def test_vs_best_numbers_match_an_independent_computation(sweep: Path) -> None:
    found = json.loads((sweep / "vs_best.json").read_text())
    jobs = {
        json.loads((p / "metrics.json").read_text())["backbone"]: p for p in sweep.glob("[0-9]")
    }
    assert set(jobs) == set(BACKBONES)
    # The best is chosen on validation, not test.
    val_auroc = {
        b: json.loads((p / "metrics.json").read_text())["val"]["metrics"]["val/auroc"]
        for b, p in jobs.items()
    }
    assert found["best"] == max(val_auroc, key=val_auroc.get)
    best = _predictions(jobs[found["best"]])
    assert set(found["comparisons"]) == set(BACKBONES) - {found["best"]}
    for name, record in found["comparisons"].items():
        other = _predictions(jobs[name])
        ids = sorted(best)
        assert sorted(other) == ids  # the same test images
        labels = np.array([best[i][1] for i in ids])
        a = np.array([other[i][0] for i in ids])
        b = np.array([best[i][0] for i in ids])
        delta = roc_auc_score(labels, a) - roc_auc_score(labels, b)
        assert record["auroc"]["delta"] == pytest.approx(delta, abs=1e-9)
        aucs, cov = brute_force_delong(np.vstack([a, b]), labels)
        se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
        p = 2 * stats.norm.sf(abs(delta) / se) if se > 0 else 1.0
        assert record["auroc"]["p"] == pytest.approx(p, rel=1e-6, abs=1e-12)
        # An independent paired bootstrap (numpy, 2000 resamples): same interval to within
        # the Monte-Carlo error of a percentile.
        rng = np.random.default_rng(123)
        deltas = []
        while len(deltas) < 2000:
            idx = rng.integers(0, labels.size, labels.size)
            if labels[idx].min() == labels[idx].max():
                continue
            deltas.append(roc_auc_score(labels[idx], a[idx]) - roc_auc_score(labels[idx], b[idx]))
        low, high = np.quantile(deltas, [0.025, 0.975])
        assert record["auroc"]["low"] == pytest.approx(low, abs=0.03)
        assert record["auroc"]["high"] == pytest.approx(high, abs=0.03)
        assert record["n"] == labels.size


@pytest.mark.slow
def test_report_shows_vs_best_calibration_and_reliability(sweep: Path) -> None:
    md = (sweep / "results.md").read_text()
    assert "vs best" in md and "ECE" in md and "Brier" in md
    assert "is the best job by val/auroc" in md
    assert any(
        phrase in md
        for phrase in (
            "is not distinguishable from",
            "is worse than",
            "is better than",
            "borderline",
        )
    )
    with (sweep / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert {"test_vs_best", "test_ece", "test_ece_low", "test_brier"} <= set(rows[0])
    assert sum(r["test_vs_best"].startswith("best") for r in rows) == 1
    assert sum(r["test_vs_best"].startswith("ΔAUROC") for r in rows) == 2
    page = (sweep / "report.html").read_text()
    assert "vs best" in page and "ECE" in page
    for job in sweep.glob("[0-9]"):
        assert (job / "review" / "test" / "reliability.png").is_file()
        assert "Reliability" in (job / "report.html").read_text()
