"""Classification metrics for fracture classifiers, all computed by torchmetrics.

Two families live here:

* **Stateful** metrics (:func:`build_metrics`, :func:`build_confusion_matrix`) that the
  LightningModule updates batch by batch and that sync across DDP ranks on their own.
  They are fed what :func:`metric_inputs` returns, so the training step never has to know
  whether the task is binary or multiclass.
* **Offline** helpers for a finished prediction set (:func:`youden_threshold`,
  :func:`binary_metrics_at_threshold`, :func:`bootstrap_ci`) used when choosing an
  operating point on the validation split and reporting test results with uncertainty.

Threshold convention: torchmetrics turns a probability into a positive prediction with
``prob > threshold`` (strictly greater). Every threshold this module accepts or returns uses
that same rule, so a threshold from :func:`youden_threshold` can be passed straight to
:func:`binary_metrics_at_threshold` and reproduces the sensitivity/specificity it reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryCohenKappa,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    BinarySpecificity,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassSpecificity,
)
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_cohen_kappa,
    binary_f1_score,
    binary_precision,
    binary_recall,
    binary_roc,
    binary_specificity,
)

from fracture_lit.results.catalogue import computed_keys

__all__ = [
    "METRIC_KEYS",
    "YoudenResult",
    "binary_metrics_at_threshold",
    "bootstrap_ci",
    "build_confusion_matrix",
    "build_metrics",
    "metric_inputs",
    "youden_threshold",
]

#: Keys of :func:`build_metrics` (before the prefix) and of :func:`binary_metrics_at_threshold`:
#: the catalogue's ``computed`` metrics, so epoch-end logs and reports line up column for
#: column (a new metric is computed here and listed once in the catalogue).
METRIC_KEYS: tuple[str, ...] = computed_keys()


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")


def build_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Build the per-epoch metric collection for one stage (``prefix`` like ``"val/"``).

    Binary (``num_classes == 2``) uses torchmetrics' binary task fed with the positive-class
    probability ``(N,)`` and thresholded at 0.5: the binary task reports precision/recall/F1 for
    the fracture class, which is what matters clinically, while a 2-class multiclass macro
    average would blend in the "no fracture" class. ``num_classes > 2`` uses the multiclass task
    fed with probabilities ``(N, C)``, macro-averaged so rare classes weigh as much as common ones.

    Choices worth knowing:

    * ``acc`` is plain (micro) accuracy in both tasks. torchmetrics' ``MulticlassAccuracy``
      defaults to ``average="macro"``, which is macro recall, i.e. balanced accuracy; that is
      already logged as ``balanced_acc``, so ``acc`` is set to ``"micro"`` explicitly.
    * Binary ``balanced_acc`` is ``(recall + specificity) / 2``, built as a torchmetrics
      ``CompositionalMetric`` (metric arithmetic) because torchmetrics has no binary balanced
      accuracy class; the children are real metrics, so DDP sync and ``reset`` still work.
    * ``auroc`` keeps every prediction of the epoch (exact, ``thresholds=None``); fine at
      X-ray-dataset sizes.

    Use ``collection.clone(prefix="test/")`` to derive another stage's collection.
    """
    _check_num_classes(num_classes)
    metrics: dict[str, Metric]
    if num_classes == 2:
        metrics = {
            "acc": BinaryAccuracy(),
            "balanced_acc": (BinaryRecall() + BinarySpecificity()) / 2,
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "specificity": BinarySpecificity(),
            "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(),
            "kappa": BinaryCohenKappa(),
        }
    else:
        c = num_classes
        metrics = {
            "acc": MulticlassAccuracy(num_classes=c, average="micro"),
            "balanced_acc": MulticlassRecall(num_classes=c, average="macro"),
            "precision": MulticlassPrecision(num_classes=c, average="macro"),
            "recall": MulticlassRecall(num_classes=c, average="macro"),
            "specificity": MulticlassSpecificity(num_classes=c, average="macro"),
            "f1": MulticlassF1Score(num_classes=c, average="macro"),
            "auroc": MulticlassAUROC(num_classes=c, average="macro"),
            "kappa": MulticlassCohenKappa(num_classes=c),
        }
    return MetricCollection(metrics, prefix=prefix)


