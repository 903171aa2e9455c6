"""Cross-validation that pools: the out-of-fold AUROC of a k-fold sweep.

Each fold of a ``-m data.fold=0,1,...`` sweep holds out a different part of the data as
its validation split, and the review of the best checkpoint writes that split's
predictions to ``<job>/review/val/predictions.csv``. Scored as one set, those predictions
give the pooled out-of-fold AUROC: every image counted once, by the model that did not
train on it, with a bootstrap interval over images. The per-fold mean ± sd sits beside it
(:mod:`.table`).

numpy only (a report runs without torch); AUROC is the Mann-Whitney statistic with
average ranks for ties, which equals the area under the empirical ROC curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult, read_csv

__all__ = ["PooledAUROC", "auroc", "bootstrap_auroc", "pooled_auroc", "read_predictions"]

N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class PooledAUROC:
    """AUROC of the pooled predictions with its percentile bootstrap 95% CI."""

    auroc: float
    low: float
    high: float
    n: int
    n_positive: int
    folds: int

    def cell(self) -> str:
        return f"{self.auroc:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (NaN with one class)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, float)
    ranks[order] = np.arange(1, scores.size + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # tied scores share their average rank
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auroc(
    scores: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    """``(auroc, low, high)``: percentile 95% CI over image resamples holding both classes."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, labels.size, labels.size)
        resampled = labels[idx]
        if resampled.all() or not resampled.any():
            continue  # AUROC is undefined without both classes
        values.append(auroc(scores[idx], resampled))
    point = auroc(scores, labels)
    if not values:
        return point, float("nan"), float("nan")
    low, high = np.quantile(values, [0.025, 0.975])
    return point, float(low), float(high)


def read_predictions(job: JobResult, stage: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(positive-class probability, is positive)`` of one job's reviewed split.

    None when the file is missing or the task is not binary. The positive class is the
    last of metrics.json's ``classes`` (fracture datasets put it there).
    """
    rows = read_csv(RunLayout(job.folder).review.predictions(stage))
    if not rows:
        return None
    prob_columns = [c for c in rows[0] if c.startswith("prob_")]
    classes = job.classes or [c[len("prob_") :] for c in prob_columns]
    if len(classes) != 2 or f"prob_{classes[1]}" not in rows[0]:
        return None
    positive = classes[1]
    try:
        scores = np.array([float(r[f"prob_{positive}"]) for r in rows])
    except (TypeError, ValueError):
        return None
    labels = np.array([r.get("label") == positive for r in rows])
    return scores, labels


def pooled_auroc(
    jobs: Sequence[JobResult], stage: str = "val", n_boot: int = N_BOOTSTRAP
) -> PooledAUROC | None:
    """The AUROC of every job's ``stage`` predictions pooled; None unless two jobs have them."""
    parts = [p for j in jobs if (p := read_predictions(j, stage)) is not None]
    if len(parts) < 2:
        return None
    scores = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.all() or not labels.any():
        return None
    point, low, high = bootstrap_auroc(scores, labels, n_boot)
    return PooledAUROC(point, low, high, int(labels.size), int(labels.sum()), len(parts))
