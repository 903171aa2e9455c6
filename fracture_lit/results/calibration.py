"""Calibration: whether a predicted 0.8 means "fractured 8 times out of 10".

A classifier can rank images well (high AUROC) and still be over-confident, which is what
a clinician reading its probability sees. Reported for every val/test evaluation:

* **ECE**, expected calibration error, by torchmetrics (``binary_calibration_error`` /
  ``multiclass_calibration_error``, 15 equal-width bins, L1): binary tasks compare the
  predicted probability of the positive class with the observed fraction of positives,
  multiclass tasks the top-class confidence with the accuracy;
* **Brier score**: mean squared error of the probabilities (binary: ``(p - y)²`` of the
  positive class, 0 to 1; multiclass: summed over classes, 0 to 2);
* a **reliability diagram** drawn from :func:`reliability_bins`, the same bins the ECE is
  computed on, so the picture and the number agree.

Intervals come from :func:`fracture_lit.metrics.bootstrap_cis` like every other metric.

**Temperature scaling** (Guo et al. 2017) divides the logits by one scalar ``T`` fitted on
validation by minimising the negative log-likelihood. It changes neither the ranking
(AUROC) nor the argmax, only how confident the probabilities are. Probabilities carry the
logits up to a per-image constant (``log p``), which softmax ignores, so ``T`` is fitted
from the probabilities the module already collects: nothing is added per training step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_calibration_error,
    multiclass_calibration_error,
)

from fracture_lit.metrics import bootstrap_cis

__all__ = [
    "CALIBRATE_CHOICES",
    "CALIBRATION_KEYS",
    "N_BINS",
    "ReliabilityBins",
    "TemperatureFit",
    "apply_temperature",
    "calibration_cis",
    "calibration_metrics",
    "fit_temperature",
    "logits_from_probs",
    "reliability_bins",
]

CALIBRATION_KEYS: tuple[str, ...] = ("ece", "brier")
CALIBRATE_CHOICES: tuple[str, ...] = ("none", "temperature")
N_BINS = 15
# float32 probabilities round to exactly 0 or 1 beyond |logit| ~ 17. Fitting clamps them
# to [1e-7, 1 - 1e-7] (|logit| <= 16: a saturated image must not dominate the likelihood);
# applying clamps only just inside (0, 1), below float32's resolution, so the order of every
# score and hence the AUROC stay exactly as they were.
_FIT_RANGE = (1e-7, 1 - 1e-7)
_APPLY_RANGE = (1e-300, 1 - 1e-12)
# The search range of 1/T: T from 0.02 (sharpen 50x) to 20 (flatten 20x).
_INV_T_BOUNDS = (0.05, 50.0)


def _as_probs(probs: Tensor | np.ndarray) -> Tensor:
    """``(N,)`` positive-class probabilities stay 1-D; ``(N, 2)`` becomes its column 1."""
    probs = torch.as_tensor(probs).detach().float().cpu()
    if probs.ndim == 2 and probs.shape[1] == 2:
        probs = probs[:, 1]
    probs = probs.contiguous()
    if probs.ndim not in (1, 2):
        raise ValueError(f"probs must be (N,) or (N, C), got {tuple(probs.shape)}")
    return probs


def calibration_metrics(
    probs: Tensor | np.ndarray, targets: Tensor | np.ndarray, n_bins: int = N_BINS
) -> dict[str, float]:
    """``{"ece", "brier"}`` of binary ``(N,)``/``(N, 2)`` or multiclass ``(N, C)`` probabilities."""
    p = _as_probs(probs)
    t = torch.as_tensor(targets).reshape(-1).long().cpu()
    if p.shape[0] != t.numel() or t.numel() == 0:
        raise ValueError(f"probs ({p.shape[0]}) and targets ({t.numel()}) must match, non-empty")
    if p.ndim == 1:
        ece = binary_calibration_error(p, t, n_bins=n_bins)
    else:
        ece = multiclass_calibration_error(p, t, num_classes=p.shape[1], n_bins=n_bins)
    return {"ece": float(ece), "brier": _brier(p, t)}


def calibration_cis(
    probs: Tensor | np.ndarray,
    targets: Tensor | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = N_BINS,
) -> dict[str, list[float]]:
    """``{"ece": [point, low, high], "brier": [...]}``, percentile bootstrap 95%.

    The points are :func:`calibration_metrics` (torchmetrics). The resamples use
    :func:`reliability_bins`, which bins exactly as torchmetrics does (tested equal) at a
    hundredth of the cost: torchmetrics' functional call takes ~10 ms, which over 1000
    resamples would add seconds to every evaluation. Both metrics are defined on any
    resample, so single-class resamples are kept.
    """
    p = _as_probs(probs)
    t = torch.as_tensor(targets).reshape(-1).long().cpu()

    def resampled(p_: Tensor, t_: Tensor) -> dict[str, float]:
        return {"ece": reliability_bins(p_, t_, n_bins).ece, "brier": _brier(p_, t_)}

    intervals = bootstrap_cis(p, t, resampled, n_boot=n_boot, seed=seed, require_all_classes=False)
    points = calibration_metrics(p, t, n_bins)
    return {k: [points[k], low, high] for k, (_, low, high) in intervals.items()}


def _brier(p: Tensor, t: Tensor) -> float:
    if p.ndim == 1:
        return float(((p - t.float()) ** 2).mean())
    onehot = torch.nn.functional.one_hot(t, p.shape[1]).float()
    return float(((p - onehot) ** 2).sum(dim=1).mean())


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


def reliability_bins(
    probs: Tensor | np.ndarray, targets: Tensor | np.ndarray, n_bins: int = N_BINS
) -> ReliabilityBins:
    """Bin the confidences exactly as torchmetrics' calibration error does (numpy: this
    runs once per bootstrap resample)."""
    p = _as_probs(probs).numpy()
    t = torch.as_tensor(targets).reshape(-1).cpu().numpy()
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
    """torchmetrics' float32 bin edges, bit for bit."""
    return torch.linspace(0, 1, n_bins + 1, dtype=torch.float32).numpy()


