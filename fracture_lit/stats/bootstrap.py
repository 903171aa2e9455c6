"""The percentile bootstrap behind every interval the project reports, written once.

Metric points and intervals of a run, an evaluation, a subgroup, a calibration score, a
pooled k-fold AUROC and a paired difference between two models all come from
:func:`bootstrap_cis`, with the same resampling: images drawn with replacement by a
dedicated ``torch.Generator`` seeded with ``seed`` (reproducible, and the global RNG is left
alone), so two metrics bootstrapped with the same seed see the same resamples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from fracture_lit.stats import ALPHA

__all__ = ["bootstrap_ci", "bootstrap_cis"]

Rows = TypeVar("Rows", Tensor, np.ndarray)
#: Bound on the (chunk, n) int64 index tensor drawn at once: ~32 MB.
_MAX_INDICES = 2**22


def bootstrap_cis(
    probs: Rows,
    targets: Rows,
    metrics_fn: Callable[[Rows, Rows], Mapping[str, float]],
    n_boot: int = 1000,
    alpha: float = ALPHA,
    seed: int = 0,
    *,
    require_all_classes: bool = True,
) -> dict[str, tuple[float, float, float]]:
    """Point estimates and percentile bootstrap ``(1 - alpha)`` intervals of several metrics.

    ``metrics_fn`` returns a dict of metrics, so one pass over the resamples serves them all;
    it is handed rows of ``probs`` and ``targets`` of the type they came in (torch tensors
    or numpy arrays). Returns ``{key: (point, low, high)}`` where ``point`` is the metric on
    the full set and ``low``/``high`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    metric over ``n_boot`` case resamples (with replacement, same size as the data).
    ``probs`` may be ``(N,)`` or ``(N, C)``; rows are resampled together with ``targets``.

    Resamples that lack a class present in the full data (for binary: single-class resamples)
    are skipped when ``require_all_classes`` is true (the default), because AUROC, sensitivity,
    specificity, kappa, ... are undefined or degenerate on them. This conditions the interval
    on both classes being present, a negligible change unless a class has only a handful of
    cases. Set it to false for metrics such as accuracy that are fine on any resample.
    Non-finite metric values are dropped as well.

    ``torchmetrics.wrappers.BootStrapper`` was not used: it resamples within each ``update``
    call (per batch, Poisson sampling by default), draws from the global RNG (no seed), wraps a
    ``Metric`` rather than a ``(probs, targets) -> float`` callable, and cannot skip
    single-class resamples.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    as_numpy = isinstance(targets, np.ndarray)
    labels = torch.as_tensor(targets).reshape(-1).long()
    n = labels.numel()
    if n == 0 or probs.shape[0] != n:
        raise ValueError(
            f"probs ({probs.shape[0]}) and targets ({n}) must be non-empty and equally long."
        )
    if not as_numpy:
        targets = labels

    points = {k: float(v) for k, v in metrics_fn(probs, targets).items()}
    classes = torch.unique(labels)
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, min(n_boot, _MAX_INDICES // n))
    values: dict[str, list[float]] = {k: [] for k in points}
    skipped = 0
    done = 0
    while done < n_boot:
        rows = min(chunk, n_boot - done)
        idx = torch.randint(0, n, (rows, n), generator=generator).to(labels.device)
        done += rows
        keep = torch.ones(rows, dtype=torch.bool, device=labels.device)
        if require_all_classes and classes.numel() > 1:
            resampled = labels[idx]
            for c in classes:
                keep &= (resampled == c).any(dim=1)
        skipped += int((~keep).sum())
        kept: Any = idx[keep].cpu().numpy() if as_numpy else idx[keep]
        for row in kept:
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
    probs: Rows,
    targets: Rows,
    metric_fn: Callable[[Rows, Rows], float],
    n_boot: int = 1000,
    alpha: float = ALPHA,
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
