"""The one decorator every Hydra entry point is: command-line check, ``hydra.main``, clean exit.

In the spirit of lightning-hydra-template's ``task_wrapper``: an entry point
(``fracture_lit/train.py``, ``eval.py``, ...) is a docstring, a ``main`` decorated with
:func:`task_entry` and ``if __name__ == "__main__": main()``; its body calls one task of
this package. The decorator keeps the order every entry point needs:

1. :func:`~fracture_lit.errors.check_command_line`: a typo in a key or a group option is one
   line with the nearest valid name, before Hydra composes anything (and before torch loads:
   entry points import their task inside ``main``);
2. ``hydra.main`` with the shipped config tree (:data:`~fracture_lit.config.CONFIG_DIR`);
3. :func:`~fracture_lit.errors.clean_exit` around the task: a user error is one ``Error: ...``
   line and exit code 1 (``HYDRA_FULL_ERROR=1`` and multirun jobs keep the traceback);
4. the task's return value goes back to Hydra, so a sweeper (Optuna) reads the objective.

The job record (status, error, traceback in the run folder's ``metrics.json``,
``export.json`` or ``pipeline.json``) is written by the task itself through
:func:`fracture_lit.results.job_record.job_record`, inside ``clean_exit``: tests, benchmarks
and the pipeline call the tasks directly and get the same record as the command line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import hydra
from omegaconf import DictConfig

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.errors import check_command_line, clean_exit

__all__ = ["task_entry"]

Result = TypeVar("Result")


def task_entry(
    config_name: str, *, also: tuple[type[BaseException], ...] = ()
) -> Callable[[Callable[[DictConfig], Result]], Callable[..., Result | None]]:
    """Turn ``main(cfg)`` into the entry point of ``conf/<config_name>.yaml``.

    ``also`` names further exception types the entry point reports as one-line user errors
    (e.g. ``FileNotFoundError`` for eval's and predict's inputs). The returned ``main()``
    takes no argument (``[project.scripts]`` and ``python -m`` call it so); Hydra's
    ``cfg_passthrough`` is passed on for callers that compose the config themselves.
    """
    register_resolvers()  # ${run_id:}, ${cwd:}, ... before Hydra resolves the run folder

    def decorate(body: Callable[[DictConfig], Result]) -> Callable[..., Result | None]:
        # functools.wraps: Hydra unwraps to ``body``, whose module names the job (the log
        # file is train.log for fracture_lit/train.py), as it did before this decorator.
        @functools.wraps(body)
        def task(cfg: DictConfig) -> Result:
            with clean_exit(also=also):
                return body(cfg)

        hydra_main = hydra.main(
            version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name
        )(task)

        @functools.wraps(body)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is not None:
                return hydra_main(cfg_passthrough)
            check_command_line(config_name)
            return hydra_main()

        return main

    return decorate
