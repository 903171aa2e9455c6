"""The filter between the stages: who passes the detector, and whether enough did.

``p(fractured) >= threshold`` passes (the Youden threshold is a midpoint between validation
scores, so ``>=`` and the metrics' ``>`` agree there, and ``threshold=0`` passes
everything: stage 2 unfiltered). Every image's score and verdict, and the passed paths
(stage 2's ``data.subset_file``), are written to the pipeline's folder.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.tasks.pipeline.stages import PipelineError

__all__ = ["check_enough_passed", "pass_counts", "write_scores"]


def write_scores(
    run_dir: Path,
    paths: Sequence[str],
    classes: Sequence[str],
    scores: Sequence[float],
    threshold: float,
) -> tuple[Path, list[bool]]:
    """Write every image's score and verdict, and the passed paths (stage 2's subset)."""
    passed = [not math.isnan(s) and s >= threshold for s in scores]
    run = RunLayout(run_dir)
    with run.stage_scores.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class", "p_fractured", "passed"])
        for row in zip(paths, classes, scores, passed, strict=True):
            writer.writerow([row[0], row[1], f"{row[2]:.6f}", str(row[3]).lower()])
    subset = run.stage_subset
    with subset.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([p] for p, ok in zip(paths, passed, strict=True) if ok)
    return subset, passed


def pass_counts(
    class_names: Sequence[str], classes: Sequence[str], passed: Sequence[bool]
) -> dict[str, Any]:
    """Images and passed images, overall and per class (every class listed, even empty)."""

    def entry(flags: list[bool]) -> dict[str, Any]:
        n, k = len(flags), sum(flags)
        return {"n": n, "passed": k, "pass_rate": k / n if n else math.nan}

    per_class = {
        name: entry([ok for c, ok in zip(classes, passed, strict=True) if c == name])
        for name in class_names
    }
    return {**entry(list(passed)), "per_class": per_class}


def check_enough_passed(
    counts: dict[str, Any],
    classes: Sequence[str],
    scores: Sequence[float],
    threshold: float,
    minimum: int,
) -> None:
    """Stop before stage 2 when a class kept too few images to split and train on, and say
    which threshold would keep ``minimum`` of every class."""
    per_class = counts["per_class"]
    short = {c: v for c, v in per_class.items() if v["passed"] < minimum}
    if not short:
        return
    listing = ", ".join(f"{c}: {v['passed']}/{v['n']}" for c, v in per_class.items())
    ranked = {
        name: sorted(
            (s for s, c in zip(scores, classes, strict=True) if c == name and not math.isnan(s)),
            reverse=True,
        )
        for name in per_class
    }
    too_small = [c for c, r in ranked.items() if len(r) < minimum]
    if too_small:
        hint = (
            f"{', '.join(too_small)}: fewer than {minimum} readable images in all. Lower "
            "min_per_class=<n> or choose other classes."
        )
    else:
        # passed is p >= threshold: the lowest k-th score, rounded down, keeps k of each.
        kth = [r[minimum - 1] for r in ranked.values()]
        suggestion = max(0.0, math.floor(min(kth) * 1e4) / 1e4)
        hint = f"A lower threshold keeps {minimum} of every class: threshold={suggestion:g}."
    raise PipelineError(
        f"At threshold {threshold:.4g} the detector passed too few images for stage 2 to "
        f"split (min_per_class={minimum}); passed per class: {listing}. {hint}"
    )
