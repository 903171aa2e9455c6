"""Reading and writing what a job left behind: ``metrics.json``, job and sweep folders.

The one reader of a job's folder (:func:`load_job`, :func:`load_jobs`; a run's page reads
it through :func:`fracture_lit.results.run_folder.load_run`) and the one writer of
``metrics.json`` (:func:`write_metrics`). Where each file lies is
:mod:`fracture_lit.layout`'s. Reading never raises on a broken or half-written folder: a
report must still list the job that died.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_lit.errors import UserError
from fracture_lit.evaluation.subgroups import SUBGROUP_ATTRIBUTES
from fracture_lit.layout import RunLayout, SweepLayout
from fracture_lit.results.job_errors import crash_hint, error_text
from fracture_lit.results.papers import float_or_none, job_paper
from fracture_lit.stats.catalogue import CATALOGUE
from fracture_lit.stats.splits import STAGES
from fracture_lit.utils.atomic import write_text_atomic
from fracture_lit.utils.disk_budget import folder_bytes
from fracture_lit.utils.job_folder import FINISHED_STATUSES
from fracture_lit.utils.job_lock import RUNNING, folder_owner
from fracture_lit.utils.slurm_jobs import job_states_for_report

__all__ = [
    "NO_METRICS_ERROR",
    "SUBGROUP_ATTRIBUTES",
    "Interval",
    "JobResult",
    "ReportError",
    "error_text",
    "find_job_dirs",
    "float_or_none",
    "is_run_folder",
    "load_job",
    "load_jobs",
    "localization_blocks",
    "read_csv",
    "read_json",
    "read_metrics",
    "read_yaml",
    "write_json",
    "write_metrics",
]

#: The error of a job folder without metrics.json: the training task writes it even when
#: the job raises, so its absence means the process died (killed, out of memory, node lost).
NO_METRICS_ERROR = "no metrics.json (job killed or crashed before finishing)"
#: Overrides that repeat one configuration: jobs differing only in these are grouped.
REPEAT_OVERRIDES = {"seed": re.compile(r"^\+{0,2}seed=(?P<value>.*)$"),
                    "fold": re.compile(r"^\+{0,2}data\.fold=(?P<value>.*)$")}  # fmt: skip
_SEED_OVERRIDE = REPEAT_OVERRIDES["seed"]
# Splits an override_dirname ("a=1,b=x,y,c=2") at the commas that start a new key.
_OVERRIDE_SPLIT = re.compile(r",(?=[~+]*[\w.@/-]+=)")

Interval = tuple[float | None, float | None, float | None]


class ReportError(UserError):
    """The folder cannot be reported on (missing, or no job folder): the CLI exits 2."""


# ----------------------------------------------------------------------------- files
def read_json(path: Path) -> dict[str, Any]:
    """A json object from ``path``; ``{}`` when it is missing, unreadable or not an object."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a csv file; ``[]`` when it is missing or unreadable."""
    try:
        with Path(path).open(newline="") as stream:
            return list(csv.DictReader(stream))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def read_yaml(path: Path) -> Any:
    """A yaml file's content; None when it is missing or unreadable."""
    import yaml  # PyYAML ships with Hydra/OmegaConf; imported here to keep startup light

    try:
        with path.open() as stream:
            return yaml.safe_load(stream)
    except (OSError, yaml.YAMLError):
        return None


def read_metrics(folder: Path) -> dict[str, Any]:
    """The folder's ``metrics.json`` (``{}`` when missing or unreadable)."""
    return read_json(RunLayout(folder).metrics)


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write ``data`` to ``path`` as json (sorted keys, atomically replaced under a name of
    its own: a reader never sees half a file, two writers never share a temporary file)."""
    return write_text_atomic(Path(path), json.dumps(data, indent=2, sort_keys=True))


def write_metrics(results: dict[str, Any], folder: Path) -> Path:
    """Write ``results`` as ``<folder>/metrics.json`` (:func:`write_json`)."""
    return write_json(results, RunLayout(folder).metrics)


# ----------------------------------------------------------------------------- folders
def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's numbered job folders (``0``, ``1``, ... ``10``), in numeric order."""
    return SweepLayout(sweep_dir).job_folders()


