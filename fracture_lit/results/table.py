"""The table model: what the sweep report shows, as plain cells.

:mod:`.sweep_tables` puts these tables together for a sweep report; :mod:`.console`,
:mod:`.files` (results.md) and :mod:`.html_sweep` only render them. Metric columns come
from :mod:`.catalogue` (``sweep=True`` entries); a column that is not a metric (a
comparison with the best job, say) is one :class:`JobColumn` in :data:`JOB_COLUMNS`, and
it then shows in results.md, results.csv, the HTML sweep page and on the console.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fracture_lit.results.folders import REPEAT_OVERRIDES, JobResult
from fracture_lit.results.localization_columns import (
    localization_note,
    localization_values,
    localization_vs_best_values,
)
from fracture_lit.results.vs_best import vs_best_note, vs_best_values
from fracture_lit.stats.catalogue import format_interval as interval_cell
from fracture_lit.stats.catalogue import format_value, sweep_metrics
from fracture_lit.utils.disk_budget import human
from fracture_lit.utils.job_folder import FINISHED_STATUSES

__all__ = [
    "JOB_COLUMNS",
    "JobColumn",
    "RepeatGroup",
    "Table",
    "duration",
    "group_table",
    "interval_cell",
    "is_failed",
    "jobs_table",
    "repeat_groups",
    "seed_groups",
    "shared_overrides",
    "stage_table",
    "status_badge",
    "status_cell",
    "sweep_summary",
]

#: Statuses of jobs that have not ended: queued, or trained by a live process now.
LIVE_STATUSES = ("pending", "running")

STAGE_TITLES = {
    "val": "Validation, best checkpoint (95% bootstrap CI)",
    "test": "Test (95% bootstrap CI)",
}
_STAGE_NAMES = {"val": "Validation", "test": "Test"}
_MD_ERROR_CHARS = 160


@dataclass
class Table:
    """Headers and rows of plain text; ``right`` are the numeric (right-aligned) columns."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    right: set[int]
    #: Console headers (narrower), one per header; the headers themselves when empty.
    short: list[str] = field(default_factory=list)
    #: A sentence under the table (how to read it).
    note: str = ""

    def console_headers(self) -> list[str]:
        return self.short if len(self.short) == len(self.headers) else self.headers


@dataclass(frozen=True)
class JobColumn:
    """A column of the per-job stage tables and of results.csv that is not a metric.

    ``values(jobs, stage)`` returns one raw value per job (``None``: empty cell), or None
    when the column has nothing to say for that stage (it is then left out of the table).
    ``cell`` turns a raw value into the table's text; results.csv gets the raw value under
    ``<stage>_<name>``.
    """

    name: str
    title: str
    short: str
    values: Callable[[Sequence[JobResult], str], list[Any] | None]
    cell: Callable[[Any], str] = str
    #: Sentences under the stage table that explain the column ("" for none).
    note: Callable[[Sequence[JobResult], str], str] | None = None


#: Extra per-job columns, after the metric columns, in this order.
JOB_COLUMNS: tuple[JobColumn, ...] = (
    JobColumn("vs_best", "vs best", "vs best", vs_best_values, note=vs_best_note),
    # Grad-CAM vs annotated regions (data.regions): shown when a job has them.
    JobColumn("localization", "localization (pointing game)", "pointing", localization_values,
              note=localization_note),
    JobColumn("localization_vs_best", "localization vs best", "pointing vs best",
              localization_vs_best_values),
)  # fmt: skip


# ----------------------------------------------------------------------------- repeats
@dataclass
class RepeatGroup:
    """Jobs whose overrides differ only in ``seed=`` (kind ``seed``) or ``data.fold=``."""

    key: tuple[str, ...]
    jobs: list[JobResult]
    kind: str = "seed"

    @property
    def done(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status == "done"]

    @property
    def seeds(self) -> list[str]:
        return [j.seed if j.seed is not None else "?" for j in self.jobs]

    @property
    def labels(self) -> list[str]:
        """The value of the varying override per job (the seed or the fold)."""
        if self.kind == "seed":
            return self.seeds
        pattern = REPEAT_OVERRIDES[self.kind]
        return [
            next((m["value"] for o in j.overrides if (m := pattern.match(o))), "?")
            for j in self.jobs
        ]

    def values(self, key: str, stage: str = "test") -> list[float]:
        points = (j.point(stage, key) for j in self.done)
        return [p for p in points if p is not None and not math.isnan(p)]

    def mean_sd(self, key: str, stage: str = "test") -> tuple[float | None, float | None]:
        """Mean and sample sd (n-1) over the repeats; sd is None below two values."""
        values = self.values(key, stage)
        if not values:
            return None, None
        sd = statistics.stdev(values) if len(values) > 1 else None
        return statistics.fmean(values), sd

    def paper(self, stage: str, key: str) -> float | None:
        for job in self.jobs:
            if key in job.paper.get(stage, {}):
                return job.paper[stage][key]
        return None