def build_confusion_matrix(num_classes: int) -> Metric:
    """Confusion matrix matching :func:`build_metrics` inputs (rows = true, columns = predicted).

    Binary takes the positive-class probability and thresholds at 0.5, giving
    ``[[TN, FP], [FN, TP]]``; multiclass takes ``(N, C)`` probabilities and uses the argmax.
    Kept outside the collection because it returns a matrix, which ``self.log`` cannot take.
    """
    _check_num_classes(num_classes)
    if num_classes == 2:
        return BinaryConfusionMatrix()
    return MulticlassConfusionMatrix(num_classes=num_classes)


def metric_inputs(logits: Tensor, num_classes: int) -> Tensor:
    """Turn model logits ``(N, C)`` into what :func:`build_metrics` expects.

    Softmax over classes, then for the binary case only the class-1 (fracture) probability
    ``(N,)``. The result is detached (metrics never need gradients, and ``BinaryAUROC`` keeps
    its inputs for the whole epoch, which would otherwise pin the autograd graph) and cast to
    float32 (bf16/fp16 logits under autocast lose too much precision for AUROC ties).
    """
    _check_num_classes(num_classes)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"Expected logits of shape (N, {num_classes}), got {tuple(logits.shape)}.")
    probs = torch.softmax(logits.detach().float(), dim=1)
    return probs[:, 1] if num_classes == 2 else probs


