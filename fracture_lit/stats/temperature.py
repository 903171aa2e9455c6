"""Temperature scaling (Guo et al. 2017): probabilities that mean what they say.

The logits are divided by one scalar ``T`` fitted on validation by minimising the negative
log-likelihood. It changes neither the ranking (AUROC) nor the argmax, only how confident
the probabilities are. Probabilities carry the logits up to a per-image constant
(``log p``), which softmax ignores, so ``T`` is fitted from the probabilities the module
already collects: nothing is added per training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

__all__ = [
    "CALIBRATE_CHOICES",
    "TemperatureFit",
    "apply_temperature",
    "fit_temperature",
    "logits_from_probs",
]

#: Values of ``model.calibrate``.
CALIBRATE_CHOICES: tuple[str, ...] = ("none", "temperature")
# float32 probabilities round to exactly 0 or 1 beyond |logit| ~ 17. Fitting clamps them
# to [1e-7, 1 - 1e-7] (|logit| <= 16: a saturated image must not dominate the likelihood);
# applying clamps only just inside (0, 1), below float32's resolution, so the order of every
# score and hence the AUROC stay exactly as they were.
_FIT_RANGE = (1e-7, 1 - 1e-7)
_APPLY_RANGE = (1e-300, 1 - 1e-12)
# The search range of 1/T: T from 0.02 (sharpen 50x) to 20 (flatten 20x).
_INV_T_BOUNDS = (0.05, 50.0)


def _as_probs(probs: Any) -> Tensor:
    """``(N,)`` positive-class probabilities stay 1-D; ``(N, 2)`` becomes its column 1."""
    probs = torch.as_tensor(probs).detach().float().cpu()
    if probs.ndim == 2 and probs.shape[1] == 2:
        probs = probs[:, 1]
    probs = probs.contiguous()
    if probs.ndim not in (1, 2):
        raise ValueError(f"probs must be (N,) or (N, C), got {tuple(probs.shape)}")
    return probs


def logits_from_probs(probs: Any, clamp: tuple[float, float] = _FIT_RANGE) -> Tensor:
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


def fit_temperature(probs: Any, targets: Any) -> TemperatureFit:
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
