"""A sweep's ``model_card.md``: every job with its status, starting weights and headline
metric, linking to each job's own card.

The headline is AUROC with its 95% interval, validation and test, copied from each job's
``metrics.json`` (the table says which key). Writing the sweep card also (re)writes every
job's card, so a sweep reported later (``python -m fracture_lit.report <sweep>``) has
them all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout, SweepLayout
from fracture_lit.results.card_lines import number
from fracture_lit.results.folders import JobResult, load_jobs, read_metrics
from fracture_lit.results.model_card import DISCLAIMER, try_write_model_card
from fracture_lit.results.table import is_failed, shared_overrides, status_cell, sweep_summary
from fracture_lit.utils.atomic import write_text_atomic

__all__ = ["HEADLINE", "sweep_card", "write_sweep_card"]

#: The headline metric of every job: AUROC on these stages (``<stage>.ci95.auroc``).
HEADLINE = ("val", "test")


def _interval(summary: dict[str, Any], stage: str) -> str:
    """``0.8123 [0.7511, 0.8702]`` from ``<stage>.ci95.auroc``; ``-`` when not recorded."""
    block = summary.get(stage) if isinstance(summary.get(stage), dict) else {}
    triple = (block.get("ci95") or {}).get("auroc")
    if not (isinstance(triple, list) and len(triple) == 3 and number(triple[0])):
        return "-"
    low, high = number(triple[1]), number(triple[2])
    return f"{number(triple[0])}" + (f" [{low}, {high}]" if low and high else "")


def _weights(summary: dict[str, Any]) -> str:
    record = summary.get("starting_weights")
    if not isinstance(record, dict):
        return "-"
    if record.get("weights") == "file":
        return (
            f"file {Path(str(record.get('file'))).name} (sha256 {str(record.get('sha256'))[:12]}…)"
        )
    if record.get("weights") == "imagenet":
        return f"imagenet ({record.get('hub_id') or 'timm'})"
    return "none"


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def sweep_card(sweep_dir: Path, jobs: Sequence[JobResult], card_dir: Path) -> str:
    """The sweep card as markdown (links relative to ``card_dir``, where it is written)."""
    shared = shared_overrides(jobs)
    lines = [
        f"# Model card: sweep {sweep_dir.name}",
        "",
        f"Folder `{sweep_dir}` · {sweep_summary(jobs)}. Full report: "
        f"[{SweepLayout.REPORT}]({_link(SweepLayout(sweep_dir).report, card_dir)}); "
        f"tables and paired comparisons: "
        f"[{SweepLayout.RESULTS_MD}]({_link(SweepLayout(sweep_dir).results_md, card_dir)}).",
        "",
        f"> {DISCLAIMER}",
        "",
    ]
    if shared:
        lines += [f"Overrides shared by every job: `{' '.join(shared)}`.", ""]
    lines += [
        "## Jobs",
        "",
        "Headline: AUROC with its 95% interval, copied from each job's metrics.json "
        "(`val.ci95.auroc`, `test.ci95.auroc`). Each job's card describes its data, split, "
        "training, calibration, subgroups and limitations.",
        "",
        "| job | overrides | status | starting weights | validation AUROC [95% CI] "
        "| test AUROC [95% CI] | card |",
        "|---|---|---|---|---|---|---|",
    ]
    for job in jobs:
        summary = read_metrics(job.folder)
        own = " ".join(o for o in job.overrides if o not in shared) or "(shared only)"
        card = RunLayout(job.folder).model_card
        link = f"[{RunLayout.MODEL_CARD}]({_link(card, card_dir)})" if card.is_file() else "-"
        cells = [
            str(job.num),
            f"`{own}`",
            status_cell(job),
            _weights(summary),
            *(_interval(summary, stage) for stage in HEADLINE),
            link,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    failed = [j for j in jobs if is_failed(j)]
    lines += [
        "",
        "## Choosing among the jobs",
        "",
        "- Choose on validation, then report that job's test figure once: the best of "
        f"{len(jobs)} jobs by its test AUROC is an optimistic estimate.",
        f"- Paired tests between jobs scored on the same test images: {SweepLayout.RESULTS_MD}"
        f" and {SweepLayout.VS_BEST}.",
    ]
    if failed:
        numbers = ", ".join(str(j.num) for j in failed)
        lines.append(f"- {len(failed)} of {len(jobs)} jobs did not finish (jobs {numbers}).")
    return "\n".join(lines) + "\n"


def write_sweep_card(
    sweep_dir: Path | str, jobs: Sequence[JobResult] | None = None, out: Path | None = None
) -> Path:
    """Write every job's card, then the sweep's ``model_card.md`` (or ``out``)."""
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    jobs = list(jobs) if jobs is not None else load_jobs(sweep_dir)
    for job in jobs:
        if job.folder.is_dir():
            try_write_model_card(job.folder)
    target = out if out is not None else SweepLayout(sweep_dir).model_card
    return write_text_atomic(target, sweep_card(sweep_dir, jobs, target.parent.resolve()))
