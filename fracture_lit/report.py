"""Reports: ``python -m fracture_lit.report <sweep or run folder> [--out DIR] [--no-html]``.

A sweep folder gets ``results.csv``, ``results.md`` and ``report.html`` (and one
``report.html`` in every job folder) plus the tables on the console
(:func:`fracture_lit.results.sweep_report.write_report`); a run, evaluation or sweep-job
folder (one that holds ``metrics.json``) gets its ``report.html``
(:func:`fracture_lit.results.html_run.write_run_report`), through
:func:`fracture_lit.tasks.reporting.report_folder`. It only reads files, so it stays fast:
torch and lightning are never imported. A sweep with failed jobs is still reported (exit 0);
only a folder that does not exist or holds no job folder is an error (exit 2).

:class:`fracture_lit.sweeps.callbacks.WriteSweepReport` writes the same report at the end
of every sweep, so ``python -m fracture_lit.train -m ...`` ends with the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fracture_lit.tasks.reporting import ReportError, report_folder

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_lit.report",
        description="Report on a sweep or a single run. A sweep folder gets one row per job "
        "(status, metrics with 95% intervals, the paper's numbers) and mean ± sd over seeds "
        "or folds in results.csv and results.md, plus a self-contained report.html (and one "
        "in each job folder). A run, evaluation or sweep-job folder (it holds metrics.json) "
        "gets its report.html. The HTML embeds its images and loads nothing: open it "
        "offline in any browser.",
    )
    parser.add_argument(
        "folder",
        type=Path,
        help="a sweep (multirun_outputs/<date>/<time>_<id>), a run "
        "(outputs/<date>/<time>_<id>), a sweep's job folder (.../<num>) or an eval folder",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the files into this folder instead of the one reported on",
    )
    parser.add_argument(
        "--no-html",
        dest="html",
        action="store_false",
        help="skip report.html (a sweep then gets results.csv and results.md only)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 once the report is written (failed jobs included), 2 when there is nothing."""
    args = _parser().parse_args(argv)
    try:
        report_folder(args.folder.expanduser(), args.out, args.html)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
