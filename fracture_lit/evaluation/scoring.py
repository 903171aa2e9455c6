"""Score a set of predictions honestly: point estimates with bootstrap 95% intervals, at a
threshold fixed before looking at the data being scored, overall and per subgroup.

:func:`score` is the one producer of the score blocks of metrics.json: the module's
val/test epoch end (:class:`~fracture_lit.models.module.FractureClassifier`), eval, the
ensemble members and the per-subgroup tables all call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.subgroups import SUBGROUP_ATTRIBUTES, split_by
from fracture_lit.metrics import binary_metrics_at_threshold, build_metrics
from fracture_lit.stats import MIN_IMAGES_FOR_CI
from fracture_lit.stats.bootstrap import bootstrap_cis
from fracture_lit.stats.calibration import calibration_cis, calibration_metrics

__all__ = [
    "AT_THRESHOLD_INTERVALS",
    "confusion_at_threshold",
    "score",
    "score_all_subgroups",
    "score_subgroups",
]

#: The metrics at the validation-chosen threshold that get intervals beside the ones at
#: 0.5 (``ci95_at_thr`` of a run's test block): what a reader of a binary model asks.
AT_THRESHOLD_INTERVALS: tuple[str, ...] = ("recall", "specificity", "acc", "f1")

MetricsFn = Callable[[Tensor, Tensor], dict[str, float]]


def _multiclass(probs: Tensor, targets: Tensor, num_classes: int) -> dict[str, float]:
    collection = build_metrics(num_classes, prefix="")
    return {k: float(v) for k, v in collection(probs, targets).items()}


def _metric_fn(pred: SplitPredictions, threshold: float, keys: Sequence[str] = ()) -> MetricsFn:
    """The metrics of ``(probs (N, C), targets)`` at ``threshold`` (binary) or the argmax;
    only ``keys`` when given."""
    if not pred.binary:
        return lambda p, t: _multiclass(p, t, len(pred.class_names))

    def binary(p: Tensor, t: Tensor) -> dict[str, float]:
        values = binary_metrics_at_threshold(p[:, 1], t, threshold)
        return {k: values[k] for k in keys} if keys else values

    return binary


def _intervals(intervals: dict[str, tuple[float, float, float]]) -> dict[str, list[float]]:
    return {k: list(v) for k, v in intervals.items()}


def confusion_at_threshold(
    pred: SplitPredictions, threshold: float | None = None
) -> list[list[int]]:
    """Rows = true class, columns = predicted, at ``threshold`` (default: the predictions'
    own) for a binary task, at the argmax otherwise."""
    if pred.binary and threshold is not None:
        predicted = (pred.probs[:, 1] > threshold).astype("int64")
    else:
        predicted = pred.predicted
    return (
        multiclass_confusion_matrix(
            torch.as_tensor(predicted),
            torch.as_tensor(pred.labels),
            num_classes=len(pred.class_names),
        )
        .long()
        .tolist()
    )


def score(
    pred: SplitPredictions,
    prefix: str = "eval",
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    threshold: float | None = None,
    at_threshold: bool = False,
    metric_intervals: bool = True,
) -> dict[str, Any]:
    """``{"n", "confusion_matrix", "ci95", "metrics"[, "ci95_at_thr"]}``: a block of
    metrics.json, metrics keyed ``<prefix>/<key>``.

    * ``threshold``: the binary operating point of ``metrics``, ``ci95`` and the confusion
      matrix; None (eval) means ``pred.threshold``, the validation-chosen one. A training
      run's blocks use 0.5, like the torchmetrics values it logs every epoch.
    * ``at_threshold``: add the thresholded metrics at ``pred.threshold`` as
      ``<prefix>/<key>_at_thr``, and intervals of :data:`AT_THRESHOLD_INTERVALS` as
      ``ci95_at_thr`` (a run's test block). ``<prefix>/threshold`` is reported whenever
      metrics at ``pred.threshold`` are.
    * ``metric_intervals``: bootstrap the classification metrics, not only ECE and Brier
      (a multiclass resample costs a metric collection; a run's blocks skip it).

    Multiclass tasks use the argmax. Intervals resample images with replacement (percentile
    bootstrap, the same resamples for every metric); none below two classes or with
    ``n_bootstrap=0``. ECE and Brier score are of ``pred.probs`` as given (the temperature
    already applied).
    """
    probs = torch.as_tensor(pred.probs, dtype=torch.float32)
    targets = torch.as_tensor(pred.labels).long()
    main = pred.threshold if threshold is None else float(threshold)
    fn = _metric_fn(pred, main)
    out: dict[str, Any] = {
        "n": int(targets.numel()),
        "confusion_matrix": confusion_at_threshold(pred, main),
    }
    both = targets.unique().numel() > 1
    if n_bootstrap > 0 and both and metric_intervals:
        intervals = bootstrap_cis(probs, targets, fn, n_boot=n_bootstrap, seed=seed)
        out["ci95"] = _intervals(intervals)
        points = {k: v[0] for k, v in intervals.items()}
    else:
        points = fn(probs, targets) if both or pred.binary else {}
    # Calibration (ECE, Brier) is defined whatever classes are present.
    if n_bootstrap > 0:
        calibration = calibration_cis(probs, targets, n_boot=n_bootstrap, seed=seed)
        out.setdefault("ci95", {}).update(calibration)
        points = {**points, **{k: v[0] for k, v in calibration.items()}}
    else:
        points = {**points, **calibration_metrics(probs, targets)}
    out["metrics"] = {f"{prefix}/{k}": float(v) for k, v in points.items()}
    if pred.binary and (threshold is None or at_threshold):
        out["metrics"][f"{prefix}/threshold"] = pred.threshold
    if pred.binary and at_threshold:
        at = _metric_fn(pred, pred.threshold)(probs, targets)
        out["metrics"].update({f"{prefix}/{k}_at_thr": v for k, v in at.items() if k != "auroc"})
        if n_bootstrap > 0 and both:
            fn_at = _metric_fn(pred, pred.threshold, AT_THRESHOLD_INTERVALS)
            out["ci95_at_thr"] = _intervals(
                bootstrap_cis(probs, targets, fn_at, n_boot=n_bootstrap, seed=seed)
            )
    return out


def score_subgroups(
    pred: SplitPredictions, key: str = "region", n_bootstrap: int = 1000
) -> dict[str, dict[str, Any]]:
    """:func:`score` per value of ``meta[key]`` (FracAtlas: hand, leg, hip, shoulder, mixed).

    A subgroup with a single class gets only the metrics defined on it (no AUROC). A flag
    (``hardware``) splits into ``yes`` / ``no``; images without the attribute are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for value, sub in split_by(pred, key).items():
        boots = n_bootstrap if len(sub.labels) >= MIN_IMAGES_FOR_CI else 0
        scored = score(sub, prefix=key, n_bootstrap=boots)
        scored["n_positive"] = int((sub.labels == 1).sum()) if sub.binary else None
        scored["metrics"] = {
            k: v
            for k, v in scored["metrics"].items()
            if not (isinstance(v, float) and math.isnan(v))
        }
        out[value] = scored
    return out


def score_all_subgroups(
    pred: SplitPredictions,
    attributes: tuple[str, ...] = SUBGROUP_ATTRIBUTES,
    n_bootstrap: int = 1000,
) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`score_subgroups` for every attribute the images record (region, view,
    hardware); ``{}`` for data without any (the multi-region dataset, a plain folder)."""
    out = {}
    for attribute in attributes:
        scored = score_subgroups(pred, attribute, n_bootstrap=n_bootstrap)
        if scored:
            out[attribute] = scored
    return out
