"""Paired differences of two models on the same images: what every comparison reports.

The sweep's "vs best" (ΔAUROC, Δaccuracy: :mod:`fracture_lit.results.paired`) and the
localization comparison (Δpointing game: :mod:`fracture_lit.localization.paired`) both
hold a :class:`Difference` and refuse images that differ with :class:`NotPairedError`;
:func:`sign_flip_p` is the paired permutation test of a mean difference (for 0/1 scores
McNemar's exact test, by Monte Carlo). No torch: reports import this without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["PERMUTATION_TEST", "Difference", "NotPairedError", "sign_flip_p"]

PERMUTATION_TEST = "paired sign-flip permutation"


class NotPairedError(ValueError):
    """Two jobs were not scored on the same images: a paired comparison would be wrong."""


@dataclass(frozen=True)
class Difference:
    """``job - reference`` of one score with a paired-bootstrap 95% interval and a test's
    p-value, over ``n`` paired images."""

    job: float
    reference: float
    delta: float
    low: float
    high: float
    p: float | None = None
    test: str | None = None
    n: int = 0
    score: str = ""  # what is compared: auroc, acc, pointing, ...

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def sign_flip_p(differences: np.ndarray, n_permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p of ``mean(differences) == 0`` by random sign flips (paired data)."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < n_permutations:
        rows = min(2**20 // max(d.size, 1) or 1, n_permutations - done)
        signs = rng.integers(0, 2, size=(rows, d.size), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ d) / d.size >= observed - 1e-12).sum())
        done += rows
    return (extreme + 1) / (n_permutations + 1)
