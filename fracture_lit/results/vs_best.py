"""The "vs best" column of a sweep report: every job against the best one, paired.

The best job is picked by the report's primary metric on **validation** (``val/auroc``,
the metric the checkpoints are chosen with); every other job is then compared with it on
the **test** images both were scored on (:func:`fracture_lit.results.paired.compare_to_best`),
from the predictions each job's review wrote (``review/test/predictions.csv``). Picking on
test and testing on test would favour the winner.

The comparison is computed once per sweep (cached on the job folders and their files'
modification times), because the tables, results.csv and the HTML page all ask for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult
from fracture_lit.results.paired import BestComparison, JobPredictions, compare_to_best

__all__ = ["PRIMARY", "SELECT_STAGE", "TEST_STAGE", "comparison", "job_names", "vs_best_values",
           "write_json"]  # fmt: skip

#: The metric (catalogue key) the best job is chosen by, on :data:`SELECT_STAGE`.
PRIMARY = "auroc"
SELECT_STAGE = "val"
TEST_STAGE = "test"

_CACHE: dict[tuple[Any, ...], BestComparison | None] = {}


def job_names(jobs: Sequence[JobResult]) -> list[str]:
    """How a sentence names each job: its backbone, plus the job number when two share it."""
    backbones = [j.backbone or "job" for j in jobs]
    return [
        b if backbones.count(b) == 1 else f"{b} (job {j.num})"
        for b, j in zip(backbones, jobs, strict=True)
    ]


def _stamp(job: JobResult) -> tuple[Any, ...]:
    path = RunLayout(job.folder).review.predictions(TEST_STAGE)
    try:
        return (str(job.folder), job.status, path.stat().st_mtime_ns)
    except OSError:
        return (str(job.folder), job.status, None)


def comparison(jobs: Sequence[JobResult]) -> BestComparison | None:
    """Every finished job with test predictions against the best by validation AUROC.

    None when fewer than two jobs have predictions or none has a validation AUROC.
    """
    key = tuple(_stamp(j) for j in jobs)
    if key in _CACHE:
        return _CACHE[key]
    preds: list[JobPredictions] = []
    selection: dict[str, float] = {}
    for job, name in zip(jobs, job_names(jobs), strict=True):
        if job.status != "done":
            continue
        try:
            pred = JobPredictions.from_run_folder(job.folder, name, TEST_STAGE)
        except (OSError, ValueError):
            continue
        preds.append(pred)
        value = job.point(SELECT_STAGE, PRIMARY)
        if value is not None and math.isfinite(value):
            selection[pred.name] = float(value)
    result = None
    if len(preds) >= 2:
        result = compare_to_best(preds, selection, metric=f"{SELECT_STAGE}/{PRIMARY}")
    _CACHE[key] = result
    return result


def vs_best_values(jobs: Sequence[JobResult], stage: str) -> list[str | None] | None:
    """The column's cells (test stage only): ``best (...)``, ``ΔAUROC ... p=...``, or why not."""
    if stage != TEST_STAGE:
        return None
    found = comparison(jobs)
    if found is None:
        return None
    names = job_names(jobs)
    known = {found.best, *found.comparisons}
    return [found.cell(n) if n in known else None for n in names]


def vs_best_note(jobs: Sequence[JobResult], stage: str) -> str:
    """The sentences under the test table: what a reader can take away."""
    found = comparison(jobs) if stage == TEST_STAGE else None
    if found is None:
        return ""
    return (
        " ".join(found.sentences())
        + " vs best: the job minus the best job on the same test images; 95% paired "
        "bootstrap CI, DeLong's test for ΔAUROC, McNemar's test for Δaccuracy."
    )


def write_json(jobs: Sequence[JobResult], path: Path) -> Path | None:
    """``vs_best.json`` (the sweep's :attr:`~fracture_lit.layout.SweepLayout.vs_best`):
    every comparison with all its numbers (for scripts and tests)."""
    found = comparison(jobs)
    if found is None:
        return None
    path = Path(path)
    path.write_text(json.dumps(found.to_dict(), indent=2, default=float))
    return path
