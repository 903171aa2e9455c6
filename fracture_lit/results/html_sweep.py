"""The HTML page of a sweep: ``<sweep>/report.html``, and every job's own page.

The sweep page has the report's tables (:mod:`.table`), a comparison chart (:mod:`.charts`)
and one section per job (error, metrics, confusion matrices, learning curves, Grad-CAM),
each linking to the job's full page by a relative path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from fracture_lit.layout import RunLayout, SweepLayout
from fracture_lit.results.charts import comparison_chart
from fracture_lit.results.folders import JobResult, load_jobs
from fracture_lit.results.html_page import (
    esc,
    figure,
    html_table,
    output_path,
    page,
    write_atomic,
)
from fracture_lit.results.html_run import run_sections, write_run_page
from fracture_lit.results.run_folder import load_run
from fracture_lit.results.sweep_tables import sweep_tables
from fracture_lit.results.table import (
    Table,
    is_failed,
    papers_line,
    repeat_groups,
    shared_overrides,
    status_badge,
    sweep_summary,
)

__all__ = ["write_sweep_report_html"]


def _href(target: Path, start: Path) -> str:
    """A relative link (works when the sweep folder is moved or copied as a whole)."""
    return quote(Path(os.path.relpath(target, start)).as_posix())


def _sweep_tables(jobs: Sequence[JobResult], tables: Sequence[Table]) -> str:
    """The report's tables as HTML; job numbers link to their section, failures in red."""
    by_num = {str(j.num): j for j in jobs}
    parts = []
    for spec in tables:
        linked = bool(spec.headers) and spec.headers[0] == "job"
        rows, classes = [], []
        for row in spec.rows:
            cells = [esc(c) for c in row]
            job = by_num.get(row[0]) if linked else None
            if job is not None:
                cells[0] = f'<a href="#job-{job.num}">{esc(job.num)}</a>'
            rows.append(cells)
            classes.append("fail" if job is not None and is_failed(job) else "")
        parts.append(f"<h3>{esc(spec.title)}</h3>")
        parts.append(
            html_table(
                spec.headers, rows, spec.right, classes, raw_columns=range(len(spec.headers))
            )
        )
        if spec.note:
            parts.append(f'<p class="meta">{esc(spec.note)}</p>')
    return "".join(parts)


def write_sweep_report_html(
    sweep_dir: Path | str,
    out: Path | str | None = None,
    *,
    jobs: Sequence[JobResult] | None = None,
    tables: Sequence[Table] | None = None,
    search: Sequence[str] = (),
) -> Path:
    """Write the sweep's ``report.html`` and every job's own ``report.html``.

    The sweep page has the report's tables, a comparison chart and one section per job
    (error, metrics, confusion matrices, learning curves, Grad-CAM), each linking to the
    job's full report by a relative path. ``jobs`` and ``tables`` skip reloading when the
    caller (:func:`fracture_lit.results.sweep_report.write_report`) already has them;
    ``search`` is the HTML of an Optuna search's section (:mod:`.html_search`).
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    jobs = list(jobs) if jobs is not None else load_jobs(sweep_dir)
    if tables is None:
        tables = sweep_tables(jobs, repeat_groups(jobs))
    path = output_path(SweepLayout(sweep_dir).report, out)
    body = [
        f"<h1>Sweep report</h1>"
        f'<p class="meta">Folder: <code>{esc(sweep_dir)}</code></p>'
        f'<p class="meta">{esc(sweep_summary(jobs))}.</p>'
    ]
    shared = shared_overrides(jobs)
    if shared:
        body.append(
            '<p class="meta">Overrides shared by every job: '
            f"<code>{esc(' '.join(shared))}</code></p>"
        )
    papers = papers_line(jobs)
    if papers:
        body.append(f'<p class="meta">Paper numbers from: {esc("; ".join(papers))}</p>')
    chart = comparison_chart(jobs)
    if chart:
        body.append(
            "<h2>Comparison</h2>" + figure(chart, "point and 95% bootstrap CI per job", "wide")
        )
    body += search
    body.append("<h2>Tables</h2>" + _sweep_tables(jobs, tables))
    body.append("<h2>Per job</h2>")
    for job in jobs:
        run = load_run(job.folder, job)
        run.status, run.error = job.status, job.error  # load_job's reading of the folder
        job_report = write_run_page(run, RunLayout(job.folder).report)
        own = " ".join(o for o in job.overrides if o not in shared) or "(shared only)"
        badge = status_badge(job.status)
        body.append(
            f'<section class="job" id="job-{job.num}">'
            f"<h2>Job {esc(job.num)} · {esc(job.backbone or '?')} "
            f'<span class="badge {badge}">{esc(job.status)}</span></h2>'
            f'<p class="meta">overrides: <code>{esc(own)}</code> · '
            f'<a href="{_href(job_report, path.parent)}">full job report</a></p>'
        )
        body += run_sections(run, level=3, full=False)
        body.append("</section>")
    return write_atomic(path, page(f"Sweep report: {sweep_dir.name}", body))