def is_run_folder(folder: Path) -> bool:
    """A single run, evaluation or sweep-job folder rather than a sweep.

    Such a folder holds ``metrics.json``, or (a job that died before writing it) its config
    without any numbered job folder below.
    """
    run = RunLayout(folder)
    if run.metrics.is_file():
        return True
    has_config = run.config.is_file() or run.hydra.is_dir()
    return has_config and run.folder.is_dir() and not find_job_dirs(run.folder)


def _read_overrides(job_dir: Path, summary: dict[str, Any]) -> list[str]:
    """The job's overrides: ``.hydra/overrides.yaml`` (exact), else metrics.json's ``job``."""
    listed = read_yaml(RunLayout(job_dir).hydra_overrides)
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
    for path in RunLayout(job_dir).configs():
        cfg = read_yaml(path)
        if isinstance(cfg, dict):
            return cfg
    return {}


def _hydra_choices(job_dir: Path) -> dict[str, Any]:
    hydra_cfg = read_yaml(RunLayout(job_dir).hydra_runtime)
    try:
        choices = hydra_cfg["hydra"]["runtime"]["choices"]
    except (TypeError, KeyError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _stage_metrics(summary: dict[str, Any], stage: str) -> dict[str, Interval]:
    """``{metric key: (point, low, high)}`` of the catalogue's metrics in one stage."""
    block = summary.get(stage)
    if not isinstance(block, dict):
        return {}
    values = block.get("metrics") or {}
    ci95 = block.get("ci95") or {}
    out: dict[str, Interval] = {}
    for metric in CATALOGUE:
        point = float_or_none(values.get(f"{stage}/{metric.key}"))
        interval = ci95.get(metric.key)
        low = high = None
        if isinstance(interval, list | tuple) and len(interval) == 3:
            low, high = float_or_none(interval[1]), float_or_none(interval[2])
            if point is None:
                point = float_or_none(interval[0])
        if point is not None or low is not None:
            out[metric.key] = (point, low, high)
    return out


# ----------------------------------------------------------------------------- jobs
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
    #: stage -> metric key -> (point, low, high); missing values are None.
    metrics: dict[str, dict[str, Interval]] = field(default_factory=dict)
    #: stage -> n evaluated samples.
    n: dict[str, int] = field(default_factory=dict)
    #: stage -> metric key -> the paper's reported value (a fraction, not a percentage).
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    paper_id: str | None = None
    paper_title: str | None = None
    #: The class names, positive class last for binary tasks (metrics.json ``classes``).
    classes: list[str] = field(default_factory=list)
    #: Bytes the job's folder uses on disk (hard links once).
    disk_bytes: int | None = None
    #: split -> localization block (Grad-CAM vs annotated regions; metrics.json).
    localization: dict[str, dict[str, Any]] = field(default_factory=dict)

    def repeat_key(self, kind: str) -> tuple[str, ...]:
        """The overrides without the ``kind`` (``seed``/``fold``) override."""
        pattern = REPEAT_OVERRIDES[kind]
        return tuple(sorted(o for o in self.overrides if not pattern.match(o)))

    def repeats(self, kind: str) -> bool:
        """Whether the sweep set this job's ``kind`` (seed / data.fold) override."""
        return any(REPEAT_OVERRIDES[kind].match(o) for o in self.overrides)

    @property
    def group_key(self) -> tuple[str, ...]:
        """The overrides without ``seed=``: jobs sharing it are repeats of one config."""
        return self.repeat_key("seed")

    @property
    def repeats_a_seed(self) -> bool:
        """Whether the sweep set this job's seed (only such jobs are averaged over seeds)."""
        return self.repeats("seed")

    def point(self, stage: str, key: str) -> float | None:
        return self.metrics.get(stage, {}).get(key, (None, None, None))[0]


def localization_blocks(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """split -> localization block of a ``metrics.json`` (``{}`` without localization)."""
    found = summary.get("localization")
    if not isinstance(found, dict):
        return {}
    return {str(s): b for s, b in found.items() if isinstance(b, dict)}


def load_job(job_dir: Path) -> JobResult:
    """Read one job folder; never raises on a broken or half-written folder.

    A single run's folder (``<time>_<id>``, not numbered) reads the same way, as job 0.
    """
    job_dir = Path(job_dir)
    num = int(job_dir.name) if job_dir.name.isdigit() else 0
    summary: dict[str, Any] = {}
    metrics_file = RunLayout(job_dir).metrics
    error = ""
    if metrics_file.is_file():
        try:
            loaded = json.loads(metrics_file.read_text())
            summary = loaded if isinstance(loaded, dict) else {}
            status = str(summary.get("status") or "failed")
            if status not in FINISHED_STATUSES:
                error = error_text(summary) or "failed (no error recorded)"
        except (OSError, ValueError) as exc:
            status, error = "failed", f"metrics.json unreadable: {exc}"
    else:
        status, error = "failed", NO_METRICS_ERROR
        hint = crash_hint(job_dir, num)
        if hint:
            error = f"{error}; last log line: {hint}"
    cfg = _read_config(job_dir)
    overrides = _read_overrides(job_dir, summary)
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    backbone = summary.get("backbone") or model_cfg.get("backbone")
    seed = next((m["value"] for o in overrides if (m := _SEED_OVERRIDE.match(o))), None)
    if seed is None and cfg.get("seed") is not None:
        seed = str(cfg["seed"])
    paper = job_paper(cfg, str(backbone) if backbone else None, _hydra_choices(job_dir))
    epochs = summary.get("epochs")
    classes = summary.get("classes")
    return JobResult(
        num=num,
        folder=job_dir,
        overrides=overrides,
        status=status,
        error=error.splitlines()[0] if error else "",
        backbone=str(backbone) if backbone else None,
        seed=seed,
        epochs=int(epochs) if isinstance(epochs, int | float) else None,
        wall_time_s=float_or_none(summary.get("wall_time_s")),
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
        classes=[str(c) for c in classes] if isinstance(classes, list) else [],
        disk_bytes=folder_bytes(job_dir),
        localization=localization_blocks(summary),
    )


def load_jobs(sweep_dir: Path) -> list[JobResult]:
    """Every job of the sweep, in job-number order; :class:`ReportError` when there is none.

    A SLURM sweep (``slurm_jobs.json``) also lists the jobs that have not written their
    results: ``pending`` or ``running`` while the queue has them, so a detached sweep can
    be reported on at any time. A job whose folder a live process owns is ``running``.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir} is not a folder (expected a multirun sweep folder)")
    job_dirs = find_job_dirs(sweep_dir)
    submitted = job_states_for_report(sweep_dir)
    if not job_dirs and not submitted:
        sweeps = [str(p) for p in SweepLayout(sweep_dir).nested_sweeps()][:10]
        hint = ("; sweep folders below it: " + ", ".join(sweeps)) if sweeps else ""
        raise ReportError(f"{sweep_dir} has no numbered job folders (0, 1, ...){hint}")
    jobs = {job.num: job for job in map(load_job, job_dirs)}
    for num, (overrides, state) in submitted.items():
        job = jobs.get(num)
        if job is None:  # not started yet: no folder
            job = JobResult(
                num=num,
                folder=SweepLayout(sweep_dir).job(num).folder,
                overrides=overrides,
                status=state or "failed",
                error="" if state else NO_METRICS_ERROR,
            )
            jobs[num] = job
        elif state and job.status != "done":
            # Still queued (or requeued after preemption) or running: not a failure yet.
            job.status, job.error = state, ""
    for job in jobs.values():  # a live owner trains it now (utils/job_lock.py)
        if job.status != "done" and folder_owner(job.folder) is not None:
            job.status, job.error = RUNNING, ""
    return [jobs[num] for num in sorted(jobs)]
