"""Report on a folder: a sweep gets its tables, pages and model cards, a run (or eval, or
job) its page and model card.

Only files are read: torch and Lightning are never imported, so a report is quick.
"""

from __future__ import annotations

from pathlib import Path

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import ReportError, is_run_folder
from fracture_lit.results.html_run import write_run_report
from fracture_lit.results.model_card import write_model_card
from fracture_lit.results.sweep_report import write_report

__all__ = ["ReportError", "report_folder"]


def report_folder(folder: Path, out: Path | None = None, html: bool = True) -> None:
    """Write the reports ``folder`` calls for (into ``out`` when given) and say where.

    Raises :class:`~fracture_lit.results.folders.ReportError` when there is nothing to
    report on (no such folder, no job folder, a run folder with ``html=False``).
    """
    if is_run_folder(folder):
        if not html:
            raise ReportError(f"{folder} is a run folder: --no-html leaves nothing to write")
        target = RunLayout(out) if out else None
        print(f"Wrote {write_run_report(folder, target.report if target else None)}")
        print(f"Wrote {write_model_card(folder, target.model_card if target else None)}")
    else:
        write_report(folder, out=out, html=html)
