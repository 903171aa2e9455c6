"""Leave-one-dataset-out in a sweep report: does the model work on a dataset it never saw?

Each job of ``experiment=leave_one_dataset_out`` held one source out (``data.held_out``):
its internal test is a held-out split of the training sources, its external test the whole
held-out source, both at the threshold chosen on the training sources' validation split,
and both written image by image (``scored/test.csv``, ``scored/external.csv``). From those
files this module computes, per configuration (the jobs' overrides besides
``data.held_out``) and held-out source:

* internal and external AUROC with percentile bootstrap 95% CIs, and external minus
  internal with its CI (unpaired: different images, :mod:`fracture_lit.stats.unpaired`);
* the external set's calibration, ECE and Brier score with CIs, and its sensitivity /
  specificity at the validation threshold (the job's metrics.json);
* a pooled row: every job's internal test as one set, every external set as another (each
  image scored by the model whose training never saw its source);
* for jobs tested on the same held-out source (two backbones, say): DeLong's paired test
  on the external images both scored.

Every figure goes to ``cross_dataset.json`` in the sweep folder; the tables go to
results.md, the HTML sweep page and the console through :mod:`.table`. Imported only for a
sweep that has external blocks (it bootstraps with torch via :mod:`.pooled`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult, read_metrics, write_json
from fracture_lit.results.pooled import bootstrap_auroc, read_prediction_file
from fracture_lit.results.table import Table, own_overrides, shared_overrides
from fracture_lit.stats.calibration import calibration_cis
from fracture_lit.stats.catalogue import by_key
from fracture_lit.stats.delong import delong_test
from fracture_lit.stats.splits import EXTERNAL_SPLIT
from fracture_lit.stats.unpaired import unpaired_difference

__all__ = [
    "CrossDatasetReport",
    "cross_dataset_report",
    "cross_dataset_tables",
    "write_json_report",
]

#: Resamples of every interval here (one number for every row, the pooled one included).
N_BOOTSTRAP = 1000
INTERNAL_STAGE = "test"
_HELD_OUT = "data.held_out="
POOLED = "pooled"

Scored = tuple[list[str], np.ndarray, np.ndarray]


@dataclass
class HeldOutJob:
    """One job: which source it held out, its configuration, its two scored sets."""

    job: JobResult
    held_out: str
    config: str
    internal: Scored
    external: Scored
    #: external sensitivity / specificity at the validation threshold (metrics.json).
    at_threshold: dict[str, float] = field(default_factory=dict)


def _interval(point: float, low: float, high: float) -> list[float]:
    return [float(point), float(low), float(high)]


def _row(
    config: str,
    source: str,
    jobs: list[int],
    internal: Scored,
    external: Scored,
    at_threshold: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every figure of one row: the two AUROCs, their difference, external calibration."""
    ia = bootstrap_auroc(internal[1], internal[2], N_BOOTSTRAP)
    ea = bootstrap_auroc(external[1], external[2], N_BOOTSTRAP)
    diff = unpaired_difference(
        external[1], external[2], internal[1], internal[2], n_boot=N_BOOTSTRAP
    )
    calibration = calibration_cis(external[1], external[2].astype(int), n_boot=N_BOOTSTRAP)
    return {
        "config": config,
        "held_out": source,
        "jobs": jobs,
        "n_internal": int(internal[2].size),
        "n_internal_positive": int(internal[2].sum()),
        "n_external": int(external[2].size),
        "n_external_positive": int(external[2].sum()),
        "internal_auroc": _interval(*ia),
        "external_auroc": _interval(*ea),
        "difference": _interval(diff.delta, diff.low, diff.high),
        "external_ece": calibration["ece"],
        "external_brier": calibration["brier"],
        "external_at_threshold": dict(at_threshold or {}),
    }


def _concat(parts: Sequence[Scored]) -> Scored:
    return (
        [p for part in parts for p in part[0]],
        np.concatenate([part[1] for part in parts]),
        np.concatenate([part[2] for part in parts]),
    )


