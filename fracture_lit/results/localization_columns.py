"""The sweep table's localization columns: which backbone looks at the fracture.

``localization``: each job's Grad-CAM pointing-game hit rate, its 95% CI and the number of
fractured images with regions, on validation and test (``metrics.json``'s ``localization``
blocks). ``localization vs best`` (test): every job against the job with the best
*validation* pointing game, on the same test images, paired like the "vs best" column: the
difference of hit rates with a paired bootstrap 95% CI (one resample of the images for
both jobs) and a sign-flip permutation p (McNemar's exact test for 0/1 hits), from the
per-image scores each job saved (``review/test/localization.npz``). Jobs whose data
settings, regions or images differ are not compared; the cell says why.

Computed once per sweep (cached on the job folders and their files' modification times).
Imports no torch until two jobs are compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.localization.files import load_per_image
from fracture_lit.localization.paired import paired_difference
from fracture_lit.localization.table import headline
from fracture_lit.results.folders import JobResult
from fracture_lit.results.paired import check_same_data, data_setting, image_id
from fracture_lit.results.vs_best import SELECT_STAGE, TEST_STAGE, job_names
from fracture_lit.stats.catalogue import format_interval
from fracture_lit.stats.paired import Difference, NotPairedError

__all__ = [
    "LocalizationBest",
    "localization_comparison",
    "localization_note",
    "localization_values",
    "localization_vs_best_values",
]

#: The per-image score the columns show and compare (Grad-CAM's, on every image).
SCORE = "pointing"
_CACHE: dict[tuple[Any, ...], LocalizationBest | None] = {}


def localization_values(jobs: Sequence[JobResult], stage: str) -> list[str | None] | None:
    """``0.652 [0.435, 0.826] (n=23)`` per job; None when no job scored this stage."""
    blocks = [job.localization.get(stage) for job in jobs]
    if not any(blocks):
        return None
    return [
        f"{format_interval(headline(b, SCORE))} (n={b.get('n_images', 0)})" if b else None
        for b in blocks
    ]


@dataclass
class LocalizationBest:
    """Every job's test pointing game against the best job's (chosen on validation)."""

    best: str
    best_value: float
    #: job name -> its paired difference from the best, or why it was not compared.
    comparisons: dict[str, Difference | str]

    def cell(self, name: str) -> str:
        if name == self.best:
            return f"best (val {SCORE} {self.best_value:.3f})"
        found = self.comparisons.get(name)
        if isinstance(found, Difference):
            p = "<0.001" if found.p is not None and found.p < 0.001 else f"{found.p:.2g}"
            return f"Δ{SCORE} {found.delta:+.3f} [{found.low:+.3f}, {found.high:+.3f}] p={p}"
        return found or "not compared: no localization scores"

    def sentences(self) -> list[str]:
        out = [f"{self.best} has the best validation pointing game ({self.best_value:.3f})."]
        for name, found in self.comparisons.items():
            if isinstance(found, Difference):
                out.append(
                    f"{name} vs {self.best} on {found.n} test images: {self.cell(name)}"
                    f" ({'an interval without 0' if found.excludes_zero else 'no clear difference'})."
                )
            else:
                out.append(f"{name}: {found}.")
        return out


def _npz(job: JobResult) -> Path:
    return RunLayout(job.folder).review.localization(TEST_STAGE)


def _stamp(job: JobResult) -> tuple[Any, ...]:
    try:
        return (str(job.folder), job.status, _npz(job).stat().st_mtime_ns)
    except OSError:
        return (str(job.folder), job.status, None)


def _per_image(job: JobResult) -> dict[str, float]:
    """The job's test pointing hits by image identifier (path relative to the data root)."""
    _setting, root = data_setting(job.folder)
    return {image_id(p, root): v for p, v in load_per_image(_npz(job), SCORE).items()}


def _regions(job: JobResult) -> str | None:
    found = (job.localization.get(TEST_STAGE) or {}).get("regions_file")
    return str(Path(str(found)).resolve()) if found else None


def _compare(job: tuple[str, JobResult], best: tuple[str, JobResult]) -> Difference | str:
    (name, one), (best_name, other) = job, best
    try:
        check_same_data(name, data_setting(one.folder)[0], best_name, data_setting(other.folder)[0])
        if _regions(one) != _regions(other):
            raise NotPairedError(f"other regions files ({_regions(one)} vs {_regions(other)})")
        return paired_difference(_per_image(one), _per_image(other), score=SCORE)
    except (NotPairedError, OSError, KeyError, ValueError) as error:
        return f"not compared: {error}"


def localization_comparison(jobs: Sequence[JobResult]) -> LocalizationBest | None:
    """Every done job with test localization against the best by validation pointing game.

    None when fewer than two such jobs, or none has a validation pointing game.
    """
    key = tuple(_stamp(j) for j in jobs)
    if key in _CACHE:
        return _CACHE[key]
    scored = [
        (name, job)
        for name, job in zip(job_names(jobs), jobs, strict=True)
        if job.status == "done" and job.localization.get(TEST_STAGE) and _npz(job).is_file()
    ]
    selection = {}
    for name, job in scored:
        value = headline(job.localization.get(SELECT_STAGE) or {}, SCORE)[0]
        if value is not None and math.isfinite(float(value)):
            selection[name] = float(value)
    result = None
    if len(scored) >= 2 and selection:
        best = max((s for s in scored if s[0] in selection), key=lambda s: selection[s[0]])
        result = LocalizationBest(
            best[0],
            selection[best[0]],
            {s[0]: _compare(s, best) for s in scored if s is not best},
        )
    _CACHE[key] = result
    return result


def localization_vs_best_values(jobs: Sequence[JobResult], stage: str) -> list[str | None] | None:
    """The ``localization vs best`` cells (test stage only), or None without a comparison."""
    if stage != TEST_STAGE:
        return None
    found = localization_comparison(jobs)
    if found is None:
        return None
    known = {found.best, *found.comparisons}
    return [found.cell(n) if n in known else None for n in job_names(jobs)]


def localization_note(jobs: Sequence[JobResult], stage: str) -> str:
    """How to read the columns, under the stage table."""
    if not any(job.localization.get(stage) for job in jobs):
        return ""
    note = (
        "localization: Grad-CAM's pointing-game hit rate on the fractured images with "
        "annotated regions (the maximum within the tolerance of a region), 95% bootstrap CI."
    )
    found = localization_comparison(jobs) if stage == TEST_STAGE else None
    if found is None:
        return note
    return " ".join(
        [
            note,
            *found.sentences(),
            "localization vs best: the job minus the job with the best validation pointing "
            "game on the same test images; 95% paired bootstrap CI, sign-flip permutation p.",
        ]
    )
