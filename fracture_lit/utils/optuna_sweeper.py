"""Hydra's Optuna sweeper, resumable: a killed search continues its study.

The study lives in ``<sweep folder>/optuna.db`` (``hparams_search=optuna``). Run again
against the same folder, the plain sweeper would ask ``n_trials`` new trials and number
their jobs from 0 again, into the folders of finished trials. This one counts the job
folders already finished (``metrics.json`` done or failed), marks the trials the killed
process left RUNNING as failed and enqueues their parameters again, numbers the next
jobs after the finished ones (so a killed trial's retry meets its own folder and
continues from its ``last.ckpt``), and runs only the trials still missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

from fracture_lit.utils.job_folder import read_status

log = logging.getLogger(__name__)


def finished_jobs(sweep_dir: Path) -> int:
    """Job folders ``0, 1, ...`` whose ``metrics.json`` records an outcome, in a row."""
    n = 0
    while (status := read_status(sweep_dir / str(n))) and status.get("status") in (
        "done",
        "failed",
    ):
        n += 1
    return n


class ResumableOptunaSweeper(OptunaSweeper):
    """``OptunaSweeper`` that continues the study stored in the sweep folder."""

    def sweep(self, arguments: list[str]) -> Any:
        impl = self.sweeper
        sweep_dir = Path(str(impl.sweep_dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)  # sqlite creates the file, not folders
        done = finished_jobs(sweep_dir)
        if impl.storage and done:
            _retry_interrupted_trials(impl.storage, impl.study_name)
        if done:
            impl.job_idx = done
            impl.n_trials = max(0, impl.n_trials - done)
            log.info(
                "Resuming the Optuna search in %s: %d trials done, %d to go.",
                sweep_dir,
                done,
                impl.n_trials,
            )
        return super().sweep(arguments)


def _retry_interrupted_trials(storage: str, study_name: str | None) -> None:
    """Trials still RUNNING belong to the killed process: fail them and ask their
    parameters again, so the retry is the same job."""
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
        log.info("Trial %d was interrupted; its parameters run again.", trial.number)
