"""k-fold sweeps pool: per-fold rows, mean ± sd, and the out-of-fold AUROC with its CI."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from fracture_lit.results.folders import load_jobs
from fracture_lit.results.pooled import bootstrap_auroc, pooled_auroc
from fracture_lit.results.sweep_report import write_report
from fracture_lit.stats.auroc import auroc
from tests.conftest import TINY, run_cli

CLASSES = ["intact", "fractured"]


def _fold_job(sweep: Path, fold: int, rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """A finished fold: metrics.json and review/val/predictions.csv of its held-out part."""
    job = sweep / str(fold)
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"data.fold={fold}", "data.n_folds=3", "model=resnet18"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    labels = rng.integers(0, 2, n)
    probs = np.clip(0.3 * labels + rng.uniform(0, 0.7, n), 0, 1).round(6)
    acc = 0.7 + 0.05 * fold
    stage = {
        "metrics": {"val/acc": acc, "val/auroc": 0.8 + 0.01 * fold},
        "ci95": {"acc": [acc, acc - 0.1, acc + 0.1]},
        "n": n,
    }
    summary = {"status": "done", "backbone": "resnet18", "classes": CLASSES, "val": stage}
    (job / "metrics.json").write_text(json.dumps(summary))
    (job / "review" / "val").mkdir(parents=True)
    with (job / "review" / "val" / "predictions.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label", "predicted", "correct", "prob_intact", "prob_fractured"])
        for i, (label, p) in enumerate(zip(labels, probs, strict=True)):
            writer.writerow([f"f{fold}_{i}.png", CLASSES[label], "-", 0, round(1 - p, 6), p])
    return np.stack([labels, probs])


@pytest.fixture
def kfold_sweep(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    sweep = tmp_path / "sweep"
    pooled = np.concatenate([_fold_job(sweep, k, rng) for k in range(3)], axis=1)
    return sweep, pooled


def test_auroc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 5, 200) / 4 + 0.1 * labels  # many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(auroc(scores, np.ones(200)))
    point, low, high = bootstrap_auroc(scores, labels, n_boot=200)
    assert low < point < high


def test_pooled_auroc_scores_every_held_out_image_once(kfold_sweep) -> None:
    sweep, (labels, probs) = kfold_sweep
    result = pooled_auroc(load_jobs(sweep), "val")
    assert result is not None and result.folds == 3
    assert result.n == 120 and result.n_positive == int(labels.sum())
    assert result.auroc == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
    assert result.low < result.auroc < result.high
    # A fold without predictions is left out of the pool, not counted as empty.
    (sweep / "2" / "review" / "val" / "predictions.csv").unlink()
    assert pooled_auroc(load_jobs(sweep), "val").n == 80


def test_fold_sweep_report_has_per_fold_rows_and_a_pooled_row(kfold_sweep) -> None:
    sweep, (labels, probs) = kfold_sweep
    write_report(sweep, show=False, html=True)
    md = (sweep / "results.md").read_text()
    per_fold = md.split("## Validation, best checkpoint")[1].split("##")[0]
    assert all(f"| {k} | resnet18 | 40 |" in per_fold for k in range(3))
    pooled = md.split("## Validation: mean ± sd over folds")[1].split("##")[0]
    header = next(line for line in pooled.splitlines() if line.startswith("| jobs"))
    assert "| folds | n folds |" in header and header.endswith("pooled out-of-fold AUROC |")
    row = next(line for line in pooled.splitlines() if line.startswith("| 0, 1, 2 |"))
    assert "| 0, 1, 2 | 3 |" in row
    accs = [0.70, 0.75, 0.80]
    assert f"{statistics.fmean(accs):.3f} ± {statistics.stdev(accs):.3f}" in row
    assert f"{roc_auc_score(labels, probs):.3f} [" in row and "(n=120)" in row
    assert "Pooled out-of-fold AUROC" in pooled  # the note on how to read it
    assert "mean ± sd over folds" in (sweep / "report.html").read_text()


def test_real_fold_sweep_pools_its_folds(tmp_path: Path, synthetic_root: Path) -> None:
    """``-m data.fold=0,1,2`` through Hydra: the report pools the real held-out predictions."""
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            "data.fold=0,1,2",
            "data.n_folds=3",
            f"data.root={synthetic_root}",
            "callbacks.review.gradcam=false",
            *TINY,
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "multirun_outputs").glob("*/*")
    jobs = load_jobs(sweep)
    assert [j.status for j in jobs] == ["done"] * 3
    parts = []
    for job in jobs:
        with (job.folder / "review" / "val" / "predictions.csv").open() as stream:
            parts += list(csv.DictReader(stream))
    paths = [r["path"] for r in parts]
    assert len(paths) == len(set(paths))  # each image held out by exactly one fold
    labels = [r["label"] == "fractured" for r in parts]
    expected = roc_auc_score(labels, [float(r["prob_fractured"]) for r in parts])
    pooled = pooled_auroc(jobs, "val")
    assert pooled.n == len(parts) and pooled.auroc == pytest.approx(expected, abs=1e-9)
    md = (sweep / "results.md").read_text()
    assert f"{expected:.3f} [{pooled.low:.3f}, {pooled.high:.3f}] (n={len(parts)})" in md
    assert "Validation: mean ± sd over folds" in result.stdout
