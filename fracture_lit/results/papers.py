"""A paper's reported numbers, matched to the job that reproduces it.

Experiment presets carry a ``paper:`` block (``id``, ``title``, ``reported``); ``reported``
is either one flat ``{metric: value}`` or one such dict per model / variant. This module
picks the entry that belongs to a job and turns its names and percentages into catalogue
keys and fractions, so the report can put the paper's number beside the job's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fracture_lit.stats.catalogue import by_alias
from fracture_lit.stats.splits import STAGES

__all__ = ["JobPaper", "job_paper", "paper_numbers", "pick_reported"]


@dataclass
class JobPaper:
    """The paper a job's experiment preset reproduces, and its numbers for this job."""

    paper_id: str | None = None
    title: str | None = None
    #: stage -> metric key -> value (a fraction).
    numbers: dict[str, dict[str, float]] = field(default_factory=dict)


def _norm(name: Any) -> str:
    return str(name).strip().lower().replace("-", "_")


def float_or_none(value: Any) -> float | None:
    """A finite-or-infinite float from a number or ``"97.1%"``; None for NaN and non-numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def pick_reported(reported: dict[str, Any], candidates: Sequence[str | None]) -> Any:
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


def paper_numbers(entry: Any) -> dict[str, dict[str, float]]:
    """``{stage: {key: value}}`` from ``{"test/acc": 0.9759, "sensitivity": 97.1, ...}``.

    Unprefixed names are test numbers (what papers report). Percentages (> 1) are turned
    into fractions so they sit beside the job's own values.
    """
    out: dict[str, dict[str, float]] = {}
    if not isinstance(entry, dict):
        return out
    for name, raw in entry.items():
        stage, _, metric_name = _norm(name).rpartition("/")
        stage = stage or "test"
        metric = by_alias(metric_name)
        value = float_or_none(raw)
        if metric is None or value is None or stage not in STAGES:
            continue
        out.setdefault(stage, {})[metric.key] = value / 100 if abs(value) > 1 else value
    return out


def job_paper(cfg: dict[str, Any], backbone: str | None, choices: dict[str, Any]) -> JobPaper:
    """The paper of a job's resolved config, with the numbers matching its model."""
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
    entry = pick_reported(reported, candidates) if isinstance(reported, dict) else None
    title = paper.get("title")
    return JobPaper(
        paper_id=str(paper["id"]) if paper.get("id") is not None else None,
        title=str(title) if title else None,
        numbers=paper_numbers(entry),
    )
