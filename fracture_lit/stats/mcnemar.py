"""McNemar's test: do two models scored on the same images make different numbers of errors?

Only the discordant images count (one model right, the other wrong): exact binomial below
:data:`MCNEMAR_EXACT_BELOW` of them, chi-square with continuity correction above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["MCNEMAR_EXACT_BELOW", "McNemarResult", "mcnemar_test"]

MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on the images exactly one of the two models gets right."""

    only_a: int  # a right, b wrong
    only_b: int  # b right, a wrong
    p: float
    method: str  # "exact" (binomial) or "chi2" (with continuity correction)


def mcnemar_test(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemarResult:
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    if discordant == 0:
        return McNemarResult(only_a, only_b, 1.0, "exact")
    if discordant < MCNEMAR_EXACT_BELOW:
        p = float(stats.binomtest(only_a, discordant, 0.5).pvalue)
        return McNemarResult(only_a, only_b, min(p, 1.0), "exact")
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    return McNemarResult(only_a, only_b, float(stats.chi2.sf(statistic, 1)), "chi2")
