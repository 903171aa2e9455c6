"""Score a set of predictions honestly: point estimates with bootstrap 95% intervals, at a
threshold fixed before looking at the data being scored, overall and per subgroup.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

import torch

from fracture_lit.metrics import binary_metrics_at_threshold, build_metrics
from fracture_lit.results.folders import MIN_SUBGROUP_FOR_CI, SUBGROUP_ATTRIBUTES
from fracture_lit.review.artifacts import confusion_at_threshold
from fracture_lit.review.predictions import SplitPredictions
from fracture_lit.stats.bootstrap import bootstrap_cis
from fracture_lit.stats.calibration import calibration_cis, calibration_metrics

__all__ = ["score", "score_all_subgroups", "score_subgroups"]

log = logging.getLogger(__name__)


def _multiclass(probs: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, float]:
    collection = build_metrics(num_classes, prefix="")
    return {k: float(v) for k, v in collection(probs, targets).items()}


def _metric_fn(pred: SplitPredictions) -> Any:
    if pred.binary:
        return lambda p, t: binary_metrics_at_threshold(p[:, 1], t, pred.threshold)
    return lambda p, t: _multiclass(p, t, len(pred.class_names))


def score(
    pred: SplitPredictions, prefix: str = "eval", n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``{"metrics", "ci95", "confusion_matrix", "n"}`` in the shape metrics.json uses.

    Thresholded metrics use ``pred.threshold`` (binary) or the argmax (multiclass);
    intervals resample images with replacement (percentile bootstrap). ECE and Brier score
    are of ``pred.probs`` as given (the checkpoint's temperature already applied).
    """
    probs = torch.as_tensor(pred.probs, dtype=torch.float32)
    targets = torch.as_tensor(pred.labels).long()
    fn = _metric_fn(pred)
    out: dict[str, Any] = {
        "n": int(targets.numel()),
        "confusion_matrix": confusion_at_threshold(pred),
    }
    both = targets.unique().numel() > 1
    if n_bootstrap > 0 and both:
        intervals = bootstrap_cis(probs, targets, fn, n_boot=n_bootstrap, seed=seed)
        out["ci95"] = {k: list(v) for k, v in intervals.items()}
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
    if pred.binary:
        out["metrics"][f"{prefix}/threshold"] = pred.threshold
    return out


def score_subgroups(
    pred: SplitPredictions, key: str = "region", n_bootstrap: int = 1000
) -> dict[str, dict[str, Any]]:
    """:func:`score` per value of ``meta[key]`` (FracAtlas: hand, leg, hip, shoulder, mixed).

    A subgroup with a single class gets only the metrics defined on it (no AUROC). A flag
    (``hardware``) splits into ``yes`` / ``no``; images without the attribute are left out.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i, meta in enumerate(pred.meta):
        value = meta.get(key)
        if isinstance(value, bool):
            members["yes" if value else "no"].append(i)
        elif value:
            members[str(value)].append(i)
    out: dict[str, dict[str, Any]] = {}
    for value, rows in sorted(members.items()):
        sub = SplitPredictions(
            split=pred.split,
            class_names=pred.class_names,
            paths=[pred.paths[i] for i in rows],
            labels=pred.labels[rows],
            probs=pred.probs[rows],
            threshold=pred.threshold,
            meta=[pred.meta[i] for i in rows],
        )
        boots = n_bootstrap if len(rows) >= MIN_SUBGROUP_FOR_CI else 0
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
