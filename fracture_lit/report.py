"""Reports: ``python -m fracture_lit.report <sweep or run folder> [--out DIR] [--no-html]``.

Every job of a sweep writes its own ``metrics.json`` (see :func:`fracture_lit.train.run`);
comparing twelve jobs means opening twelve files. This module reads every numbered job
folder of a sweep and writes

* ``results.csv``: one row per job, with point / low / high columns for every metric, so
  the sweep can be plotted or compared without re-parsing the json;
* ``results.md``: the same jobs as readable tables (95% bootstrap intervals, the paper's
  reported number beside each metric when the job's config carries a ``paper:`` block) and,
  when jobs differ only in ``seed=``, a "mean ± sd over seeds" table;

* ``report.html``: one self-contained page (tables, comparison chart, each job's confusion
  matrices, learning curves and Grad-CAM gallery; :mod:`fracture_lit.review.html`), plus a
  ``report.html`` in every job folder, linked from it. Images are embedded and nothing is
  loaded from the network, so it can be opened offline and patient images stay local;

and prints the tables on the console. Given a run, evaluation or sweep-job folder (one that
holds ``metrics.json``) instead, it writes that folder's ``report.html`` only. It only reads
files, so it stays fast: torch and lightning are never imported. A sweep with failed jobs
is still reported (exit 0); only a folder that does not exist or holds no job folder is an
error (exit 2).

:class:`fracture_lit.utils.hydra_callbacks.WriteSweepReport` runs it at the end of every
sweep, so ``python -m fracture_lit.train -m ...`` ends with the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_lit.errors import UserError

__all__ = [
    "METRICS",
    "NO_METRICS_ERROR",
    "STAGES",
    "JobResult",
    "ReportError",
    "ReportPaths",
    "SeedGroup",
    "csv_columns",
    "find_job_dirs",
    "is_run_folder",
    "load_job",
    "load_jobs",
    "main",
    "markdown_report",
    "seed_groups",
    "write_report",
]

#: Reported metrics, in column order: (column name, label, key in metrics.json / ci95).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("acc", "accuracy", "acc"),
    ("sensitivity", "sensitivity", "recall"),
    ("specificity", "specificity", "specificity"),
    ("f1", "F1", "f1"),
    ("auroc", "AUROC", "auroc"),
    ("kappa", "kappa", "kappa"),
)
STAGES: tuple[str, ...] = ("val", "test")
STAGE_TITLES = {
    "val": "Validation, best checkpoint (95% bootstrap CI)",
    "test": "Test (95% bootstrap CI)",
}

#: The error of a job folder without metrics.json: train.run() writes it even when the job
#: raises, so its absence means the process died (killed, out of memory, node lost).
NO_METRICS_ERROR = "no metrics.json (job killed or crashed before finishing)"

# Names papers and presets use for the same metric, normalised (lower case, "_" for "-").
_METRIC_ALIASES: dict[str, str] = {
    alias: column
    for column, aliases in {
        "acc": ("acc", "accuracy"),
        "sensitivity": ("sensitivity", "recall", "sens", "tpr"),
        "specificity": ("specificity", "spec", "tnr"),
        "f1": ("f1", "f1_score", "f1score", "f_score"),
        "auroc": ("auroc", "auc", "roc_auc", "auc_roc"),
        "kappa": ("kappa", "cohen_kappa", "cohens_kappa"),
    }.items()
    for alias in aliases
}
_SEED_OVERRIDE = re.compile(r"^\+{0,2}seed=(?P<value>.*)$")
# Splits an override_dirname ("a=1,b=x,y,c=2") at the commas that start a new key.
_OVERRIDE_SPLIT = re.compile(r",(?=[~+]*[\w.@/-]+=)")
_MD_ERROR_CHARS = 160

Interval = tuple[float | None, float | None, float | None]


class ReportError(UserError):
    """The folder cannot be reported on (missing, or no job folder): the CLI exits 2."""


@dataclass
class JobResult:
    """What one job folder says about its job, whatever state the job ended in."""

    num: int
    folder: Path
    overrides: list[str]
    status: str
    error: str = ""
    backbone: str | None = None
    seed: str | None = None
    epochs: int | None = None
    wall_time_s: float | None = None
    stopped_early: bool | None = None
    best_model_path: str | None = None
    #: stage -> metric column -> (point, low, high); missing values are None.
    metrics: dict[str, dict[str, Interval]] = field(default_factory=dict)
    #: stage -> n evaluated samples.
    n: dict[str, int] = field(default_factory=dict)
    #: stage -> metric column -> the paper's reported value (a fraction, not a percentage).
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    paper_id: str | None = None
    paper_title: str | None = None

    @property
    def group_key(self) -> tuple[str, ...]:
        """The overrides without ``seed=``: jobs sharing it are repeats of one config."""
        return tuple(sorted(o for o in self.overrides if not _SEED_OVERRIDE.match(o)))

    @property
    def repeats_a_seed(self) -> bool:
        """Whether the sweep set this job's seed (only such jobs are averaged over seeds)."""
        return any(_SEED_OVERRIDE.match(o) for o in self.overrides)

    def point(self, stage: str, column: str) -> float | None:
        return self.metrics.get(stage, {}).get(column, (None, None, None))[0]


