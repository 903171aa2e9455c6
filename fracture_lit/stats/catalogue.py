"""The one list of metrics: every table, the console, results.csv/.md and report.html take
their rows and columns from :data:`CATALOGUE`.

Adding a metric touches two files: where it is computed (:mod:`fracture_lit.metrics`, or
the module that logs it) and one :class:`Metric` entry here. ``computed=True`` entries are
what :func:`fracture_lit.metrics.build_metrics` must return (a test holds them equal);
``sweep=True`` entries are columns of the sweep tables and of ``results.csv``.

Pure Python on purpose: the report runs in a sweep's launcher process without torch. The
stages a metric is reported for are named in :mod:`fracture_lit.stats.splits`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CATALOGUE",
    "Metric",
    "by_alias",
    "by_key",
    "computed_keys",
    "format_interval",
    "format_value",
    "ordered_keys",
    "subgroup_metrics",
    "sweep_metrics",
]


@dataclass(frozen=True)
class Metric:
    """One metric as every report names, orders and formats it."""

    #: Key in metrics.json after the stage prefix (``test/recall``) and in ``ci95``.
    key: str
    #: Row label of a one-metric-per-row table (run page, end-of-run console table).
    label: str
    #: Column title in the sweep tables (results.md, HTML sweep page).
    title: str
    #: Column title on the console, where width is scarce.
    short: str
    #: Stem of its results.csv columns (``test_<column>``, ``_low``, ``_high``, ``_paper``).
    column: str
    #: Other names papers and presets use for it (matched lower case, ``-`` as ``_``).
    aliases: tuple[str, ...] = ()
    #: Digits after the point in the tables.
    digits: int = 3
    higher_is_better: bool = True
    #: Computed for every stage by :func:`fracture_lit.metrics.build_metrics`.
    computed: bool = True
    #: A column of the sweep tables and results.csv.
    sweep: bool = False
    #: A column of the per-subgroup tables (region, view, hardware) of a run's report.
    subgroup: bool = False

    def fmt(self, value: float | None, extra_digits: int = 0) -> str:
        """The value with this metric's digits; ``-`` for missing or NaN."""
        return format_value(value, self.digits + extra_digits)


#: Reading order of every table. Keep it the one place a metric is listed.
CATALOGUE: tuple[Metric, ...] = (
    Metric(
        key="loss",
        label="loss",
        title="loss",
        short="loss",
        column="loss",
        higher_is_better=False,
        computed=False,
    ),
    Metric(
        key="acc",
        label="accuracy",
        title="accuracy",
        short="acc",
        column="acc",
        aliases=("acc", "accuracy"),
        sweep=True,
    ),
    Metric(
        key="balanced_acc",
        label="balanced accuracy",
        title="balanced accuracy",
        short="bal acc",
        column="balanced_acc",
        aliases=("balanced_accuracy", "bacc"),
    ),
    Metric(
        key="precision",
        label="precision (PPV)",
        title="precision",
        short="prec",
        column="precision",
        aliases=("ppv",),
    ),
    Metric(
        key="recall",
        label="sensitivity (recall)",
        title="sensitivity",
        short="sens",
        column="sensitivity",
        aliases=("sensitivity", "recall", "sens", "tpr"),
        sweep=True,
        subgroup=True,
    ),
    Metric(
        key="specificity",
        label="specificity",
        title="specificity",
        short="spec",
        column="specificity",
        aliases=("spec", "tnr"),
        sweep=True,
        subgroup=True,
    ),
    Metric(
        key="f1",
        label="F1",
        title="F1",
        short="F1",
        column="f1",
        aliases=("f1_score", "f1score", "f_score"),
        sweep=True,
    ),
    Metric(
        key="auroc",
        label="AUROC",
        title="AUROC",
        short="AUROC",
        column="auroc",
        aliases=("auc", "roc_auc", "auc_roc"),
        sweep=True,
        subgroup=True,
    ),
    Metric(
        key="kappa",
        label="Cohen's kappa",
        title="kappa",
        short="kappa",
        column="kappa",
        aliases=("cohen_kappa", "cohens_kappa"),
        sweep=True,
    ),
    # Calibration (fracture_lit.stats.calibration), computed at val/test epoch end.
    Metric(
        key="ece",
        label="expected calibration error (ECE)",
        title="ECE",
        short="ECE",
        column="ece",
        aliases=("expected_calibration_error", "calibration_error"),
        higher_is_better=False,
        computed=False,
        sweep=True,
    ),
    Metric(
        key="brier",
        label="Brier score",
        title="Brier",
        short="Brier",
        column="brier",
        aliases=("brier_score",),
        higher_is_better=False,
        computed=False,
        sweep=True,
    ),
)

_BY_KEY = {m.key: m for m in CATALOGUE}
_BY_ALIAS = {alias: m for m in CATALOGUE for alias in (m.key, m.column, *m.aliases)}


def by_key(key: str) -> Metric | None:
    """The catalogue entry of a metrics.json key (``recall``), None for unknown keys."""
    return _BY_KEY.get(key)


def by_alias(name: str) -> Metric | None:
    """The entry a paper's name for a metric means (``"Sensitivity"``, ``"roc-auc"``)."""
    return _BY_ALIAS.get(str(name).strip().lower().replace("-", "_"))


def computed_keys() -> tuple[str, ...]:
    """Keys :func:`fracture_lit.metrics.build_metrics` computes, in catalogue order."""
    return tuple(m.key for m in CATALOGUE if m.computed)


def sweep_metrics() -> tuple[Metric, ...]:
    """The metrics shown as columns of the sweep tables and results.csv."""
    return tuple(m for m in CATALOGUE if m.sweep)


def subgroup_metrics() -> tuple[Metric, ...]:
    """The metrics of the per-subgroup tables."""
    return tuple(m for m in CATALOGUE if m.subgroup)


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """``keys`` in catalogue order; keys the catalogue does not know follow, sorted."""
    present = set(keys)
    return [m.key for m in CATALOGUE if m.key in present] + sorted(present - set(_BY_KEY))


def format_value(value: float | None, digits: int = 3) -> str:
    """``0.812`` for a number, ``-`` for a missing or NaN one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_interval(
    value: tuple[float | None, float | None, float | None] | None, digits: int = 3
) -> str:
    """``0.812 [0.750, 0.870]``; the point alone without an interval; ``-`` without both."""
    if not value or value[0] is None:
        return "-"
    point, low, high = value
    if low is None or high is None:
        return format_value(point, digits)
    return (
        f"{format_value(point, digits)} [{format_value(low, digits)}, {format_value(high, digits)}]"
    )
