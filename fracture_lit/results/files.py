"""File renderers of a sweep: ``results.csv`` (one row per job) and ``results.md``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.results.folders import JobResult
from fracture_lit.results.sweep_tables import sweep_tables
from fracture_lit.results.table import (
    JOB_COLUMNS,
    RepeatGroup,
    Table,
    papers_line,
    shared_overrides,
    sweep_summary,
)
from fracture_lit.stats.catalogue import sweep_metrics
from fracture_lit.stats.splits import STAGES
from fracture_lit.utils.atomic import write_text_atomic

__all__ = ["csv_columns", "csv_row", "markdown_report", "write_csv", "write_markdown"]


def csv_columns() -> list[str]:
    """``results.csv`` header: fixed, so sweeps can be concatenated and compared."""
    columns = [
        "job",
        "folder",
        "overrides",
        "backbone",
        "seed",
        "status",
        "error",
        "epochs",
        "wall_time_s",
        "stopped_early",
        "best_model_path",
        "disk_bytes",
    ]
    for stage in STAGES:
        columns.append(f"{stage}_n")
        for metric in sweep_metrics():
            name = f"{stage}_{metric.column}"
            columns += [name, f"{name}_low", f"{name}_high", f"{name}_paper"]
        columns += [f"{stage}_{column.name}" for column in JOB_COLUMNS]
    return columns


def csv_row(job: JobResult, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """One job's row; ``extras`` holds its :data:`JOB_COLUMNS` values by csv column."""
    row: dict[str, Any] = {
        "job": job.num,
        "folder": str(job.folder),
        "overrides": " ".join(job.overrides),
        "backbone": job.backbone or "",
        "seed": job.seed or "",
        "status": job.status,
        "error": job.error,
        "epochs": "" if job.epochs is None else job.epochs,
        "wall_time_s": "" if job.wall_time_s is None else job.wall_time_s,
        "stopped_early": "" if job.stopped_early is None else job.stopped_early,
        "best_model_path": job.best_model_path or "",
        "disk_bytes": "" if job.disk_bytes is None else job.disk_bytes,
    }
    for stage in STAGES:
        row[f"{stage}_n"] = job.n.get(stage, "")
        for metric in sweep_metrics():
            name = f"{stage}_{metric.column}"
            values = job.metrics.get(stage, {}).get(metric.key, (None, None, None))
            for suffix, value in zip(("", "_low", "_high"), values, strict=True):
                row[name + suffix] = "" if value is None else value
            paper = job.paper.get(stage, {}).get(metric.key)
            row[f"{name}_paper"] = "" if paper is None else paper
    for key, value in (extras or {}).items():
        row[key] = "" if value is None else value
    return row


def write_csv(jobs: Sequence[JobResult], path: Path) -> Path:
    """``results.csv``: one row per job (failed ones too), columns of :func:`csv_columns`."""
    extras: list[dict[str, Any]] = [{} for _ in jobs]
    for stage in STAGES:
        for column in JOB_COLUMNS:
            values = column.values(jobs, stage) or [None] * len(jobs)
            for row, value in zip(extras, values, strict=True):
                row[f"{stage}_{column.name}"] = value
    stream = io.StringIO(newline="")
    writer = csv.DictWriter(stream, fieldnames=csv_columns())
    writer.writeheader()
    writer.writerows(csv_row(j, e) for j, e in zip(jobs, extras, strict=True))
    return write_text_atomic(path, stream.getvalue())  # two sweep reporters never mix rows


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(table: Table) -> list[str]:
    align = ["---:" if i in table.right else "---" for i in range(len(table.headers))]
    lines = [
        f"## {table.title}",
        "",
        "| " + " | ".join(table.headers) + " |",
        "|" + "|".join(align) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return [*lines, ""]


def markdown_report(
    sweep_dir: Path,
    jobs: Sequence[JobResult],
    groups: Sequence[RepeatGroup],
    tables: Sequence[Table] | None = None,
) -> str:
    """``results.md``: a summary line, the shared overrides, then the tables."""
    lines = [f"# Sweep report: {sweep_dir}", "", f"{sweep_summary(jobs)}."]
    shared = shared_overrides(jobs)
    if shared:
        lines.append("Overrides shared by every job: `" + " ".join(shared) + "`")
    papers = papers_line(jobs)
    if papers:
        lines.append('Paper numbers ("paper" columns) from: ' + "; ".join(papers))
    lines.append("")
    for table in tables if tables is not None else sweep_tables(jobs, groups):
        lines += md_table(table)
    return "\n".join(lines)


def write_markdown(
    sweep_dir: Path,
    jobs: Sequence[JobResult],
    groups: Sequence[RepeatGroup],
    path: Path,
    tables: Sequence[Table] | None = None,
) -> Path:
    return write_text_atomic(path, markdown_report(sweep_dir, jobs, groups, tables) + "\n")