#: Kept under its first name: seed repeats were the only groups before folds.
SeedGroup = RepeatGroup


def _groups(jobs: Iterable[JobResult], kind: str) -> list[RepeatGroup]:
    groups: dict[tuple[str, ...], list[JobResult]] = {}
    for job in jobs:
        if job.repeats(kind):
            groups.setdefault(job.repeat_key(kind), []).append(job)
    return [RepeatGroup(key, members, kind) for key, members in groups.items() if len(members) > 1]


def seed_groups(jobs: Iterable[JobResult]) -> list[RepeatGroup]:
    """Groups of two or more jobs whose overrides differ only in ``seed=``."""
    return _groups(jobs, "seed")


def repeat_groups(jobs: Sequence[JobResult]) -> list[RepeatGroup]:
    """Seed groups, then groups of jobs differing only in ``data.fold=`` (k-fold CV)."""
    return _groups(jobs, "seed") + _groups(jobs, "fold")


# ----------------------------------------------------------------------------- cells
def shared_overrides(jobs: Sequence[JobResult]) -> list[str]:
    """Overrides every job has (printed once above the tables instead of in every row)."""
    if len(jobs) < 2:
        return []
    shared = set(jobs[0].overrides)
    for job in jobs[1:]:
        shared &= set(job.overrides)
    return [o for o in jobs[0].overrides if o in shared]


def own_overrides(overrides: Sequence[str], shared: Sequence[str]) -> str:
    own = [o for o in overrides if o not in shared]
    return " ".join(own) if own else "(shared only)"


def paper_cell(value: float | None) -> str:
    return "-" if value is None else f"paper {round(value, 4):g}"


def mean_sd_cell(mean: float | None, sd: float | None, digits: int = 3) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {format_value(sd, digits)}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def is_failed(job: JobResult) -> bool:
    """Neither finished (done, or pruned on purpose by a search) nor queued or running."""
    return job.status not in FINISHED_STATUSES and job.status not in LIVE_STATUSES


def status_badge(status: str) -> str:
    """The badge (CSS class) a status is shown with: done, pruned, live or failed."""
    if status in FINISHED_STATUSES:
        return status
    return "live" if status in LIVE_STATUSES else "failed"


def disk_cell(n: int | None) -> str:
    return "-" if n is None else human(n)


def sweep_summary(jobs: Sequence[JobResult]) -> str:
    """``4 jobs: 1 done, 1 pruned, 1 running, 1 failed. 412.3 MB on disk`` (pruned and live
    counts when any; pruned trials stopped on purpose, they did not fail)."""
    counts = [f"{sum(j.status == 'done' for j in jobs)} done"]
    others = [s for s in FINISHED_STATUSES if s != "done"] + list(LIVE_STATUSES)
    counts += [f"{n} {s}" for s in others if (n := sum(j.status == s for j in jobs))]
    counts.append(f"{sum(is_failed(j) for j in jobs)} failed")
    disk = sum(j.disk_bytes or 0 for j in jobs)
    return f"{len(jobs)} jobs: {', '.join(counts)}. {human(disk)} on disk"


def status_cell(job: JobResult, limit: int | None = _MD_ERROR_CHARS) -> str:
    if job.status == "pruned" and job.epochs is not None:
        return f"pruned after {job.epochs} epoch{'s' if job.epochs != 1 else ''}"
    if job.status == "done" or not job.error:
        return job.status
    error = job.error if limit is None or len(job.error) <= limit else job.error[:limit] + "…"
    return f"{job.status}: {error}"


def papers_line(jobs: Sequence[JobResult]) -> list[str]:
    """``id · title`` of every paper the jobs reproduce, once each."""
    seen: dict[str, str] = {}
    for j in jobs:
        if j.paper_id or j.paper_title:
            key = j.paper_id or j.paper_title or ""
            seen.setdefault(key, " · ".join(x for x in (j.paper_id, j.paper_title) if x))
    return list(seen.values())