# ----------------------------------------------------------------------------- temperature
def logits_from_probs(
    probs: Tensor | np.ndarray, clamp: tuple[float, float] = _FIT_RANGE
) -> Tensor:
    """Logits ``(N, C)`` (float64) that softmax maps back to ``probs``, up to a per-row
    constant: ``[0, logit(p)]`` for binary ``(N,)``, ``log p`` for ``(N, C)``."""
    p = _as_probs(probs).double().clamp(*clamp)
    if p.ndim == 1:
        return torch.stack([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)], dim=1)
    return torch.log(p)


def apply_temperature(probs: Tensor, temperature: float) -> Tensor:
    """``softmax(logits / T)`` in the shape and dtype ``probs`` came in (``(N,)`` or ``(N, C)``)."""
    if temperature <= 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if temperature == 1.0:
        return probs
    scaled = torch.softmax(logits_from_probs(probs, _APPLY_RANGE) / temperature, dim=1)
    out = scaled[:, 1] if probs.ndim == 1 else scaled
    return out.to(dtype=probs.dtype, device=probs.device)


def _nll(logits: Tensor, targets: Tensor, inv_t: float) -> float:
    return float(torch.nn.functional.cross_entropy(logits * inv_t, targets))


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted ``temperature`` and the validation NLL before (T = 1) and after."""

    temperature: float
    nll_before: float
    nll_after: float


def fit_temperature(probs: Tensor | np.ndarray, targets: Tensor | np.ndarray) -> TemperatureFit:
    """The ``T`` minimising the NLL of ``softmax(logits / T)`` on these (validation) images.

    The NLL is convex in ``1/T``, so a bounded scalar search finds the optimum; should it
    end above ``T = 1`` (a flat likelihood), ``T = 1`` is kept: the fit never makes the
    validation NLL worse. With a single class present the NLL has no minimum (it keeps
    falling as the model grows more confident) and ``T = 1`` is returned.
    """
    logits = logits_from_probs(probs)
    t = torch.as_tensor(targets).reshape(-1).long().cpu()
    before = _nll(logits, t, 1.0)
    if t.unique().numel() < 2:
        return TemperatureFit(1.0, before, before)
    found = minimize_scalar(
        lambda inv_t: _nll(logits, t, inv_t),
        bounds=_INV_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    after = float(found.fun)
    if not found.success or not after <= before:
        return TemperatureFit(1.0, before, before)
    return TemperatureFit(1.0 / float(found.x), before, after)
