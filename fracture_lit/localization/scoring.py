"""Per-image scores -> the numbers a table shows: mean, bootstrap 95% CI and n.

Every method (the model's Grad-CAM and the baselines) is summarised on the same images,
for all fractured images with regions and separately for the model's correct and missed
fractures (decided at the validation-chosen threshold). MaxBoxAcc is the best
threshold's box hit rate (Choe et al. 2020), bootstrapped as the maximum it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fracture_lit.localization.names import GROUPS, IMAGE_SCORES, SUMMARY_SCORES, THRESHOLD_SWEEP
from fracture_lit.stats import MIN_IMAGES_FOR_CI
from fracture_lit.stats.bootstrap import bootstrap_cis

__all__ = [
    "GROUPS",
    "SUMMARY_SCORES",
    "MethodScores",
    "group_rows",
    "summarize",
    "summarize_groups",
]


@dataclass
class MethodScores:
    """One heatmap method's per-image scores: ``values`` ``(N, len(IMAGE_SCORES))`` and box
    hits ``sweep`` ``(N, len(THRESHOLD_SWEEP))``."""

    values: np.ndarray
    sweep: np.ndarray

    def column(self, score: str) -> np.ndarray:
        """One per-image score ``(N,)`` by name (e.g. for a paired comparison)."""
        return self.values[:, IMAGE_SCORES.index(score)]

    def subset(self, rows: np.ndarray) -> MethodScores:
        return MethodScores(self.values[rows], self.sweep[rows])


def _means(packed: np.ndarray) -> dict[str, float]:
    """Mean of each per-image score, and MaxBoxAcc, of one method's packed columns."""
    k = len(IMAGE_SCORES)
    means = packed.mean(axis=0)
    out = {name: float(means[i]) for i, name in enumerate(IMAGE_SCORES)}
    out["max_box_acc"] = float(means[k:].max())
    return out


def summarize(
    methods: dict[str, MethodScores], n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {score: {value, low, high}}}`` for :data:`SUMMARY_SCORES` on the same
    images; MaxBoxAcc also names its threshold. ``low``/``high`` come from
    ``n_bootstrap`` image resamples (one resample serves every method), left out below
    :data:`MIN_IMAGES_FOR_CI` images. No images gives ``{}``."""
    n = len(next(iter(methods.values())).values) if methods else 0
    if n == 0:
        return {}
    width = len(IMAGE_SCORES) + len(THRESHOLD_SWEEP)
    names = list(methods)
    packed = np.hstack([np.hstack([m.values, m.sweep]) for m in methods.values()])

    def all_means(rows: np.ndarray) -> dict[str, float]:
        return {
            f"{name}/{score}": value
            for j, name in enumerate(names)
            for score, value in _means(rows[:, j * width : (j + 1) * width]).items()
        }

    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in names}
    for key, value in all_means(packed).items():
        name, score = key.split("/")
        out[name][score] = {"value": value}
    for j, name in enumerate(names):
        sweep = packed[:, j * width + len(IMAGE_SCORES) : (j + 1) * width].mean(axis=0)
        out[name]["max_box_acc"]["threshold"] = THRESHOLD_SWEEP[int(sweep.argmax())]
    if n >= MIN_IMAGES_FOR_CI and n_bootstrap > 0:
        intervals = bootstrap_cis(
            torch.from_numpy(packed.astype(np.float64)),
            torch.zeros(n, dtype=torch.long),
            lambda rows, _targets: all_means(rows.numpy()),
            n_boot=n_bootstrap,
            seed=seed,
            require_all_classes=False,
        )
        for key, (_point, low, high) in intervals.items():
            name, score = key.split("/")
            out[name][score].update(low=low, high=high)
    return out


def group_rows(correct: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean row selections of :data:`GROUPS` from the per-image correctness."""
    correct = np.asarray(correct, dtype=bool)
    return {"all": np.ones_like(correct), "correct": correct, "missed": ~correct}


def summarize_groups(
    methods: dict[str, MethodScores], correct: np.ndarray, n_bootstrap: int, seed: int
) -> dict[str, dict[str, Any]]:
    """``{group: {"n": n, method: {score: {value, low, high}}}}`` for every group."""
    out: dict[str, dict[str, Any]] = {}
    for group, rows in group_rows(correct).items():
        subset = {name: scores.subset(rows) for name, scores in methods.items()}
        out[group] = {"n": int(rows.sum()), **summarize(subset, n_bootstrap, seed)}
    return out
