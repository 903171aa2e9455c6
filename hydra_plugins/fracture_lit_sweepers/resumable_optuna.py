"""The Hydra plugin behind ``hparams_search=optuna``: an Optuna search that survives a kill.

Hydra imports every public module under ``hydra_plugins`` whenever it starts, sweep or
not, so this one stays light: Optuna (about 3 s to import on 2 cores) and the study logic
in ``_resumable_study.py`` load only when a search is configured. How the search resumes
is documented there.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """The Hydra plugin (``hydra.sweeper._target_``); takes the Optuna sweeper's settings."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.fracture_lit_sweepers._resumable_study import ResumableStudy

        self.sweeper = ResumableStudy(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
