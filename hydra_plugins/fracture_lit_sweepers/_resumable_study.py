"""The study behind ``hparams_search=optuna``: an Optuna search that survives a kill.

Hydra's Optuna sweeper keeps the study in memory unless told otherwise and numbers its
jobs from 0 on every start, so a killed search either starts over or (with a storage)
sends its new trials into the folders of the old ones. This sweeper:

* keeps the study in ``<sweep folder>/optuna.db`` (SQLite) unless ``storage`` names
  another, so running the same command again (``python -m fracture_lit.resume <sweep
  folder>``) loads it;
* runs trial ``n`` in job folder ``n``, so every trial owns one folder for good;
* first finishes the trials the kill left running, with their own parameters in their own
  folders: the job-folder policy (``fracture_lit/utils/job_folder.py``) continues them
  from ``last.ckpt`` or reads the result of one that had finished;
* counts ``n_trials`` over the whole study, so a resumed search runs only what is left.

One submitting process per study: a trial another live process is running would be
taken for an interrupted one.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState

from fracture_lit.layout import SweepLayout

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def storage_url(storage: Any, sweep_dir: str) -> Any:
    """``storage`` as given, or a SQLite file in the sweep folder when it is unset."""
    if storage not in (None, ""):
        return storage
    sweep = SweepLayout(Path(sweep_dir).resolve())
    sweep.folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{sweep.optuna_study}"


class ResumableStudy(OptunaSweeperImpl):
    """Hydra's Optuna sweep loop, resumable (see the module docstring)."""

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        if self.search_space_distributions:
            distributions = {**self.search_space_distributions, **distributions}
        for name in fixed:
            distributions.pop(name, None)
        self._use_grid_if_asked(distributions)

        directions = self._get_directions()
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage_url(self.storage, self.config.hydra.sweep.dir),
            sampler=self.sampler,
            directions=directions,
            load_if_exists=True,
        )
        interrupted = [t for t in study.trials if t.state == TrialState.RUNNING]
        finished = sum(t.state in FINISHED for t in study.trials)
        if finished or interrupted:
            log.info(
                "Study %s resumed from its storage: %d trial(s) finished, %d interrupted "
                "(finished first, in their own folders), %d to go of n_trials=%d",
                study.study_name,
                finished,
                len(interrupted),
                max(0, self.n_trials - finished - len(interrupted)),
                self.n_trials,
            )
        for frozen in interrupted:
            self._run_trials(study, [Trial(study, frozen._trial_id)], distributions, fixed)
        to_go = self.n_trials - finished - len(interrupted)
        while to_go > 0:
            batch = [study.ask() for _ in range(min(to_go, max(1, self.n_jobs)))]
            self._run_trials(study, batch, distributions, fixed)
            to_go -= len(batch)
        self._save_results(study, directions)

    def _use_grid_if_asked(self, distributions: dict[str, Any]) -> None:
        sampler = self.sampler
        if isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
            log.info("Grid search: n_trials=%d", self.n_trials)

    def _run_trials(
        self,
        study: optuna.Study,
        trials: list[Trial],
        distributions: dict[str, Any],
        fixed: dict[str, Any],
    ) -> None:
        """Launch ``trials`` as jobs numbered by trial and tell the study their values."""
        overrides = self._configure_trials(trials, distributions, fixed)
        numbers = [t.number for t in trials]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            returns = list(self.launcher.launch(overrides, initial_job_idx=numbers[0]))
        else:  # one by one, so that each keeps its number
            returns = [
                self.launcher.launch([o], initial_job_idx=n)[0]
                for o, n in zip(overrides, numbers, strict=True)
            ]
        self.job_idx = max(self.job_idx, numbers[-1] + 1)
        failures = []
        for trial, job in zip(trials, returns, strict=True):
            try:
                value = job.return_value  # raises the job's own error when it failed
                values = (
                    [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
                )
                study.tell(trial, values=values if len(values) > 1 else values[0])
            except Exception as error:  # noqa: BLE001 - recorded as a failed trial
                log.warning("Trial %d failed: %s", trial.number, error)
                study.tell(trial, state=TrialState.FAIL)
                failures.append(error)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            raise RuntimeError(
                f"{len(failures)} of {len(returns)} trial(s) failed (max_failure_rate="
                f"{self.max_failure_rate}); the study keeps every finished trial, so "
                "`python -m fracture_lit.resume <sweep folder>` continues it"
            ) from failures[0]

    def _save_results(self, study: optuna.Study, directions: list[str]) -> None:
        if len(directions) == 1:
            best = study.best_trial
            results: dict[str, Any] = {
                "name": "optuna",
                "best_params": best.params,
                "best_value": best.value,
                "best_trial": best.number,
            }
            log.info("Best trial %d: %s = %s", best.number, best.params, best.value)
        else:
            results = {
                "name": "optuna",
                "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials],
            }
        results["n_trials"] = len(study.trials)
        OmegaConf.save(
            OmegaConf.create(results), SweepLayout(self.config.hydra.sweep.dir).optuna_results
        )
