"""What an Optuna search learned: importance, history, the best trial's config, ready to run.

Hydra's Optuna sweeper leaves the study in a database and the analysis to the user (Hydra
PR #1132). For a sweep folder whose ``search.json`` names a study, this module reads the
study once (:func:`load_insight`) and gives the report

* the hyperparameters' importance for the objective (Optuna's mean-decrease-impurity
  evaluator: a random forest fitted to the completed trials; scikit-learn is a runtime
  dependency for it). Optuna 2.10's fANOVA evaluator fails on today's scikit-learn (its
  trees' value arrays changed shape), so it is not used,
* each trial's objective in order with the best so far, pruned trials marked, and a
  parallel-coordinates view of parameters against the objective
  (:mod:`.search_charts`),
* ``best_config.yaml``: the best trial's composed configuration as a primary config, so
  ``python -m fracture_lit.train --config-dir <sweep> --config-name best_config`` trains
  it again in a new run folder (:func:`write_best_config`).

Optuna is imported only here, when a search's report is written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fracture_lit.layout import RunLayout, SweepLayout
from fracture_lit.utils.search_study import (
    JOB_ATTR,
    finite,
    open_study,
    read_search_record,
)

__all__ = ["SearchInsight", "TrialRow", "load_insight", "write_best_config"]

log = logging.getLogger(__name__)

#: Keys of a job's composed config that belong to the search, not to the trained model.
_SEARCH_ONLY_KEYS = (("callbacks", "optuna_pruning"),)


@dataclass
class TrialRow:
    """One trial as the report shows it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    #: Epochs the trial reported to the pruner (how far a pruned trial got).
    epochs: int
    #: The job folder the trial ran in.
    job_dir: Path


@dataclass
class SearchInsight:
    """A single-objective study, read once for the report."""

    sweep_dir: Path
    study_name: str
    direction: str
    monitor: str
    pruner: str
    trials: list[TrialRow]
    #: Parameters sampled on a log scale (drawn on log axes).
    log_params: set[str] = field(default_factory=set)
    #: Parameter -> importance (sums to 1), most important first; empty with ``note``.
    importance: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def param_names(self) -> list[str]:
        names: list[str] = []
        for trial in self.trials:
            names += [n for n in trial.params if n not in names]
        return names

    @property
    def best(self) -> TrialRow | None:
        done = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda t: t.value)

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


def load_insight(sweep_dir: Path | str) -> SearchInsight | None:
    """The study of an Optuna search folder, or None (not a search, or not readable)."""
    sweep_dir = Path(sweep_dir)
    record = read_search_record(sweep_dir)
    if record is None or len(record.get("directions") or []) != 1:
        return None  # not a search, or multi-objective (no single best, no importance)
    try:
        study = open_study(record)
        frozen = study.get_trials(deepcopy=False)
    except Exception as error:  # noqa: BLE001 - a report without insight beats none
        log.warning("Could not read the study of %s: %s", sweep_dir, error)
        return None
    trials = []
    log_params: set[str] = set()
    for trial in frozen:
        job = trial.user_attrs.get(JOB_ATTR) or {}
        trials.append(
            TrialRow(
                number=trial.number,
                state=trial.state.name,
                value=finite(trial.value),
                params=dict(trial.params),
                epochs=len(trial.intermediate_values),
                job_dir=sweep_dir / str(job.get("num", trial.number)),
            )
        )
        log_params |= {n for n, d in trial.distributions.items() if _log_scale(d)}
    insight = SearchInsight(
        sweep_dir=sweep_dir,
        study_name=study.study_name,
        direction=str(record["directions"][0]),
        monitor=str(record.get("monitor") or "objective"),
        pruner=str((record.get("pruner") or {}).get("name", "none")),
        trials=trials,
        log_params=log_params,
    )
    insight.importance, insight.importance_note = _importance(study, insight)
    return insight


def _log_scale(distribution: Any) -> bool:
    """Sampled on a log scale (``tag(log, interval(...))``; Optuna 2's LogUniform)."""
    return bool(getattr(distribution, "log", False)) or "LogUniform" in type(distribution).__name__


def _importance(study: Any, insight: SearchInsight) -> tuple[dict[str, float], str]:
    """Mean-decrease-impurity importances over the completed trials, or why there are none."""
    complete = insight.count("COMPLETE")
    if complete < 2:
        return {}, f"needs 2 completed trials ({complete} so far)"
    varied = [
        name
        for name in insight.param_names
        if len({repr(t.params.get(name)) for t in insight.trials if t.state == "COMPLETE"}) > 1
    ]
    if not varied:
        return {}, "every completed trial has the same parameters"
    from optuna.importance import MeanDecreaseImpurityImportanceEvaluator, get_param_importances

    try:
        found = get_param_importances(
            study, evaluator=MeanDecreaseImpurityImportanceEvaluator(seed=0), params=varied
        )
    except (ValueError, RuntimeError) as error:
        return {}, f"not computable: {error}"
    importance = {k: float(v) for k, v in found.items() if math.isfinite(float(v))}
    note = (
        f"mean decrease in impurity of a random forest fitted to the {complete} completed "
        "trials: how much each parameter explains of the objective"
    )
    return importance, note


def _without(config: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = config
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def write_best_config(insight: SearchInsight) -> Path | None:
    """``<sweep>/best_config.yaml``: the best trial's config as a primary config.

    Taken from the job's ``.hydra/config.yaml`` (composed, interpolations kept, so the
    run folder and data paths resolve afresh) without what only the search needs; its
    defaults list brings back Hydra's run-folder settings. None without a completed
    trial or its job folder.
    """
    best = insight.best
    if best is None:
        return None
    composed = RunLayout(best.job_dir).hydra_config
    try:
        config = yaml.safe_load(composed.read_text())
    except (OSError, yaml.YAMLError) as error:
        log.warning("No best_config.yaml: cannot read %s (%s)", composed, error)
        return None
    for path in _SEARCH_ONLY_KEYS:
        _without(config, path)
    config["task_name"] = f"{config.get('task_name') or 'train'}_best"
    params = " ".join(f"{k}={v}" for k, v in best.params.items())
    header = [
        f"# Best trial {best.number} of the Optuna search in {insight.sweep_dir}",
        f"# ({insight.monitor} = {best.value:.6g}, {insight.direction}d over "
        f"{len(insight.trials)} trials); its parameters: {params}",
        "# Train it again in a new run folder:",
        f"#   python -m fracture_lit.train --config-dir {insight.sweep_dir} "
        f"--config-name {Path(SweepLayout.BEST_CONFIG).stem} [overrides]",
    ]
    body = {"defaults": [{"hydra": "default"}, "_self_"], **config}
    path = SweepLayout(insight.sweep_dir).best_config
    text = "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
