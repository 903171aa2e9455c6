"""Console renderers (rich): a run's end-of-run tables and a sweep's tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.results.folders import JobResult
from fracture_lit.results.localization import localization_tables
from fracture_lit.results.table import Table, shared_overrides, sweep_summary
from fracture_lit.stats.catalogue import CATALOGUE
from fracture_lit.stats.splits import REPORT_STAGES as _RUN_STAGES

__all__ = ["metrics_table", "print_summary", "print_sweep", "print_tables"]

#: Columns the console never wraps.
_NO_WRAP = {"job", "backbone", "n", "n seeds", "n folds"}


def _ci(summary: dict[str, Any], key: str, which: str = "ci95") -> str:
    interval = summary.get(which, {}).get(key)
    return f" [{interval[1]:.3f}, {interval[2]:.3f}]" if interval else ""


def metrics_table(results: dict[str, Any], title: str) -> Any:
    """Validation (best checkpoint) beside test (or an evaluation), with 95% intervals."""
    from rich.table import Table as RichTable

    table = RichTable(title=title, title_style="bold")
    table.add_column("metric")
    stages = [s for s in _RUN_STAGES if s in results]
    labels = {
        "val": "validation, best ckpt (95% CI)",
        "test": "test (95% CI)",
        "external": "external: held-out source (95% CI)",
        "eval": f"{results.get('split', 'eval')} at threshold "
        f"{results.get('threshold', 0.5):.3f} (95% CI)",
    }
    for stage in stages:
        table.add_column(labels[stage], justify="right")
    for metric in CATALOGUE:
        cells = []
        for stage in stages:
            value = results[stage].get("metrics", {}).get(f"{stage}/{metric.key}")
            cells.append(metric.fmt(value, extra_digits=1) + _ci(results[stage], metric.key))
        if any(cell != "-" for cell in cells):  # eval has no loss: no empty row for it
            table.add_row(metric.label, *cells)
    val = results.get("val", {}).get("metrics", {})
    if "val/youden_threshold" in val:
        cells = [
            f"{val['val/youden_threshold']:.3f} (sens {val['val/youden_sensitivity']:.3f}, "
            f"spec {val['val/youden_specificity']:.3f})"
        ]
        test = results.get("test", {}).get("metrics", {})
        if "test/recall_at_thr" in test:
            summary = results["test"]
            cells.append(
                f"sens {test['test/recall_at_thr']:.3f}{_ci(summary, 'recall', 'ci95_at_thr')}, "
                f"spec {test['test/specificity_at_thr']:.3f}"
                f"{_ci(summary, 'specificity', 'ci95_at_thr')}"
            )
        table.add_row("Youden threshold (from val)", *cells[: len(stages)])
    return table


def print_summary(results: dict[str, Any], title: str, console: Any | None = None) -> None:
    """Print :func:`metrics_table` (the last thing a train or eval run shows), then the
    localization tables of a run scored against annotated regions."""
    from rich.console import Console

    console = console or Console()
    console.print(metrics_table(results, title))
    print_tables(localization_tables(results, console=True), console)


def _rich_table(spec: Table) -> Any:
    from rich.markup import escape
    from rich.table import Table as RichTable

    table = RichTable(title=spec.title, title_style="bold")
    for i, header in enumerate(spec.console_headers()):
        table.add_column(
            header,
            justify="right" if i in spec.right else "left",
            no_wrap=header in _NO_WRAP,
        )
    for row in spec.rows:
        cells = [escape(c) for c in row]
        table.add_row(*(f"[red]{c}[/red]" if c.startswith("failed") else c for c in cells))
    return table


def print_tables(tables: Sequence[Table], console: Any) -> None:
    """Tables of the table model with rich, each with its note (how to read it) below."""
    from rich.markup import escape

    for spec in tables:
        console.print(_rich_table(spec))
        if spec.note:
            console.print(f"[dim]{escape(spec.note)}[/dim]", highlight=False)


def print_sweep(
    tables: Sequence[Table], jobs: Sequence[JobResult], sweep_dir: Path, console: Any
) -> None:
    """The sweep's tables with rich (shorter metric headers: consoles are narrow)."""
    from rich.markup import escape

    console.print(
        f"[bold]Sweep report[/bold] {escape(str(sweep_dir))}: {escape(sweep_summary(jobs))}",
        highlight=False,
    )
    shared = shared_overrides(jobs)
    if shared:
        console.print(f"[dim]shared overrides: {escape(' '.join(shared))}[/dim]", highlight=False)
    print_tables(tables, console)
