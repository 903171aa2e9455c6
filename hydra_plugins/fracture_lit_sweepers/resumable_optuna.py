"""The Hydra plugin behind ``hparams_search=optuna``: an Optuna search that survives a kill,
prunes, and keeps every slot busy.

Hydra imports every public module under ``hydra_plugins`` whenever it starts, sweep or
not, so this one stays light: Optuna (about 3 s to import on 2 cores) and the study logic
in ``_resumable_study.py`` load only when a search is configured. How the search resumes,
prunes and runs its trials asynchronously is documented there.
"""

# No `from __future__ import annotations`: Hydra runs this module before it is in
# sys.modules, where dataclasses look string annotations up.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig


def _pruners() -> dict[str, Any]:
    """Each pruner's settings, as Optuna names them (``hydra.sweeper.pruners.<name>``)."""
    return {
        # Stop a trial whose value at an epoch is worse than the median of the finished
        # trials' values at that epoch, once n_startup_trials have finished and after
        # n_warmup_steps epochs.
        "median": {"n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1},
        # Asynchronous successive halving: at epochs min_resource * reduction_factor^k
        # only the best 1/reduction_factor of the trials that got there go on.
        "asha": {"min_resource": 1, "reduction_factor": 3, "min_early_stopping_rate": 0},
    }


@dataclass
class ResumableOptunaConf(OptunaSweeperConf):
    """Hydra's Optuna sweeper settings plus pruning and asynchronous trials."""

    _target_: str = "hydra_plugins.fracture_lit_sweepers.resumable_optuna.ResumableOptunaSweeper"
    # median | asha | none
    pruner: str = "none"
    pruners: dict[str, Any] = field(default_factory=_pruners)
    # true: a new trial starts as soon as one of the n_jobs slots is free; false: batches
    # of n_jobs trials, each waiting for its slowest (Hydra's Optuna sweeper).
    asynchronous: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="fracture_lit_optuna",
    node=ResumableOptunaConf,
    provider="fracture_lit",
)


class ResumableOptunaSweeper(Sweeper):
    """The Hydra plugin (``hydra.sweeper._target_``); takes the settings above."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.fracture_lit_sweepers._resumable_study import ResumableStudy

        self.sweeper = ResumableStudy(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
