"""Cross-validation that pools: the out-of-fold AUROC of a k-fold sweep.

Each fold of a ``-m data.fold=0,1,...`` sweep holds out a different part of the data as
its validation split, and the review of the best checkpoint writes that split's
predictions to ``<job>/review/val/predictions.csv``. Scored as one set, those predictions
give the pooled out-of-fold AUROC: every image counted once, by the model that did not
train on it, with a bootstrap interval over images. The per-fold mean ± sd sits beside it
(:mod:`.table`).

The AUROC is the project's one (:mod:`fracture_lit.stats.auroc`) and its interval the one
bootstrap (:mod:`fracture_lit.stats.bootstrap`, torch: this module is imported only when
a k-fold sweep's table is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult, read_csv
from fracture_lit.stats.auroc import auroc
from fracture_lit.stats.bootstrap import bootstrap_ci

__all__ = [
    "PooledAUROC",
    "bootstrap_auroc",
    "pooled_auroc",
    "read_prediction_file",
    "read_predictions",
]

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


def bootstrap_auroc(
    scores: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    """``(auroc, low, high)``: percentile 95% CI over image resamples holding both classes
    (NaN bounds when no resample holds both)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    try:
        return bootstrap_ci(scores, labels, auroc, n_boot, seed=seed)
    except ValueError:  # no usable resample: the point stands alone
        return auroc(scores, labels), float("nan"), float("nan")


def read_prediction_file(
    path: Path, classes: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """``(paths, positive-class probability, is positive)`` of a predictions CSV written by
    :meth:`~fracture_lit.evaluation.predictions.SplitPredictions.write_csv`.

    None when the file is missing or the task is not binary. The positive class is the
    last of ``classes`` (fracture datasets put it there; the CSV's columns when empty).
    """
    rows = read_csv(path)
    if not rows:
        return None
    prob_columns = [c for c in rows[0] if c.startswith("prob_")]
    classes = list(classes) or [c[len("prob_") :] for c in prob_columns]
    if len(classes) != 2 or f"prob_{classes[1]}" not in rows[0]:
        return None
    positive = classes[1]
    try:
        scores = np.array([float(r[f"prob_{positive}"]) for r in rows])
    except (TypeError, ValueError):
        return None
    labels = np.array([r.get("label") == positive for r in rows])
    return [str(r.get("path")) for r in rows], scores, labels


def read_predictions(job: JobResult, stage: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(positive-class probability, is positive)`` of one job's reviewed split (None when
    missing or not binary)."""
    found = read_prediction_file(RunLayout(job.folder).review.predictions(stage), job.classes)
    return None if found is None else (found[1], found[2])


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
