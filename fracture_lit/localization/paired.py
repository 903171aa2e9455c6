"""Paired comparison of two jobs' localization scores on the same images (sweeps).

"Which backbone looks at the fracture" is answered like "which backbone is more
accurate": image by image. Two jobs scored on the same images are compared by the
difference of their mean scores, with a paired percentile-bootstrap 95% interval (one
resample of the images serves both jobs, the project's bootstrap) and the p-value of a
paired sign-flip permutation test (for 0/1 scores such as the pointing game this is
McNemar's exact test, Monte-Carlo). Images are aligned by identifier, never by position;
jobs not scored on the same images are refused (:class:`~fracture_lit.stats.paired.
NotPairedError`), saying how they differ.

Importing this module does not import torch (sweep reports read folders without it).
The result is the :class:`~fracture_lit.stats.paired.Difference` the sweep's "vs best"
comparisons hold, so the sweep table shows both the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fracture_lit.stats.paired import PERMUTATION_TEST, Difference, NotPairedError, sign_flip_p

__all__ = ["paired_difference"]


def _aligned(job: Mapping[str, float], reference: Mapping[str, float]) -> list[str]:
    if job.keys() != reference.keys():
        only_job, only_ref = job.keys() - reference.keys(), reference.keys() - job.keys()
        example = sorted(only_job or only_ref)[0]
        raise NotPairedError(
            f"the localization scores are on different images ({len(only_job)} only in the "
            f"job, {len(only_ref)} only in the reference, e.g. {example}): not compared"
        )
    if not job:
        raise NotPairedError("no images with localization scores to compare")
    return sorted(job)  # a fixed order: the bootstrap draws the same images however listed


def paired_difference(
    job: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    score: str = "",
    n_bootstrap: int = 1000,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> Difference:
    """``mean(job) - mean(reference)`` over the images both hold (``{image id: score}``,
    e.g. :meth:`SplitLocalization.per_image`). Raises
    :class:`~fracture_lit.stats.paired.NotPairedError` when the two do not hold the same
    images."""
    # The project's one bootstrap (torch), imported here: a sweep report that only reads
    # folders stays free of torch until it has something to compare.
    import torch

    from fracture_lit.stats.bootstrap import bootstrap_cis

    ids = _aligned(job, reference)
    a = np.array([float(job[i]) for i in ids])
    b = np.array([float(reference[i]) for i in ids])
    packed = torch.from_numpy(np.column_stack([a, b]))
    point, low, high = bootstrap_cis(
        packed,
        torch.zeros(len(ids), dtype=torch.long),
        lambda rows, _targets: {"delta": float(rows[:, 0].mean() - rows[:, 1].mean())},
        n_boot=n_bootstrap,
        seed=seed,
        require_all_classes=False,
    )["delta"]
    return Difference(
        job=float(a.mean()),
        reference=float(b.mean()),
        delta=point,
        low=low,
        high=high,
        p=sign_flip_p(a - b, n_permutations, seed),
        test=PERMUTATION_TEST,
        n=len(ids),
        score=score,
    )
