"""Hydra callbacks registered in ``conf/hydra/default.yaml``.

Hydra instantiates these for every run, single or sweep, so this module imports nothing
heavy: the report itself is imported only when a sweep ends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("fracture_lit.report")


class WriteSweepReport(Callback):
    """Write ``results.csv`` / ``results.md`` / ``report.html`` into the sweep folder when a
    sweep ends (and a ``report.html`` into every job folder; ``html=False`` skips them).

    ``on_multirun_end`` runs in the launching process once every job has returned, with any
    launcher (basic, joblib, submitit), so the sweep ends with its table on the console. A
    report that cannot be written must not turn a finished sweep into a failed one: errors
    are logged as a warning and ``python -m fracture_lit.report <folder>`` can be rerun.
    """

    def __init__(self, out: str | None = None, show: bool = True, html: bool = True) -> None:
        self.out = out
        self.show = show
        self.html = html
        self._sweep_dir: str | None = None

    @staticmethod
    def _resolve_sweep_dir(config: DictConfig) -> str:
        from fracture_lit.config import register_resolvers

        register_resolvers()  # ${run_id:} in the sweep folder's path
        return str(config.hydra.sweep.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Resolve the sweep folder now, with the config the launcher resolves it from.

        ``${now:...}`` is cached on that config object, so this is the folder the jobs get.
        """
        try:
            self._sweep_dir = self._resolve_sweep_dir(config)
        except Exception as error:  # noqa: BLE001 - retried at the end
            log.debug("Sweep folder not resolvable yet: %s", error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self._sweep_dir
        try:
            if sweep_dir is None or not Path(sweep_dir).is_dir():
                sweep_dir = self._resolve_sweep_dir(config)
            from fracture_lit.results.sweep_report import write_report

            write_report(sweep_dir, out=self.out, show=self.show, html=self.html)
        except Exception as error:  # noqa: BLE001 - a report never fails the sweep
            log.warning(
                "Could not write the sweep report for %s: %s: %s (rerun it with "
                "`python -m fracture_lit.report <sweep folder>`)",
                sweep_dir,
                type(error).__name__,
                error,
            )