@dataclass
class SeedGroup:
    """Jobs whose overrides differ only in ``seed=``: mean ± sd of their metrics per stage."""

    key: tuple[str, ...]
    jobs: list[JobResult]

    @property
    def done(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status == "done"]

    @property
    def seeds(self) -> list[str]:
        return [j.seed if j.seed is not None else "?" for j in self.jobs]

    def values(self, column: str, stage: str = "test") -> list[float]:
        points = (j.point(stage, column) for j in self.done)
        return [p for p in points if p is not None and not math.isnan(p)]

    def mean_sd(self, column: str, stage: str = "test") -> tuple[float | None, float | None]:
        """Mean and sample sd (n-1) over seeds; sd is None below two values."""
        values = self.values(column, stage)
        if not values:
            return None, None
        sd = statistics.stdev(values) if len(values) > 1 else None
        return statistics.fmean(values), sd

    def paper(self, stage: str, column: str) -> float | None:
        for job in self.jobs:
            if column in job.paper.get(stage, {}):
                return job.paper[stage][column]
        return None


@dataclass
class ReportPaths:
    """What :func:`write_report` wrote and read."""

    csv: Path
    markdown: Path
    jobs: list[JobResult]
    #: The sweep's report.html (None with ``html=False``); each job folder has its own.
    html: Path | None = None