def _check_binary_inputs(probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``(N,)`` probabilities and ``{0, 1}`` targets.

    Out-of-range scores are rejected rather than passed on, because torchmetrics would
    silently apply a sigmoid to them (it assumes logits) and every threshold would then
    refer to a different scale than the caller's.
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


@dataclass(frozen=True)
class YoudenResult:
    """Operating point maximising Youden's J = sensitivity + specificity - 1.

    ``threshold`` follows torchmetrics' ``prob > threshold`` rule; ``sensitivity`` and
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
    """Pick the threshold maximising Youden's J on the ROC curve (``binary_roc``).

    Each ROC point ``i`` comes from a cut ``prob >= thr[i]`` at one of the observed scores.
    Because torchmetrics thresholds with ``prob > t`` everywhere else, the returned threshold
    is the midpoint between the chosen cut and the next lower distinct score: on the fitting
    data ``prob > midpoint`` and ``prob >= cut`` give the same predictions, and a midpoint
    does not sit exactly on a validation sample's score. Edge cases:

    * the first ROC point ("nothing positive") carries a synthetic threshold of 1.0 in
      torchmetrics (>1 in some other libraries); it and the result are clamped to ``[0, 1]``;
    * the lowest cut ("everything positive") has no lower score, so 0.0 is used below it;
    * ties in J resolve to the highest threshold (the most specific operating point);
    * only one class present: J is undefined (one of sensitivity/specificity has no
      denominator), so by default this raises ``ValueError`` -- a threshold tuned on such a
      split is meaningless and should not pass silently. ``on_single_class="default"``
      returns ``YoudenResult(0.5, nan, nan, 0.0)`` instead, for callers that run on tiny
      batches (e.g. Lightning's sanity check) and prefer to keep going.
    """
    probs, targets = _check_binary_inputs(probs, targets)
    n_pos = int(targets.sum())
    if n_pos == 0 or n_pos == targets.numel():
        if on_single_class == "default":
            return YoudenResult(threshold=0.5, sensitivity=math.nan, specificity=math.nan, j=0.0)
        present = "positive" if n_pos else "negative"
        raise ValueError(
            f"Youden threshold needs both classes; all {targets.numel()} targets are {present}."
        )

    fpr, tpr, thr = binary_roc(probs, targets)  # thr descending, thr[0] is the synthetic 1.0
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


def binary_metrics_at_threshold(
    probs: Tensor, targets: Tensor, threshold: float
) -> dict[str, float]:
    """All :data:`METRIC_KEYS` for a binary prediction set at one threshold (``prob > threshold``).

    Thresholded metrics use torchmetrics' functional API with its zero-division convention
    (0.0, e.g. precision when nothing is predicted positive). ``auroc`` is threshold-free and
    is NaN when only one class is present: torchmetrics returns 0.0 with a warning there,
    which would read as "perfectly wrong" in a report.
    """
    probs, targets = _check_binary_inputs(probs, targets)
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    recall = float(binary_recall(probs, targets, threshold=t))
    specificity = float(binary_specificity(probs, targets, threshold=t))
    n_pos = int(targets.sum())
    both = 0 < n_pos < targets.numel()
    return {
        "acc": float(binary_accuracy(probs, targets, threshold=t)),
        "balanced_acc": (recall + specificity) / 2,
        "precision": float(binary_precision(probs, targets, threshold=t)),
        "recall": recall,
        "specificity": specificity,
        "f1": float(binary_f1_score(probs, targets, threshold=t)),
        "auroc": float(binary_auroc(probs, targets)) if both else math.nan,
        "kappa": float(binary_cohen_kappa(probs, targets, threshold=t)),
    }


def bootstrap_cis(
    probs: Tensor,
    targets: Tensor,
    metrics_fn: Callable[[Tensor, Tensor], dict[str, float]],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    require_all_classes: bool = True,
) -> dict[str, tuple[float, float, float]]:
    """Point estimates and percentile bootstrap ``(1 - alpha)`` intervals of several metrics.

    ``metrics_fn`` returns a dict of metrics, so one pass over the resamples serves them all.
    Returns ``{key: (point, low, high)}`` where ``point`` is the metric on the full set
    and ``low``/``high`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the metric over
    ``n_boot`` case resamples (with replacement, same size as the data). ``probs`` may be
    ``(N,)`` or ``(N, C)``; rows are resampled together with ``targets``.

    Resamples that lack a class present in the full data (for binary: single-class resamples)
    are skipped when ``require_all_classes`` is true (the default), because AUROC, sensitivity,
    specificity, kappa, ... are undefined or degenerate on them (torchmetrics returns 0 with a
    warning). This conditions the interval on both classes being present, a negligible change
    unless a class has only a handful of cases. Set it to false for metrics such as accuracy
    that are fine on any resample. Non-finite metric values are dropped as well.

    Index draws and the class-presence check are vectorised; ``metrics_fn`` is called once per
    resample since it is an arbitrary callable. A dedicated ``torch.Generator`` seeded with
    ``seed`` makes the result reproducible without touching global RNG state.

    ``torchmetrics.wrappers.BootStrapper`` was not used: it resamples within each ``update``
    call (per batch, Poisson sampling by default), draws from the global RNG (no seed), wraps a
    ``Metric`` rather than a ``(probs, targets) -> float`` callable, and cannot skip
    single-class resamples.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    targets = targets.reshape(-1).long()
    n = targets.numel()
    if n == 0 or probs.shape[0] != n:
        raise ValueError(
            f"probs ({probs.shape[0]}) and targets ({n}) must be non-empty and equally long."
        )

    points = {k: float(v) for k, v in metrics_fn(probs, targets).items()}
    classes = torch.unique(targets)
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, min(n_boot, 2**22 // n))  # bound the (chunk, n) int64 index tensor to ~32 MB
    values: dict[str, list[float]] = {k: [] for k in points}
    skipped = 0
    done = 0
    while done < n_boot:
        rows = min(chunk, n_boot - done)
        idx = torch.randint(0, n, (rows, n), generator=generator).to(targets.device)
        done += rows
        keep = torch.ones(rows, dtype=torch.bool, device=targets.device)
        if require_all_classes and classes.numel() > 1:
            resampled = targets[idx]
            for c in classes:
                keep &= (resampled == c).any(dim=1)
        skipped += int((~keep).sum())
        for row in idx[keep]:
            for key, value in metrics_fn(probs[row], targets[row]).items():
                if math.isfinite(value):
                    values[key].append(float(value))
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    out: dict[str, tuple[float, float, float]] = {}
    for key, point in points.items():
        if not values[key]:
            raise ValueError(
                f"No usable bootstrap resample of {key!r} out of {n_boot} ({skipped} lacked a "
                "class); the metric cannot be bootstrapped on this data."
            )
        low, high = torch.quantile(torch.tensor(values[key], dtype=torch.float64), q).tolist()
        out[key] = (point, low, high)
    return out


def bootstrap_ci(
    probs: Tensor,
    targets: Tensor,
    metric_fn: Callable[[Tensor, Tensor], float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    require_all_classes: bool = True,
) -> tuple[float, float, float]:
    """:func:`bootstrap_cis` for one scalar metric: ``(point, low, high)``."""
    return bootstrap_cis(
        probs,
        targets,
        lambda p, t: {"value": float(metric_fn(p, t))},
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        require_all_classes=require_all_classes,
    )["value"]
