"""The AUROC, written once: the Mann-Whitney statistic with midranks.

With midranks (tied scores share the mean of their ranks) a tie between a positive and a
negative image counts one half, which makes this exactly the area under the empirical ROC
curve (what torchmetrics' ``BinaryAUROC`` and scikit-learn's ``roc_auc_score`` compute; a
test holds them equal on data with ties). numpy only: reports, bootstrap resamples and
DeLong's test all call it, the first without torch.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["auroc", "macro_auroc", "midranks"]


def _midranks_1d(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], values.size]  # one past the last position of each run
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def midranks(values: ArrayLike) -> np.ndarray:
    """1-based ranks along the last axis; tied values share the mean of their ranks."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        return _midranks_1d(array)
    return np.apply_along_axis(_midranks_1d, -1, array)


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1/True = positive).

    NaN when only one class is present: the area is undefined there (torchmetrics returns
    0.0 with a warning, which would read as "perfectly wrong" in a report).
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) == 1
    if values.size != positive.size:
        raise ValueError(f"scores ({values.size}) and labels ({positive.size}) differ in length")
    m = int(positive.sum())
    n = positive.size - m
    if m == 0 or n == 0:
        return math.nan
    ranks = midranks(values)
    return float((ranks[positive].sum() - m * (m + 1) / 2) / (m * n))


def macro_auroc(probs: ArrayLike, labels: ArrayLike) -> float:
    """Binary ``(N, 2)``: the AUROC of the positive class; multiclass ``(N, C)``: the mean
    one-vs-rest AUROC over the classes present (NaN when none is defined)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.shape[1] == 2:
        return auroc(probs[:, 1], labels == 1)
    per_class = [auroc(probs[:, c], labels == c) for c in range(probs.shape[1])]
    finite = [v for v in per_class if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
