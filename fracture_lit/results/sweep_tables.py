"""Every table of a sweep report, built once: :mod:`.console`, :mod:`.files` (results.md)
and :mod:`.html_sweep` only render them.

The tables themselves are :mod:`.table`'s; a leave-one-dataset-out sweep adds
:mod:`.cross_dataset`'s, which build on :mod:`.table` too (so this module, above both).
"""

from __future__ import annotations

from collections.abc import Sequence

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult
from fracture_lit.results.table import (
    RepeatGroup,
    Table,
    group_table,
    jobs_table,
    shared_overrides,
    stage_table,
)
from fracture_lit.stats.splits import EXTERNAL_SPLIT, STAGES

__all__ = ["held_out_sources", "sweep_tables"]


def held_out_sources(jobs: Sequence[JobResult]) -> bool:
    """Whether a job tested a held-out source (leave-one-dataset-out: its external block)."""
    return any(RunLayout(j.folder).scored(EXTERNAL_SPLIT).is_file() for j in jobs)


def sweep_tables(jobs: Sequence[JobResult], groups: Sequence[RepeatGroup]) -> list[Table]:
    """The report's tables: jobs, one per stage, then mean ± sd per seed / fold group."""
    shared = shared_overrides(jobs)
    tables = [jobs_table(jobs, shared)]
    tables += [stage_table(jobs, s) for s in STAGES if any(s in j.metrics for j in jobs)]
    if held_out_sources(jobs):
        # Imported here: a leave-one-dataset-out sweep's tables bootstrap (torch).
        from fracture_lit.results.cross_dataset import cross_dataset_tables

        tables += cross_dataset_tables(jobs)
    for kind in ("seed", "fold"):
        members = [g for g in groups if g.kind == kind]
        for stage in STAGES if members else ():
            table = group_table(members, stage, shared, kind)
            if table is not None:
                tables.append(table)
    return tables
