"""Calibration: whether a predicted 0.8 means "fractured 8 times out of 10".

A classifier can rank images well (high AUROC) and still be over-confident, which is what
a clinician reading its probability sees. Reported for every val/test evaluation:

* **ECE**, expected calibration error (15 equal-width bins, L1): binary tasks compare the
  predicted probability of the positive class with the observed fraction of positives,
  multiclass tasks the top-class confidence with the accuracy. The bins are torchmetrics'
  (``binary_calibration_error`` / ``multiclass_calibration_error``), bit for bit, and a
  test holds the two ECEs equal;
* **Brier score**: mean squared error of the probabilities (binary: ``(p - y)²`` of the
  positive class, 0 to 1; multiclass: summed over classes, 0 to 2);
* a **reliability diagram** drawn from :func:`reliability_bins`, the same bins the ECE is
  computed on, so the picture and the number agree.

numpy (the bin edges from torch), so one bootstrap resample costs microseconds: torchmetrics' functional call takes
~10 ms, which over 1000 resamples would add seconds to every evaluation. Intervals come
from :func:`fracture_lit.stats.bootstrap.bootstrap_cis` like every other metric.
Temperature scaling is :mod:`fracture_lit.stats.temperature`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fracture_lit.stats.bootstrap import bootstrap_cis

__all__ = [
    "CALIBRATION_KEYS",
    "N_BINS",
    "ReliabilityBins",
    "as_numpy",
    "brier_score",
    "calibration_cis",
    "calibration_metrics",
    "reliability_bins",
]

CALIBRATION_KEYS: tuple[str, ...] = ("ece", "brier")
N_BINS = 15


def as_numpy(values: Any) -> np.ndarray:
    """A numpy array of a torch tensor (detached, on the CPU) or of any array-like."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _probs(probs: Any) -> np.ndarray:
    """``(N,)`` positive-class probabilities stay 1-D; ``(N, 2)`` becomes its column 1."""
    p = as_numpy(probs).astype(np.float32, copy=False)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim not in (1, 2):
        raise ValueError(f"probs must be (N,) or (N, C), got {tuple(p.shape)}")
    return np.ascontiguousarray(p)


def _checked(probs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _probs(probs)
    t = as_numpy(targets).reshape(-1).astype(np.int64)
    if p.shape[0] != t.size or t.size == 0:
        raise ValueError(f"probs ({p.shape[0]}) and targets ({t.size}) must match, non-empty")
    return p, t


def calibration_metrics(probs: Any, targets: Any, n_bins: int = N_BINS) -> dict[str, float]:
    """``{"ece", "brier"}`` of binary ``(N,)``/``(N, 2)`` or multiclass ``(N, C)`` probabilities."""
    p, t = _checked(probs, targets)
    return {"ece": reliability_bins(p, t, n_bins).ece, "brier": brier_score(p, t)}


def calibration_cis(
    probs: Any, targets: Any, n_boot: int = 1000, seed: int = 0, n_bins: int = N_BINS
) -> dict[str, list[float]]:
    """``{"ece": [point, low, high], "brier": [...]}``, percentile bootstrap 95%.

    Both metrics are defined on any resample, so single-class resamples are kept.
    """
    p, t = _checked(probs, targets)
    intervals = bootstrap_cis(
        p,
        t,
        lambda p_, t_: calibration_metrics(p_, t_, n_bins),
        n_boot=n_boot,
        seed=seed,
        require_all_classes=False,
    )
    return {k: list(interval) for k, interval in intervals.items()}


def brier_score(probs: Any, targets: Any) -> float:
    """Mean squared error of the probabilities (multiclass: summed over the classes)."""
    p, t = _probs(probs).astype(np.float64), as_numpy(targets).reshape(-1).astype(np.int64)
    if p.ndim == 1:
        return float(((p - t) ** 2).mean())
    onehot = np.eye(p.shape[1])[t]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


@dataclass(frozen=True)
class ReliabilityBins:
    """Per bin: mean confidence, observed frequency and count (empty bins: NaN).

    Binary: confidence = p(positive), frequency = share of positives; multiclass:
    confidence = top-class probability, frequency = accuracy. The bins are torchmetrics':
    ``n_bins`` equal-width ``[edge_i, edge_i+1)`` in float32, plus one more holding the
    confidences of exactly 1.0, so ``ece`` (the count-weighted mean gap) equals its ECE.
    """

    edges: np.ndarray  # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins + 1,)
    frequency: np.ndarray  # (n_bins + 1,)
    count: np.ndarray  # (n_bins + 1,)
    binary: bool

    @property
    def ece(self) -> float:
        used = self.count > 0
        gaps = np.abs(self.frequency[used] - self.confidence[used])
        return float((gaps * self.count[used]).sum() / self.count.sum())


def reliability_bins(probs: Any, targets: Any, n_bins: int = N_BINS) -> ReliabilityBins:
    """Bin the confidences exactly as torchmetrics' calibration error does."""
    p = _probs(probs)
    t = as_numpy(targets).reshape(-1)
    if p.ndim == 1:
        confidence, hit = p, (t == 1)
    else:
        confidence, hit = p.max(axis=1), p.argmax(axis=1) == t
    edges = _edges(n_bins)
    index = np.searchsorted(edges, confidence, side="right") - 1  # torch.bucketize(right=True)
    count = np.bincount(index, minlength=n_bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence.astype(np.float64), n_bins + 1) / count
        freq = np.bincount(index, hit.astype(np.float64), n_bins + 1) / count
    return ReliabilityBins(edges.astype(np.float64), conf, freq, count, p.ndim == 1)


@functools.cache
def _edges(n_bins: int) -> np.ndarray:
    """torchmetrics' float32 bin edges (``torch.linspace``), bit for bit."""
    return torch.linspace(0, 1, n_bins + 1, dtype=torch.float32).numpy()
