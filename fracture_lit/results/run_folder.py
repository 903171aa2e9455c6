"""One run, evaluation or sweep-job folder read once, for its page and the sweep page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import (
    NO_METRICS_ERROR,
    JobResult,
    load_job,
    read_json,
    read_metrics,
)
from fracture_lit.results.job_errors import error_text
from fracture_lit.stats.splits import REPORT_STAGES as RUN_STAGES

__all__ = ["RunFolder", "load_run"]


@dataclass
class RunFolder:
    """What a run / eval / job folder holds, read once for its page and the sweep page."""

    folder: Path
    summary: dict[str, Any]
    job: JobResult | None
    status: str
    error: str
    classes: list[str]
    config: str | None = None
    stages: list[str] = field(default_factory=list)
    #: split -> attribute -> value -> scored block (n, n_positive, metrics, ci95).
    subgroups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def is_eval(self) -> bool:
        return self.summary.get("kind") == "eval"

    @property
    def title(self) -> str:
        s = self.summary
        parts = [
            "Evaluation" if self.is_eval else "Run",
            str(s.get("backbone") or (self.job.backbone if self.job else None) or "?"),
        ]
        if self.classes:
            parts.append(" / ".join(self.classes))
        return " · ".join(parts)


def _subgroups(run_dir: Path, summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-subgroup scores: an evaluation's (metrics.json ``subgroups``, or ``per_region``
    of older ones) and each stage's: its metrics.json block's ``subgroups``, else the
    reviewed split's ``review/<split>/subgroups.json``."""
    out: dict[str, dict[str, Any]] = {}
    split = str(summary.get("split") or "eval")
    found = summary.get("subgroups")
    if isinstance(found, dict) and found:
        out[f"eval on {split}"] = found
    elif isinstance(summary.get("per_region"), dict) and summary["per_region"]:
        out[f"eval on {split}"] = {"region": summary["per_region"]}
    review = RunLayout(run_dir).review
    for stage in RUN_STAGES:
        block = summary.get(stage)
        recorded = block.get("subgroups") if isinstance(block, dict) else None
        scored = recorded if isinstance(recorded, dict) else read_json(review.subgroups(stage))
        scored = {k: v for k, v in scored.items() if isinstance(v, dict) and v}
        if scored:
            out[stage] = scored
    return out


def load_run(run_dir: Path, job: JobResult | None = None) -> RunFolder:
    """Read a run, evaluation or job folder (``job``: its :func:`load_job`, when known)."""
    run_dir = Path(run_dir)
    summary = read_metrics(run_dir)
    if job is None:
        job = load_job(run_dir)  # overrides, backbone, the paper's numbers
    if summary:
        status = str(summary.get("status") or ("done" if summary.get("kind") == "eval" else "?"))
        error = error_text(summary) if status not in {"done", "?"} else ""
    else:
        status = job.status if job else "failed"
        error = job.error if job else NO_METRICS_ERROR
    classes = summary.get("classes")
    stages = [
        s
        for s in (*RUN_STAGES, *sorted(summary))
        if isinstance(summary.get(s), dict) and isinstance(summary[s].get("metrics"), dict)
    ]
    config = None
    for path in RunLayout(run_dir).configs():
        if path.is_file():
            try:
                config = path.read_text(errors="replace")
            except OSError:
                continue
            break
    return RunFolder(
        subgroups=_subgroups(run_dir, summary),
        folder=run_dir,
        summary=summary,
        job=job,
        status=status,
        error=error,
        classes=[str(c) for c in classes] if isinstance(classes, list) else [],
        config=config,
        stages=list(dict.fromkeys(stages)),
    )
