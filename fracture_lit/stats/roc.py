"""The empirical ROC curve of a binary prediction set, and the checks its inputs pass.

Threshold convention, shared by every threshold the project chooses or applies: a
probability is a positive prediction when ``prob > threshold`` (strictly greater), as in
torchmetrics. :func:`roc_curve` returns the same points as torchmetrics' ``binary_roc``
(a test holds them equal), computed here so that the statistics layer needs no metric
library.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_binary_inputs", "roc_curve"]


def check_binary_inputs(probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``(N,)`` probabilities and ``{0, 1}`` targets; return them as float32 and
    int64 (detached).

    Out-of-range scores are rejected rather than passed on: torchmetrics would silently
    apply a sigmoid to them (it assumes logits), and every threshold would then refer to a
    different scale than the caller's.
    """
    if probs.ndim != 1:
        raise ValueError(
            f"probs must be 1-D (positive-class probability), got {tuple(probs.shape)}."
        )
    targets = targets.detach().reshape(-1).long()
    if probs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"probs ({probs.shape[0]}) and targets ({targets.shape[0]}) differ in length."
        )
    if probs.numel() == 0:
        raise ValueError("probs and targets are empty.")
    probs = probs.detach().float()
    if not torch.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError(
            "probs must be finite probabilities in [0, 1] (pass softmax output, not logits)."
        )
    if ((targets != 0) & (targets != 1)).any():
        raise ValueError("targets must contain only 0 and 1.")
    return probs, targets


def roc_curve(probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(fpr, tpr, thresholds)``, thresholds descending: point ``i`` predicts positive
    when ``prob >= thresholds[i]``, one point per distinct score, after a first point
    (nothing positive) whose threshold is a synthetic 1.0.

    Both classes must be present (the rates divide by their counts).
    """
    order = torch.argsort(probs, descending=True)
    scores = probs[order]
    hits = targets[order].float()
    # The last position of each run of equal scores: the curve moves once per distinct score.
    last = torch.cat(
        [
            torch.nonzero(scores[1:] != scores[:-1]).flatten(),
            scores.new_tensor([scores.numel() - 1], dtype=torch.long),
        ]
    )
    tps = torch.cumsum(hits, dim=0)[last]
    fps = (last + 1).float() - tps
    zero = tps.new_zeros(1)
    tps, fps = torch.cat([zero, tps]), torch.cat([zero, fps])
    thresholds = torch.cat([scores.new_ones(1), scores[last]])
    return fps / fps[-1], tps / tps[-1], thresholds