# ----------------------------------------------------------------------------- tables
def jobs_table(jobs: Sequence[JobResult], shared: Sequence[str]) -> Table:
    rows = [
        [
            str(j.num),
            own_overrides(j.overrides, shared),
            status_cell(j),
            "-" if j.epochs is None else str(j.epochs),
            duration(j.wall_time_s),
            disk_cell(j.disk_bytes),
        ]
        for j in jobs
    ]
    headers = ["job", "overrides", "status", "epochs", "wall time", "disk"]
    return Table("Jobs", headers, rows, {0, 3, 4, 5})


def stage_table(jobs: Sequence[JobResult], stage: str) -> Table:
    metrics = sweep_metrics()
    with_paper = {m.key for m in metrics if any(m.key in j.paper.get(stage, {}) for j in jobs)}
    headers, short, right = ["job", "backbone", "n"], ["job", "backbone", "n"], {0, 2}
    for m in metrics:
        right.add(len(headers))
        headers.append(m.title)
        short.append(m.short)
        if m.key in with_paper:
            headers.append("paper")
            short.append("paper")
    extras = [(c, v) for c in JOB_COLUMNS if (v := c.values(jobs, stage)) is not None]
    for column, _ in extras:
        right.add(len(headers))
        headers.append(column.title)
        short.append(column.short)
    rows = []
    for i, j in enumerate(jobs):
        row = [str(j.num), j.backbone or "-", str(j.n.get(stage, "-"))]
        for m in metrics:
            row.append(interval_cell(j.metrics.get(stage, {}).get(m.key), m.digits))
            if m.key in with_paper:
                row.append(paper_cell(j.paper.get(stage, {}).get(m.key)))
        for column, values in extras:
            row.append("-" if values[i] is None else column.cell(values[i]))
        rows.append(row)
    notes = [c.note(jobs, stage) for c, _ in extras if c.note is not None]
    return Table(STAGE_TITLES[stage], headers, rows, right, short, " ".join(n for n in notes if n))


def group_table(
    groups: Sequence[RepeatGroup], stage: str, shared: Sequence[str], kind: str
) -> Table | None:
    metrics = sweep_metrics()
    if not any(g.values(m.key, stage) for g in groups for m in metrics):
        return None
    with_paper = {m.key for m in metrics if any(g.paper(stage, m.key) is not None for g in groups)}
    plural = f"{kind}s"
    headers = ["jobs", "overrides", plural, f"n {plural}"]
    short = list(headers)
    right = {3}
    for m in metrics:
        right.add(len(headers))
        headers.append(m.title)
        short.append(m.short)
        if m.key in with_paper:
            headers.append("paper")
            short.append("paper")
    pooled = None
    if kind == "fold" and stage == "val":
        # Imported here: the pooled bootstrap needs torch, which a sweep report without
        # k-fold jobs never loads (the report runs in the launching process).
        from fracture_lit.results.pooled import pooled_auroc

        pooled = [pooled_auroc(g.done, stage) for g in groups]
        right.add(len(headers))
        headers.append("pooled out-of-fold AUROC")
        short.append("pooled AUROC")
    rows = []
    for i, g in enumerate(groups):
        failed = len(g.jobs) - len(g.done)
        row = [
            ", ".join(str(j.num) for j in g.jobs),
            own_overrides(list(g.key), shared),
            ", ".join(g.labels),
            f"{len(g.done)}" + (f" ({failed} failed)" if failed else ""),
        ]
        for m in metrics:
            row.append(mean_sd_cell(*g.mean_sd(m.key, stage), m.digits))
            if m.key in with_paper:
                row.append(paper_cell(g.paper(stage, m.key)))
        if pooled is not None:
            result = pooled[i]
            row.append(result.cell() if result else "-")
        rows.append(row)
    note = ""
    if pooled is not None:
        note = (
            "Pooled out-of-fold AUROC: every fold's held-out (validation) predictions "
            "scored as one set, 95% bootstrap CI over images. The checkpoint was chosen on "
            "the same fold, so it leans optimistic; the test rows are the unbiased numbers."
        )
    title = f"{_STAGE_NAMES[stage]}: mean ± sd over {plural}"
    return Table(title, headers, rows, right, short, note)
