"""A sweep's report in one call: ``results.csv``, ``results.md``, ``report.html``, console.

Every job of a sweep writes its own ``metrics.json``; comparing twelve jobs means opening
twelve files. :func:`write_report` reads every numbered job folder once and writes

* ``results.csv``: one row per job, with point / low / high columns for every sweep metric
  of :mod:`.catalogue`, so the sweep can be plotted or compared without re-parsing json;
* ``results.md``: the same jobs as readable tables (95% bootstrap intervals, the paper's
  number beside each metric when the job's config carries a ``paper:`` block), "mean ± sd"
  tables for jobs differing only in ``seed=`` or ``data.fold=``, and for folds the pooled
  out-of-fold AUROC (:mod:`.pooled`);
* ``report.html``: one self-contained page (:mod:`.html_sweep`), plus a ``report.html`` in
  every job folder, linked from it;
* ``model_card.md``: every job's status, starting weights and headline AUROC, linking to
  each job's own card (:mod:`.card_sweep`);
* for an Optuna search, ``best_config.yaml`` (the best trial, ready to run) and a search
  section in the page: importance, history, parallel coordinates (:mod:`.search_insight`);

and prints the tables on the console. It only reads files: torch is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.layout import SweepLayout
from fracture_lit.results.card_sweep import write_sweep_card
from fracture_lit.results.console import print_sweep
from fracture_lit.results.files import write_csv, write_markdown
from fracture_lit.results.folders import JobResult, load_jobs
from fracture_lit.results.search_insight import load_insight, write_best_config
from fracture_lit.results.sweep_tables import held_out_sources, sweep_tables
from fracture_lit.results.table import (
    is_failed,
    repeat_groups,
)
from fracture_lit.results.vs_best import write_json as write_vs_best_json

__all__ = ["ReportPaths", "write_report"]


@dataclass
class ReportPaths:
    """What :func:`write_report` wrote and read."""

    csv: Path
    markdown: Path
    jobs: list[JobResult]
    #: The sweep's report.html (None with ``html=False``); each job folder has its own.
    html: Path | None = None
    #: The sweep's model_card.md (each job folder has its own).
    card: Path | None = None


def write_report(
    sweep_dir: Path | str,
    out: Path | str | None = None,
    console: Any | None = None,
    show: bool = True,
    html: bool = True,
) -> ReportPaths:
    """Write ``results.csv``, ``results.md`` and ``report.html`` for a sweep.

    They go into ``out`` or the sweep folder; with ``html`` every job folder also gets its
    own ``report.html``. Prints the tables and the written paths with rich unless ``show``
    is false (``console`` redirects them). Raises
    :class:`~fracture_lit.results.folders.ReportError` when the folder has no job.
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    jobs = load_jobs(sweep_dir)
    groups = repeat_groups(jobs)
    tables = sweep_tables(jobs, groups)
    written = SweepLayout(Path(out).expanduser().resolve() if out else sweep_dir)
    written.folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(jobs, written.results_csv)
    md_path = write_markdown(sweep_dir, jobs, groups, written.results_md, tables)
    write_vs_best_json(jobs, written.vs_best)  # every paired comparison with all its numbers
    if held_out_sources(jobs):
        from fracture_lit.results.cross_dataset import write_json_report  # torch: only then

        write_json_report(jobs, written.cross_dataset)
    insight = load_insight(sweep_dir)  # None unless the sweep is an Optuna search
    best_config = write_best_config(insight) if insight is not None else None
    card_path = write_sweep_card(sweep_dir, jobs, written.model_card)  # and every job's card
    html_path = None
    if html:
        # Imported here: matplotlib is only needed for the page, not for the tables.
        from fracture_lit.results.html_search import search_sections
        from fracture_lit.results.html_sweep import write_sweep_report_html

        html_path = write_sweep_report_html(
            sweep_dir,
            written.report,
            jobs=jobs,
            tables=tables,
            search=search_sections(insight, best_config),
        )
    if show:
        if console is None:
            from rich.console import Console

            console = Console()
        print_sweep(tables, jobs, sweep_dir, console)
        failed = [j for j in jobs if is_failed(j)]
        if failed:
            console.print(
                f"[red]{len(failed)} of {len(jobs)} jobs failed[/red]: "
                + ", ".join(str(j.num) for j in failed)
            )
        console.print(f"Wrote {csv_path}\nWrote {md_path}\nWrote {card_path}", highlight=False)
        if best_config is not None:
            console.print(f"Wrote {best_config} (the best trial, ready to run)", highlight=False)
        if html_path is not None:
            console.print(
                f"Wrote {html_path} (and report.html in each of the {len(jobs)} job folders)",
                highlight=False,
            )
    return ReportPaths(csv=csv_path, markdown=md_path, jobs=jobs, html=html_path, card=card_path)