def _paired(a: HeldOutJob, b: HeldOutJob) -> dict[str, Any] | None:
    """DeLong on the external images both jobs scored (matched by path)."""
    index_b = {path: i for i, path in enumerate(b.external[0])}
    rows = [(i, index_b[p]) for i, p in enumerate(a.external[0]) if p in index_b]
    if len(rows) < 4:
        return None
    ia, ib = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    labels = a.external[2][ia]
    try:
        result = delong_test(a.external[1][ia], b.external[1][ib], labels)
    except ValueError:  # fewer than two images of a class
        return None
    return {
        "held_out": a.held_out,
        "a": {"config": a.config, "job": a.job.num},
        "b": {"config": b.config, "job": b.job.num},
        "n": len(rows),
        "auroc_a": result.auroc_a,
        "auroc_b": result.auroc_b,
        "delta": _interval(result.delta, result.low, result.high),
        "z": result.z,
        "p": result.p,
    }


@dataclass
class CrossDatasetReport:
    """Per-source and pooled rows per configuration, and the paired comparisons."""

    rows: list[dict[str, Any]]
    paired: list[dict[str, Any]]
    n_bootstrap: int = N_BOOTSTRAP

    def to_dict(self) -> dict[str, Any]:
        return {"n_bootstrap": self.n_bootstrap, "rows": self.rows, "paired": self.paired}


def _load(jobs: Sequence[JobResult]) -> list[HeldOutJob]:
    shared = shared_overrides(jobs)
    out = []
    for job in jobs:
        if job.status != "done":
            continue
        summary = read_metrics(job.folder)
        held_out = (summary.get("data") or {}).get("held_out")
        layout = RunLayout(job.folder)
        internal = read_prediction_file(layout.scored(INTERNAL_STAGE), job.classes)
        external = read_prediction_file(layout.scored(EXTERNAL_SPLIT), job.classes)
        if not held_out or internal is None or external is None:
            continue
        rest = [o for o in job.overrides if not o.startswith(_HELD_OUT)]
        config = own_overrides(rest, shared).strip() or "all"
        metrics = (summary.get(EXTERNAL_SPLIT) or {}).get("metrics") or {}
        at_thr = {
            key: float(metrics[f"{EXTERNAL_SPLIT}/{key}_at_thr"])
            for key in ("recall", "specificity")
            if f"{EXTERNAL_SPLIT}/{key}_at_thr" in metrics
        }
        if f"{EXTERNAL_SPLIT}/threshold" in metrics:
            at_thr["threshold"] = float(metrics[f"{EXTERNAL_SPLIT}/threshold"])
        out.append(HeldOutJob(job, str(held_out), config, internal, external, at_thr))
    return out


_CACHE: dict[tuple[Any, ...], CrossDatasetReport | None] = {}


def _stamp(job: JobResult) -> tuple[Any, ...]:
    files = [RunLayout(job.folder).scored(s) for s in (INTERNAL_STAGE, EXTERNAL_SPLIT)]
    times = tuple(p.stat().st_mtime_ns if p.is_file() else None for p in files)
    return (str(job.folder), job.status, *times)


def cross_dataset_report(jobs: Sequence[JobResult]) -> CrossDatasetReport | None:
    """The leave-one-dataset-out figures of a sweep; None when no job held a source out.

    Computed once per state of the jobs' files: the tables, the JSON and the page share it.
    """
    key = tuple(_stamp(j) for j in jobs)
    if key in _CACHE:
        return _CACHE[key]
    loaded = _load(jobs)
    report = None
    if loaded:
        rows, paired = [], []
        configs = list(dict.fromkeys(h.config for h in loaded))
        for config in configs:
            mine = sorted((h for h in loaded if h.config == config), key=lambda h: h.held_out)
            for h in mine:
                rows.append(
                    _row(config, h.held_out, [h.job.num], h.internal, h.external, h.at_threshold)
                )
            if len(mine) > 1:
                rows.append(
                    _row(
                        config,
                        POOLED,
                        [h.job.num for h in mine],
                        _concat([h.internal for h in mine]),
                        _concat([h.external for h in mine]),
                    )
                )
        for i, a in enumerate(loaded):
            for b in loaded[i + 1 :]:
                if a.held_out == b.held_out and a.config != b.config:
                    result = _paired(a, b)
                    if result is not None:
                        paired.append(result)
        report = CrossDatasetReport(rows, paired)
    _CACHE[key] = report
    return report


