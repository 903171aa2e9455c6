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
* counts ``n_trials`` over the whole study, so a resumed search runs only what is left;
* prunes (``pruner: median|asha|none``): the pruner lives in the study, and each job's
  ``fracture_lit.callbacks.pruning.OptunaPruning`` finds its trial there (the sweep
  folder's ``search.json`` says where the study is); a job the pruner stopped marks its
  trial, which is then told PRUNED, not failed;
* runs trials asynchronously (``asynchronous: true``, ``_async_trials.py``): with
  ``n_jobs`` slots a new trial starts as soon as any slot is free, instead of in batches
  that wait for their slowest trial.

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
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState

from fracture_lit.errors import ConfigError
from fracture_lit.layout import SweepLayout
from fracture_lit.utils.search_study import (
    JOB_ATTR,
    PRUNED_EPOCH_ATTR,
    job_attr,
    make_pruner,
    open_storage,
    pruner_settings,
    storage_url,
    uncached,
    write_search_record,
)
from hydra_plugins.fracture_lit_sweepers._async_trials import SlotRunner

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class ResumableStudy(OptunaSweeperImpl):
    """Hydra's Optuna sweep loop, resumable, pruned and asynchronous (module docstring)."""

    def __init__(
        self,
        pruner: str = "none",
        pruners: dict[str, Any] | None = None,
        asynchronous: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self.pruner_settings = pruner_settings(pruner, pruners)
        self.asynchronous = bool(asynchronous)
        self._failures: list[BaseException] = []
        self._told = 0

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
        if len(directions) > 1 and self.pruner_settings["name"] != "none":
            raise ConfigError(
                "hydra.sweeper.pruner",
                self.pruner_settings["name"],
                "Optuna prunes single-objective searches only",
                "set hydra.sweeper.pruner=none for a multi-objective search",
            )
        sweep_dir = str(self.config.hydra.sweep.dir)
        storage = storage_url(self.storage, sweep_dir)
        study = uncached(
            optuna.create_study(
                study_name=self.study_name,
                storage=open_storage(storage),
                sampler=self.sampler,
                pruner=make_pruner(self.pruner_settings),
                directions=directions,
                load_if_exists=True,
            )
        )
        write_search_record(
            sweep_dir,
            {
                "storage": storage,
                "study_name": study.study_name,
                "directions": directions,
                "monitor": self.config.get("monitor"),
                "pruner": self.pruner_settings,
            },
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
        to_go = max(0, self.n_trials - finished - len(interrupted))
        resumed = [Trial(study, frozen._trial_id) for frozen in interrupted]
        slots = self._slots()
        if self.asynchronous and slots > 1:
            self._run_async(study, resumed, to_go, slots, distributions, fixed)
        else:
            for trial in resumed:
                self._run_trials(study, [trial], distributions, fixed)
            while to_go > 0:
                batch = [study.ask() for _ in range(min(to_go, max(1, self.n_jobs)))]
                self._run_trials(study, batch, distributions, fixed)
                to_go -= len(batch)
        self._save_results(study, directions)

    def _slots(self) -> int:
        """Trials in flight at once: ``n_jobs``, or 1 with the in-process basic launcher."""
        if isinstance(self.launcher, BasicLauncher):
            return 1
        slots = max(1, int(self.n_jobs))
        workers = OmegaConf.select(self.config, "hydra.launcher.n_jobs")
        if isinstance(workers, int) and 0 < workers < slots:
            log.warning(
                "hydra.sweeper.n_jobs=%d trials in flight but hydra.launcher.n_jobs=%d "
                "worker processes: the extra trials wait for a worker.",
                slots,
                workers,
            )
        return slots

    def _use_grid_if_asked(self, distributions: dict[str, Any]) -> None:
        sampler = self.sampler
        if isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
            log.info("Grid search: n_trials=%d", self.n_trials)

    def _configure(
        self, trials: list[Trial], distributions: dict[str, Any], fixed: dict[str, Any]
    ) -> list[list[str]]:
        """The trials' overrides; each trial records the job it runs as (its folder)."""
        overrides = self._configure_trials(trials, distributions, fixed)
        for trial in trials:
            trial.set_user_attr(JOB_ATTR, job_attr(self.config.hydra.sweep.dir, trial.number))
        return [list(o) for o in overrides]

    def _run_async(
        self,
        study: optuna.Study,
        resumed: list[Trial],
        to_go: int,
        slots: int,
        distributions: dict[str, Any],
        fixed: dict[str, Any],
    ) -> None:
        """Keep ``slots`` trials running; each slot asks for the next when its own ends."""
        left = [to_go]

        def next_trial() -> tuple[Trial, list[str]] | None:
            if self._too_many_failures():
                return None
            if resumed:
                trial = resumed.pop(0)
            elif left[0] > 0:
                left[0] -= 1
                trial = study.ask()
            else:
                return None
            return trial, self._configure([trial], distributions, fixed)[0]

        def run(item: tuple[Trial, list[str]]) -> None:
            trial, overrides = item
            job = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
            with runner.lock:
                self.job_idx = max(self.job_idx, trial.number + 1)
                self._tell(study, trial, job)

        log.info("Asynchronous trials: %d slot(s), %d trial(s) to run", slots, to_go)
        runner = SlotRunner(slots, next_trial, run)
        runner.run()
        self._raise_if_too_many_failures()

    def _run_trials(
        self,
        study: optuna.Study,
        trials: list[Trial],
        distributions: dict[str, Any],
        fixed: dict[str, Any],
    ) -> None:
        """Launch ``trials`` as jobs numbered by trial and tell the study their values."""
        overrides = self._configure(trials, distributions, fixed)
        numbers = [t.number for t in trials]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            returns = list(self.launcher.launch(overrides, initial_job_idx=numbers[0]))
        else:  # one by one, so that each keeps its number
            returns = [
                self.launcher.launch([o], initial_job_idx=n)[0]
                for o, n in zip(overrides, numbers, strict=True)
            ]
        self.job_idx = max(self.job_idx, numbers[-1] + 1)
        for trial, job in zip(trials, returns, strict=True):
            self._tell(study, trial, job)
        self._raise_if_too_many_failures()

    def _tell(self, study: optuna.Study, trial: Trial, job: Any) -> None:
        """Tell the study how the trial's job ended: PRUNED when its job said so."""
        self._told += 1
        pruned_at = study._storage.get_trial(trial._trial_id).user_attrs.get(PRUNED_EPOCH_ATTR)
        if pruned_at is not None:
            study.tell(trial, state=TrialState.PRUNED)
            log.info("Trial %d pruned after epoch %s", trial.number, pruned_at)
            return
        try:
            value = job.return_value  # raises the job's own error when it failed
            values = (
                [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
            )
            study.tell(trial, values=values if len(values) > 1 else values[0])
        except Exception as error:  # noqa: BLE001 - recorded as a failed trial
            log.warning("Trial %d failed: %s", trial.number, error)
            study.tell(trial, state=TrialState.FAIL)
            self._failures.append(error)

    def _too_many_failures(self) -> bool:
        return bool(self._failures) and len(self._failures) / self._told > self.max_failure_rate

    def _raise_if_too_many_failures(self) -> None:
        if self._too_many_failures():
            raise RuntimeError(
                f"{len(self._failures)} of {self._told} trial(s) failed (max_failure_rate="
                f"{self.max_failure_rate}); the study keeps every finished trial, so "
                "`python -m fracture_lit.resume <sweep folder>` continues it"
            ) from self._failures[0]

    def _save_results(self, study: optuna.Study, directions: list[str]) -> None:
        results: dict[str, Any] = {"name": "optuna"}
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if len(directions) == 1 and complete:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info("Best trial %d: %s = %s", best.number, best.params, best.value)
        elif complete:
            results["solutions"] = [
                {"params": t.params, "values": t.values} for t in study.best_trials
            ]
        else:
            log.warning("No trial completed: no best trial to report.")
        results["n_trials"] = len(study.trials)
        OmegaConf.save(
            OmegaConf.create(results), SweepLayout(self.config.hydra.sweep.dir).optuna_results
        )
        self._log_to_wandb()

    def _log_to_wandb(self) -> None:
        """A summary run beside the trials' runs when the trials log to W&B."""
        wandb_conf = OmegaConf.select(self.config, "logger.wandb")
        if wandb_conf is None:
            return
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            from fracture_lit.results.search_insight import load_insight
            from fracture_lit.results.search_wandb import log_search_summary

            insight = load_insight(sweep_dir)
            if insight is None:
                return
            # The trials' group, as fracture_lit.train names it for a sweep's jobs.
            group = wandb_conf.get("group") or f"{self.config.task_name}-{sweep_dir.name}"
            settings = {
                "project": wandb_conf.get("project"),
                "entity": wandb_conf.get("entity"),
                "group": group,
            }
            log_search_summary(insight, settings)
        except Exception as error:  # noqa: BLE001 - a summary never fails a finished search
            log.warning("Could not log the search summary to W&B: %s", error)
