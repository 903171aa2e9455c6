"""The Youden-J operating point: the threshold a binary classifier is used at.

Chosen on validation only (never on test) and stored with the checkpoint; it follows the
``prob > threshold`` rule of :mod:`fracture_lit.stats.roc`, so a threshold from
:func:`youden_threshold` applied to the data it was fitted on reproduces the sensitivity
and specificity it reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from fracture_lit.stats.roc import check_binary_inputs, roc_curve

__all__ = ["YoudenResult", "youden_threshold"]


@dataclass(frozen=True)
class YoudenResult:
    """Operating point maximising Youden's J = sensitivity + specificity - 1.

    ``threshold`` follows the ``prob > threshold`` rule; ``sensitivity`` and
    ``specificity`` are those obtained on the data it was fitted on with that rule.
    """

    threshold: float
    sensitivity: float
    specificity: float
    j: float


def youden_threshold(
    probs: Tensor,
    targets: Tensor,
    *,
    on_single_class: Literal["raise", "default"] = "raise",
) -> YoudenResult:
    """Pick the threshold maximising Youden's J on the ROC curve.

    Each ROC point ``i`` comes from a cut ``prob >= thr[i]`` at one of the observed scores.
    Because thresholds are applied with ``prob > t``, the returned threshold is the midpoint
    between the chosen cut and the next lower distinct score: on the fitting data
    ``prob > midpoint`` and ``prob >= cut`` give the same predictions, and a midpoint does
    not sit exactly on a validation sample's score. Edge cases:

    * the first ROC point ("nothing positive") carries a synthetic threshold of 1.0; it and
      the result are clamped to ``[0, 1]``;
    * the lowest cut ("everything positive") has no lower score, so 0.0 is used below it;
    * ties in J resolve to the highest threshold (the most specific operating point);
    * only one class present: J is undefined (one of sensitivity/specificity has no
      denominator), so by default this raises ``ValueError`` -- a threshold tuned on such a
      split is meaningless and should not pass silently. ``on_single_class="default"``
      returns ``YoudenResult(0.5, nan, nan, 0.0)`` instead, for callers that run on tiny
      batches (e.g. Lightning's sanity check) and prefer to keep going.
    """
    probs, targets = check_binary_inputs(probs, targets)
    n_pos = int(targets.sum())
    if n_pos == 0 or n_pos == targets.numel():
        if on_single_class == "default":
            return YoudenResult(threshold=0.5, sensitivity=math.nan, specificity=math.nan, j=0.0)
        present = "positive" if n_pos else "negative"
        raise ValueError(
            f"Youden threshold needs both classes; all {targets.numel()} targets are {present}."
        )

    fpr, tpr, thr = roc_curve(probs, targets)  # thr descending, thr[0] is the synthetic 1.0
    thr = thr.clamp(0.0, 1.0)
    j = tpr - fpr
    i = int(torch.argmax(j))  # first maximum = highest threshold among ties
    lower = thr[i + 1] if i + 1 < thr.numel() else thr.new_tensor(0.0)
    threshold = float(((thr[i] + lower) / 2).clamp(0.0, 1.0))
    return YoudenResult(
        threshold=threshold,
        sensitivity=float(tpr[i]),
        specificity=float(1 - fpr[i]),
        j=float(j[i]),
    )