def _cell(interval: Sequence[float], digits: int = 3, sign: bool = False) -> str:
    point, low, high = interval
    if point is None or not math.isfinite(point):
        return "-"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    bounds = "" if not math.isfinite(low) else f" [{fmt.format(low)}, {fmt.format(high)}]"
    return fmt.format(point) + bounds


def cross_dataset_tables(jobs: Sequence[JobResult]) -> list[Table]:
    """The report's tables: internal vs external per held-out source, then the paired one."""
    report = cross_dataset_report(jobs)
    if report is None:
        return []
    auroc, ece, brier = by_key("auroc"), by_key("ece"), by_key("brier")
    headers = [
        "config",
        "held out",
        "jobs",
        "n internal / external",
        f"internal {auroc.title}",
        f"external {auroc.title}",
        "external − internal",
        f"external {ece.title}",
        f"external {brier.title}",
        "external sens / spec at val thr",
    ]
    rows = []
    for r in report.rows:
        at = r["external_at_threshold"]
        sens_spec = (
            f"{at['recall']:.3f} / {at['specificity']:.3f}"
            if "recall" in at and "specificity" in at
            else "-"
        )
        rows.append(
            [
                r["config"],
                r["held_out"],
                ", ".join(str(j) for j in r["jobs"]),
                f"{r['n_internal']} / {r['n_external']}",
                _cell(r["internal_auroc"]),
                _cell(r["external_auroc"]),
                _cell(r["difference"], sign=True),
                _cell(r["external_ece"]),
                _cell(r["external_brier"]),
                sens_spec,
            ]
        )
    note = (
        "Each job trains and validates on every source but the held-out one; internal = a "
        "held-out split of its training sources, external = the whole held-out source, both "
        "at the threshold and temperature chosen on the training sources' validation split. "
        f"95% percentile bootstrap CIs ({report.n_bootstrap} resamples); the difference "
        "resamples the two image sets apart (unpaired). The pooled row scores every job's "
        "internal (external) images as one set."
    )
    tables = [
        Table(
            "Leave-one-dataset-out: internal vs external",
            headers,
            rows,
            set(range(3, len(headers))),
            note=note,
        )
    ]
    if report.paired:
        paired_rows = [
            [
                p["held_out"],
                p["a"]["config"],
                p["b"]["config"],
                str(p["n"]),
                f"{p['auroc_a']:.3f}",
                f"{p['auroc_b']:.3f}",
                _cell(p["delta"], sign=True),
                f"{p['p']:.3g}",
            ]
            for p in report.paired
        ]
        tables.append(
            Table(
                "Leave-one-dataset-out: models on the same held-out source (paired)",
                [
                    "held out",
                    "A",
                    "B",
                    "n",
                    "external AUROC A",
                    "external AUROC B",
                    "A − B (95% CI)",
                    "DeLong p",
                ],
                paired_rows,
                set(range(3, 8)),
                note="DeLong's test on the external images both models scored.",
            )
        )
    return tables


def write_json_report(jobs: Sequence[JobResult], path: Path) -> Path | None:
    """``cross_dataset.json``: every figure of the tables (None, nothing written, when the
    sweep held no source out)."""
    report = cross_dataset_report(jobs)
    return None if report is None else write_json(report.to_dict(), path)