# ----------------------------------------------------------------------------- reading
def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's numbered job folders (``0``, ``1``, ... ``10``), in numeric order."""
    return sorted(
        (p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )


def _read_yaml(path: Path) -> Any:
    import yaml  # PyYAML ships with Hydra/OmegaConf; imported here to keep startup light

    try:
        with path.open() as stream:
            return yaml.safe_load(stream)
    except (OSError, yaml.YAMLError):
        return None


def _read_overrides(job_dir: Path, summary: dict[str, Any]) -> list[str]:
    """The job's overrides: ``.hydra/overrides.yaml`` (exact), else metrics.json's ``job``."""
    listed = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    if isinstance(listed, list):
        return [str(o) for o in listed]
    job = summary.get("job")
    if isinstance(job, str) and "=" in job:
        return _OVERRIDE_SPLIT.split(job)
    return []


def _read_config(job_dir: Path) -> dict[str, Any]:
    """The resolved config (written once the trainer exists), else Hydra's composed one.

    A job that failed while building its model has no resolved ``config.yaml`` yet; the
    ``.hydra`` copy still names its backbone and carries the ``paper`` block.
    """
    for path in (job_dir / "config.yaml", job_dir / ".hydra" / "config.yaml"):
        cfg = _read_yaml(path)
        if isinstance(cfg, dict):
            return cfg
    return {}


def _hydra_choices(job_dir: Path) -> dict[str, Any]:
    hydra_cfg = _read_yaml(job_dir / ".hydra" / "hydra.yaml")
    try:
        choices = hydra_cfg["hydra"]["runtime"]["choices"]
    except (TypeError, KeyError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _last_line(path: Path, pattern: re.Pattern[str] | None = None) -> str | None:
    """The last non-empty line of a text file (matching ``pattern`` when given)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.strip() and (pattern is None or pattern.search(line)):
            return line.strip()
    return None


_ERROR_LEVEL = re.compile(r"\]\[(ERROR|CRITICAL)\]|\b(ERROR|CRITICAL)\b")


def _crash_hint(job_dir: Path, num: int) -> str | None:
    """Best effort at why a job left no metrics.json: the last line of its error log.

    Looked for, in order: ``*.err`` files in the job folder; the submitit logs of this job
    (``<sweep>/.submitit/<array id>_<num>/*_log.err``, the layout of Hydra's submitit
    launcher); the job's own Hydra log (``<job folder>/*.log``, last ERROR line, else its
    last line: where the job was when it died).
    """
    candidates = sorted(job_dir.glob("*.err"), key=lambda p: p.stat().st_mtime)
    submitit = job_dir.parent / ".submitit"
    if submitit.is_dir():
        folders = [p for p in submitit.iterdir() if p.is_dir() and p.name.endswith(f"_{num}")]
        for folder in folders:
            candidates += sorted(folder.glob("*_log.err"), key=lambda p: p.stat().st_mtime)
    for path in reversed(candidates):
        line = _last_line(path)
        if line:
            return line
    for log in sorted(job_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        line = _last_line(log, _ERROR_LEVEL) or _last_line(log)
        if line:
            return line
    return None


_CHAIN = re.compile(
    r"\n\s*(?:The above exception was the direct cause of the following exception:"
    r"|During handling of the above exception, another exception occurred:)\s*\n"
)
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Za-z_]\w*(?::|$))")


def _exception_line(block: str) -> str | None:
    """The ``Type: message`` line of one traceback block, without the module path."""
    for line in block.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith("Traceback ("):
            return _QUALIFIED.sub("", line.strip())
    return None


def _error_text(summary: dict[str, Any]) -> str:
    """The job's error line; for a wrapper whose own line says nothing, its cause's.

    train.run() records the first line of the error. For hydra's InstantiationException that
    line is only "Error in call to target '...':"; the cause (an unknown backbone, a missing
    folder) is the first exception of the recorded traceback, which is what a reader needs.
    """
    error = str(summary.get("error") or "").strip()
    first = error.splitlines()[0] if error else ""
    tb = summary.get("traceback")
    if isinstance(tb, str) and (not first or first.endswith(":")):
        blocks = _CHAIN.split(tb)
        if len(blocks) > 1:
            cause = _exception_line(blocks[-2])
            if cause:
                return cause
        last = _exception_line(blocks[-1])
        if last and not first:
            return last
    return first


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _stage_metrics(summary: dict[str, Any], stage: str) -> dict[str, Interval]:
    """``{column: (point, low, high)}`` from one stage of metrics.json."""
    block = summary.get(stage)
    if not isinstance(block, dict):
        return {}
    values = block.get("metrics") or {}
    ci95 = block.get("ci95") or {}
    out: dict[str, Interval] = {}
    for column, _, key in METRICS:
        point = _float(values.get(f"{stage}/{key}"))
        interval = ci95.get(key)
        low = high = None
        if isinstance(interval, list | tuple) and len(interval) == 3:
            low, high = _float(interval[1]), _float(interval[2])
            if point is None:
                point = _float(interval[0])
        if point is not None or low is not None:
            out[column] = (point, low, high)
    return out


def _norm(name: Any) -> str:
    return str(name).strip().lower().replace("-", "_")


def _pick_reported(reported: dict[str, Any], candidates: Sequence[str | None]) -> Any:
    """The paper's entry for this job: keyed by backbone / variant, else default / single."""
    if not reported:
        return None
    if all(not isinstance(v, dict) for v in reported.values()):
        return reported  # flat {"test/acc": 0.97}: one model in the paper
    by_norm = {_norm(k): v for k, v in reported.items()}
    # An unresolved ``${...}`` (the .hydra copy of a failed job's config) names nothing.
    wanted = [_norm(c) for c in candidates if c and "${" not in str(c)]
    for name in wanted:
        if name in by_norm:
            return by_norm[name]
    for name in wanted:  # "tf_efficientnet_b3" vs "efficientnet_b3": one containing the other
        close = [v for k, v in by_norm.items() if k in name or name in k]
        if len(close) == 1:
            return close[0]
    if "default" in by_norm:
        return by_norm["default"]
    if len(reported) == 1:
        return next(iter(reported.values()))
    return None


def _paper_numbers(entry: Any) -> dict[str, dict[str, float]]:
    """``{stage: {column: value}}`` from ``{"test/acc": 0.9759, "sensitivity": 97.1, ...}``.

    Unprefixed names are test numbers (what papers report). Percentages (> 1) are turned
    into fractions so they sit beside the job's own values.
    """
    out: dict[str, dict[str, float]] = {}
    if not isinstance(entry, dict):
        return out
    for name, raw in entry.items():
        stage, _, metric = _norm(name).rpartition("/")
        stage = stage or "test"
        column = _METRIC_ALIASES.get(metric)
        value = _float(raw)
        if column is None or value is None or stage not in STAGES:
            continue
        out.setdefault(stage, {})[column] = value / 100 if abs(value) > 1 else value
    return out


@dataclass
class JobPaper:
    """The paper a job's experiment preset reproduces, and its numbers for this job."""

    paper_id: str | None = None
    title: str | None = None
    numbers: dict[str, dict[str, float]] = field(default_factory=dict)


def _paper(cfg: dict[str, Any], backbone: str | None, choices: dict[str, Any]) -> JobPaper:
    paper = cfg.get("paper")
    if not isinstance(paper, dict):
        return JobPaper()
    reported = paper.get("reported")
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    candidates = [
        paper.get("model"),  # presets name the job's key: ${hydra:runtime.choices.model}
        paper.get("variant"),
        backbone,
        model_cfg.get("backbone"),
        cfg.get("variant"),
        choices.get("model"),
        choices.get("experiment"),
    ]
    entry = _pick_reported(reported, candidates) if isinstance(reported, dict) else None
    title = paper.get("title")
    return JobPaper(
        paper_id=str(paper["id"]) if paper.get("id") is not None else None,
        title=str(title) if title else None,
        numbers=_paper_numbers(entry),
    )


def load_job(job_dir: Path) -> JobResult:
    """Read one job folder; never raises on a broken or half-written folder.

    A single run's folder (``<time>_<id>``, not numbered) reads the same way, as job 0.
    """
    job_dir = Path(job_dir)
    num = int(job_dir.name) if job_dir.name.isdigit() else 0
    summary: dict[str, Any] = {}
    metrics_file = job_dir / "metrics.json"
    error = ""
    if metrics_file.is_file():
        try:
            loaded = json.loads(metrics_file.read_text())
            summary = loaded if isinstance(loaded, dict) else {}
            status = str(summary.get("status") or "failed")
            if status != "done":
                error = _error_text(summary) or "failed (no error recorded)"
        except (OSError, ValueError) as exc:
            status, error = "failed", f"metrics.json unreadable: {exc}"
    else:
        status, error = "failed", NO_METRICS_ERROR
        hint = _crash_hint(job_dir, num)
        if hint:
            error = f"{error}; last log line: {hint}"
    cfg = _read_config(job_dir)
    overrides = _read_overrides(job_dir, summary)
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    backbone = summary.get("backbone") or model_cfg.get("backbone")
    seed = next((m["value"] for o in overrides if (m := _SEED_OVERRIDE.match(o))), None)
    if seed is None and cfg.get("seed") is not None:
        seed = str(cfg["seed"])
    paper = _paper(cfg, str(backbone) if backbone else None, _hydra_choices(job_dir))
    epochs = summary.get("epochs")
    return JobResult(
        num=num,
        folder=job_dir,
        overrides=overrides,
        status=status,
        error=error.splitlines()[0] if error else "",
        backbone=str(backbone) if backbone else None,
        seed=seed,
        epochs=int(epochs) if isinstance(epochs, int | float) else None,
        wall_time_s=_float(summary.get("wall_time_s")),
        stopped_early=summary.get("stopped_early"),
        best_model_path=summary.get("best_model_path"),
        metrics={s: m for s in STAGES if (m := _stage_metrics(summary, s))},
        n={
            s: int(summary[s]["n"])
            for s in STAGES
            if isinstance(summary.get(s), dict) and isinstance(summary[s].get("n"), int)
        },
        paper=paper.numbers,
        paper_id=paper.paper_id,
        paper_title=paper.title,
    )


def load_jobs(sweep_dir: Path) -> list[JobResult]:
    """Every job of the sweep, in job-number order; :class:`ReportError` when there is none."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir} is not a folder (expected a multirun sweep folder)")
    job_dirs = find_job_dirs(sweep_dir)
    if not job_dirs:
        below = sorted(
            {p.parent for p in sweep_dir.glob("**/[0-9]*/.hydra") if p.parent.name.isdigit()}
        )
        sweeps = sorted({str(p.parent) for p in below})[:10]
        hint = ("; sweep folders below it: " + ", ".join(sweeps)) if sweeps else ""
        raise ReportError(f"{sweep_dir} has no numbered job folders (0, 1, ...){hint}")
    return [load_job(d) for d in job_dirs]


def seed_groups(jobs: Iterable[JobResult]) -> list[SeedGroup]:
    """Groups of two or more jobs whose overrides differ only in ``seed=``."""
    groups: dict[tuple[str, ...], list[JobResult]] = {}
    for job in jobs:
        if not job.repeats_a_seed:
            continue
        groups.setdefault(job.group_key, []).append(job)
    return [SeedGroup(key, members) for key, members in groups.items() if len(members) > 1]


# ----------------------------------------------------------------------------- formatting
def _shared_overrides(jobs: Sequence[JobResult]) -> list[str]:
    """Overrides every job has (printed once above the tables instead of in every row)."""
    if len(jobs) < 2:
        return []
    shared = set(jobs[0].overrides)
    for job in jobs[1:]:
        shared &= set(job.overrides)
    return [o for o in jobs[0].overrides if o in shared]


def _own(overrides: Sequence[str], shared: Sequence[str]) -> str:
    own = [o for o in overrides if o not in shared]
    return " ".join(own) if own else "(shared only)"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _interval(value: Interval | None) -> str:
    if not value or value[0] is None:
        return "-"
    point, low, high = value
    if low is None or high is None:
        return _num(point)
    return f"{_num(point)} [{_num(low)}, {_num(high)}]"


def _paper_cell(value: float | None) -> str:
    return "-" if value is None else f"paper {round(value, 4):g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _status(job: JobResult, limit: int | None = _MD_ERROR_CHARS) -> str:
    if job.status == "done" or not job.error:
        return job.status
    error = job.error if limit is None or len(job.error) <= limit else job.error[:limit] + "…"
    return f"{job.status}: {error}"


@dataclass
class _Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    right: set[int]  # right-aligned (numeric) columns


def _tables(jobs: Sequence[JobResult], groups: Sequence[SeedGroup]) -> list[_Table]:
    """The report's tables as plain cells, rendered both as markdown and with rich."""
    shared = _shared_overrides(jobs)
    tables = [
        _Table(
            "Jobs",
            ["job", "overrides", "status", "epochs", "wall time"],
            [
                [
                    str(j.num),
                    _own(j.overrides, shared),
                    _status(j),
                    "-" if j.epochs is None else str(j.epochs),
                    _duration(j.wall_time_s),
                ]
                for j in jobs
            ],
            {0, 3, 4},
        )
    ]
    for stage in STAGES:
        if not any(stage in j.metrics for j in jobs):
            continue
        with_paper = {c for c, _, _ in METRICS if any(c in j.paper.get(stage, {}) for j in jobs)}
        headers, right = ["job", "backbone", "n"], {0, 2}
        for column, label, _ in METRICS:
            right.add(len(headers))
            headers.append(label)
            if column in with_paper:
                headers.append("paper")
        rows = []
        for j in jobs:
            row = [str(j.num), j.backbone or "-", str(j.n.get(stage, "-"))]
            for column, _, _ in METRICS:
                row.append(_interval(j.metrics.get(stage, {}).get(column)))
                if column in with_paper:
                    row.append(_paper_cell(j.paper.get(stage, {}).get(column)))
            rows.append(row)
        tables.append(_Table(STAGE_TITLES[stage], headers, rows, right))
    for stage in STAGES if groups else ():
        if not any(g.values(c, stage) for g in groups for c, _, _ in METRICS):
            continue
        with_paper = {
            c for c, _, _ in METRICS if any(g.paper(stage, c) is not None for g in groups)
        }
        headers = ["jobs", "overrides", "seeds", "n seeds"]
        right = {3}
        for column, label, _ in METRICS:
            right.add(len(headers))
            headers.append(label)
            if column in with_paper:
                headers.append("paper")
        rows = []
        for g in groups:
            failed = len(g.jobs) - len(g.done)
            row = [
                ", ".join(str(j.num) for j in g.jobs),
                _own(list(g.key), shared),
                ", ".join(g.seeds),
                f"{len(g.done)}" + (f" ({failed} failed)" if failed else ""),
            ]
            for column, _, _ in METRICS:
                mean, sd = g.mean_sd(column, stage)
                row.append("-" if mean is None else f"{mean:.3f} ± {_num(sd)}")
                if column in with_paper:
                    row.append(_paper_cell(g.paper(stage, column)))
            rows.append(row)
        title = "Test" if stage == "test" else "Validation"
        tables.append(_Table(f"{title}: mean ± sd over seeds", headers, rows, right))
    return tables


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(table: _Table) -> list[str]:
    align = ["---:" if i in table.right else "---" for i in range(len(table.headers))]
    lines = [
        f"## {table.title}",
        "",
        "| " + " | ".join(table.headers) + " |",
        "|" + "|".join(align) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def _papers(jobs: Sequence[JobResult]) -> list[str]:
    seen: dict[str, str] = {}
    for j in jobs:
        if j.paper_id or j.paper_title:
            key = j.paper_id or j.paper_title or ""
            seen.setdefault(key, " · ".join(x for x in (j.paper_id, j.paper_title) if x))
    return list(seen.values())


def markdown_report(sweep_dir: Path, jobs: Sequence[JobResult], groups: Sequence[SeedGroup]) -> str:
    """``results.md``: a summary line, the shared overrides, then the tables."""
    done = sum(j.status == "done" for j in jobs)
    lines = [
        f"# Sweep report: {sweep_dir}",
        "",
        f"{len(jobs)} jobs: {done} done, {len(jobs) - done} failed.",
    ]
    shared = _shared_overrides(jobs)
    if shared:
        lines.append("Overrides shared by every job: `" + " ".join(shared) + "`")
    papers = _papers(jobs)
    if papers:
        lines.append('Paper numbers ("paper" columns) from: ' + "; ".join(papers))
    lines.append("")
    for table in _tables(jobs, groups):
        lines += _md_table(table)
    return "\n".join(lines)


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
    ]
    for stage in STAGES:
        columns.append(f"{stage}_n")
        for column, _, _ in METRICS:
            name = f"{stage}_{column}"
            columns += [name, f"{name}_low", f"{name}_high", f"{name}_paper"]
    return columns


def _csv_row(job: JobResult) -> dict[str, Any]:
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
    }
    for stage in STAGES:
        row[f"{stage}_n"] = job.n.get(stage, "")
        for column, _, _ in METRICS:
            name = f"{stage}_{column}"
            values = job.metrics.get(stage, {}).get(column, (None, None, None))
            for suffix, value in zip(("", "_low", "_high"), values, strict=True):
                row[name + suffix] = "" if value is None else value
            paper = job.paper.get(stage, {}).get(column)
            row[f"{name}_paper"] = "" if paper is None else paper
    return row


_CONSOLE_HEADERS = {"accuracy": "acc", "sensitivity": "sens", "specificity": "spec"}


def _print(
    tables: Sequence[_Table], jobs: Sequence[JobResult], sweep_dir: Path, console: Any
) -> None:
    """The markdown's tables with rich (shorter metric headers: consoles are narrow)."""
    from rich.markup import escape
    from rich.table import Table

    done = sum(j.status == "done" for j in jobs)
    console.print(
        f"[bold]Sweep report[/bold] {escape(str(sweep_dir))}: {len(jobs)} jobs, {done} done, "
        f"{len(jobs) - done} failed",
        highlight=False,
    )
    shared = _shared_overrides(jobs)
    if shared:
        console.print(f"[dim]shared overrides: {escape(' '.join(shared))}[/dim]", highlight=False)
    for spec in tables:
        table = Table(title=spec.title, title_style="bold")
        for i, header in enumerate(spec.headers):
            table.add_column(
                _CONSOLE_HEADERS.get(header, header),
                justify="right" if i in spec.right else "left",
                no_wrap=header in {"job", "backbone", "n", "n seeds"},
            )
        for row in spec.rows:
            cells = [escape(c) for c in row]
            table.add_row(*(f"[red]{c}[/red]" if c.startswith("failed") else c for c in cells))
        console.print(table)


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
    is false (``console`` redirects them). Raises :class:`ReportError` when the folder has
    no job to report.
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    jobs = load_jobs(sweep_dir)
    groups = seed_groups(jobs)
    out_dir = Path(out).expanduser().resolve() if out else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    with csv_path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=csv_columns())
        writer.writeheader()
        writer.writerows(_csv_row(j) for j in jobs)
    md_path.write_text(markdown_report(sweep_dir, jobs, groups) + "\n")
    html_path = None
    if html:
        # Imported here: matplotlib is only needed for the page, not for the tables.
        from fracture_lit.review.html import write_sweep_report_html

        html_path = write_sweep_report_html(sweep_dir, out_dir / "report.html", jobs=jobs)
    if show:
        if console is None:
            from rich.console import Console

            console = Console()
        _print(_tables(jobs, groups), jobs, sweep_dir, console)
        failed = [j for j in jobs if j.status != "done"]
        if failed:
            console.print(
                f"[red]{len(failed)} of {len(jobs)} jobs failed[/red]: "
                + ", ".join(str(j.num) for j in failed)
            )
        console.print(f"Wrote {csv_path}\nWrote {md_path}", highlight=False)
        if html_path is not None:
            console.print(
                f"Wrote {html_path} (and report.html in each of the {len(jobs)} job folders)",
                highlight=False,
            )
    return ReportPaths(csv=csv_path, markdown=md_path, jobs=jobs, html=html_path)


