"""DeLong's test: are two AUROCs measured on the same images different?

DeLong, DeLong & Clarke-Pearson (1988), with the fast midrank algorithm of Sun & Xu (2014),
which gives the same variance as the O(n·m) structural components in O(n log n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from fracture_lit.stats import ALPHA
from fracture_lit.stats.auroc import midranks

__all__ = ["DeLongResult", "delong_covariance", "delong_test"]


def delong_covariance(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs ``(k,)`` of ``k`` score vectors ``(k, N)`` and DeLong's covariance ``(k, k)``.

    Sun & Xu (2014): with midranks ``Tz`` over all images, ``Tx`` within positives and ``Ty``
    within negatives, the structural components are ``V10 = (Tz_pos - Tx) / n`` and
    ``V01 = 1 - (Tz_neg - Ty) / m`` (``m`` positives, ``n`` negatives), and
    ``cov = cov(V10) / m + cov(V01) / n`` with the sample (n - 1) covariances.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = np.asarray(labels).reshape(-1)
    if scores.shape[1] != labels.size:
        raise ValueError(f"scores {scores.shape} and labels ({labels.size},) differ in length")
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 images per class, got {m} and {n}")
    tx = midranks(pos)
    ty = midranks(neg)
    tz = midranks(np.concatenate([pos, neg], axis=1))
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of ``auroc_a == auroc_b`` on the same images (two-sided)."""

    auroc_a: float
    auroc_b: float
    delta: float
    se: float
    z: float
    p: float
    low: float  # normal-approximation 95% interval of delta
    high: float


def delong_test(scores_a: ArrayLike, scores_b: ArrayLike, labels: ArrayLike) -> DeLongResult:
    """Two correlated AUROCs (``a - b``): z = Δ / sqrt(var_a + var_b - 2 cov_ab)."""
    aucs, cov = delong_covariance(np.vstack([scores_a, scores_b]), labels)
    delta = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    if se < 1e-12:
        # Identical rankings (or no variance at all): nothing distinguishes the two.
        z, p = 0.0, 1.0 if abs(delta) < 1e-12 else 0.0
    else:
        z = delta / se
        p = float(2 * stats.norm.sf(abs(z)))
    half = float(stats.norm.ppf(1 - ALPHA / 2)) * se
    return DeLongResult(float(aucs[0]), float(aucs[1]), delta, se, z, p, delta - half, delta + half)
