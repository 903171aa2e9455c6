"""The line format of model cards: every figure findable, with the key it was copied from.

A figure is written ``<label>: <value> [<low>, <high>] (`<key>`)``: the value with four
decimals (a count as an integer), its 95% interval when there is one, and in backticks
where it comes from: a dotted path into the folder's ``metrics.json``
(``test.ci95.auroc``), or ``<file>: <path>`` for another file (``split_manifest.csv:
count(split=test)``, ``review/test/subgroups.json: region.hand.n``). A reader can check
any number against the run record; ``tests/test_model_card.py`` checks them all. Nothing
is recomputed: a missing value is left out, never estimated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DIGITS",
    "bullet",
    "count_key",
    "figure",
    "interval_figure",
    "json_key",
    "number",
    "plain",
]

#: Decimals of every non-integer figure (the tests compare at this precision).
DIGITS = 4


def number(value: Any) -> str | None:
    """A figure as written: integers as they are, other numbers with :data:`DIGITS`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return f"{value:.{DIGITS}f}"


def json_key(*parts: Any, file: str | None = None) -> str:
    """``test.ci95.auroc`` (metrics.json) or ``<file>: region.hand.n``."""
    path = ".".join(str(p) for p in parts)
    return f"{file}: {path}" if file else path


def count_key(file: str, **where: Any) -> str:
    """``split_manifest.csv: count(split=test,class=fractured)``: rows matching ``where``."""
    inside = ",".join(f"{k}={v}" for k, v in where.items())
    return f"{file}: count({inside})"


def figure(label: str, value: Any, key: str) -> str | None:
    """``label: value (`key`)``; None when the value is missing or not a number."""
    shown = number(value)
    return None if shown is None else f"{label}: {shown} (`{key}`)"


def interval_figure(label: str, triple: Any, key: str, point: Any = None) -> str | None:
    """``label: value [low, high] (`key`)`` from a ``[point, low, high]`` of ``ci95``
    (``point`` replaces a missing first element); without bounds, the value alone."""
    values = list(triple) if isinstance(triple, Sequence) and not isinstance(triple, str) else []
    if len(values) != 3:
        return None
    shown = number(values[0] if values[0] is not None else point)
    if shown is None:
        return None
    low, high = number(values[1]), number(values[2])
    bounds = f" [{low}, {high}]" if low is not None and high is not None else ""
    return f"{label}: {shown}{bounds} (`{key}`)"


def bullet(line: str | None, indent: int = 0) -> list[str]:
    """A markdown list item, or nothing for a missing figure."""
    return [] if line is None else [f"{'  ' * indent}- {line}"]


def plain(value: Any) -> str:
    """A config value in prose: ``null`` for None, ``true``/``false``, lists joined."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) or "none"
    return str(value)