# ----------------------------------------------------------------------------- CLI
def is_run_folder(folder: Path) -> bool:
    """A single run, evaluation or sweep-job folder rather than a sweep.

    Such a folder holds ``metrics.json``, or (a job that died before writing it) its config
    without any numbered job folder below.
    """
    folder = Path(folder)
    if (folder / "metrics.json").is_file():
        return True
    has_config = (folder / "config.yaml").is_file() or (folder / ".hydra").is_dir()
    return has_config and folder.is_dir() and not find_job_dirs(folder)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 once the report is written (failed jobs included), 2 when there is nothing."""
    parser = argparse.ArgumentParser(
        prog="python -m fracture_lit.report",
        description="Report on a sweep or a single run. A sweep folder gets one row per job "
        "(status, metrics with 95% intervals, the paper's numbers) and mean ± sd over seeds "
        "in results.csv and results.md, plus a self-contained report.html (and one in each "
        "job folder). A run, evaluation or sweep-job folder (it holds metrics.json) gets its "
        "report.html. The HTML embeds its images and loads nothing: open it offline in any "
        "browser.",
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
    args = parser.parse_args(argv)
    folder = args.folder.expanduser()
    try:
        if is_run_folder(folder):
            if not args.html:
                print(
                    f"error: {folder} is a run folder: --no-html leaves nothing to write",
                    file=sys.stderr,
                )
                return 2
            from fracture_lit.review.html import write_run_report

            out = args.out / "report.html" if args.out else None
            print(f"Wrote {write_run_report(folder, out)}")
        else:
            write_report(folder, out=args.out, html=args.html)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
