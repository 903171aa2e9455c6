"""The difference of a metric between two independent sets of images, with a bootstrap CI.

Internal vs external validation compares a model on two *different* image sets (a held-out
split of its training sources, and a dataset it never saw), so the paired tests (DeLong,
:mod:`fracture_lit.results.paired`) do not apply: each set is resampled on its own, the
metric's difference taken per replicate, and the percentile interval read off those
differences. numpy only (the sweep report runs without torch), seeded, and like
:mod:`fracture_lit.stats.bootstrap` it skips resamples that lose a class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from fracture_lit.stats import ALPHA
from fracture_lit.stats.auroc import auroc

__all__ = ["UnpairedDifference", "unpaired_difference"]


@dataclass(frozen=True)
class UnpairedDifference:
    """``value_a - value_b`` and its percentile bootstrap interval (NaN when undefined)."""

    value_a: float
    value_b: float
    delta: float
    low: float
    high: float
    n_boot: int

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _resample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Row indices drawn with replacement; None when the draw lost a class."""
    rows = rng.integers(0, labels.size, labels.size)
    drawn = labels[rows]
    return rows if drawn.any() and not drawn.all() else None


def unpaired_difference(
    scores_a: ArrayLike,
    labels_a: ArrayLike,
    scores_b: ArrayLike,
    labels_b: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float] = auroc,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> UnpairedDifference:
    """``metric(a) - metric(b)`` for two independent image sets (binary ``labels``), with a
    ``1 - alpha`` percentile interval over ``n_boot`` resamples of each set drawn apart.

    Replicates where either resample lost a class are drawn again (at most ``10 * n_boot``
    draws); the interval is NaN when either set holds a single class.
    """
    sa, la = np.asarray(scores_a, float), np.asarray(labels_a).astype(bool)
    sb, lb = np.asarray(scores_b, float), np.asarray(labels_b).astype(bool)
    value_a, value_b = float(metric(sa, la)), float(metric(sb, lb))
    nan = math.nan
    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        return UnpairedDifference(value_a, value_b, value_a - value_b, nan, nan, 0)
    rng = np.random.default_rng(seed)
    deltas: list[float] = []
    for _ in range(10 * n_boot):
        if len(deltas) == n_boot:
            break
        rows_a, rows_b = _resample(la, rng), _resample(lb, rng)
        if rows_a is None or rows_b is None:
            continue
        delta = float(metric(sa[rows_a], la[rows_a])) - float(metric(sb[rows_b], lb[rows_b]))
        if math.isfinite(delta):
            deltas.append(delta)
    if not deltas:
        return UnpairedDifference(value_a, value_b, value_a - value_b, nan, nan, 0)
    low, high = np.quantile(np.asarray(deltas), [alpha / 2, 1 - alpha / 2])
    return UnpairedDifference(
        value_a, value_b, value_a - value_b, float(low), float(high), len(deltas)
    )
