"""Hydra callbacks registered in ``conf/hydra/default.yaml``: record a sweep, report on it.

Hydra instantiates these for every run, single or sweep, so this module imports nothing
heavy: the report itself is imported only when a sweep ends.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fracture_lit.config import register_resolvers
from fracture_lit.layout import SweepLayout
from fracture_lit.utils.atomic import write_text_atomic

__all__ = ["RecordSweepCommand", "WriteSweepReport"]

log = logging.getLogger(__name__)
#: The report's own logger: a sweep that ends without its report says so under that name.
report_log = logging.getLogger("fracture_lit.report")


class RecordSweepCommand(Callback):
    """Write the sweep's overrides into its folder when it starts (kept if present, so a
    resumed sweep keeps the original record): ``python -m fracture_lit.resume`` reruns it
    (:func:`fracture_lit.utils.sweep_resume.resume_command`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        register_resolvers()
        try:
            record = SweepLayout(str(config.hydra.sweep.dir)).resume_record
            if record.is_file():
                return
            overrides = config.hydra.overrides
            write_text_atomic(
                record,
                json.dumps(
                    {
                        "entry": "fracture_lit.train",
                        "task": list(overrides.task),
                        "hydra": list(overrides.hydra),
                    },
                    indent=1,
                ),
            )
        except Exception as error:  # noqa: BLE001 - a record never stops a sweep
            log.warning("Could not record the sweep command: %s", error)


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
        register_resolvers()  # ${run_id:} in the sweep folder's path
        return str(config.hydra.sweep.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Resolve the sweep folder now, with the config the launcher resolves it from.

        ``${now:...}`` is cached on that config object, so this is the folder the jobs get.
        """
        try:
            self._sweep_dir = self._resolve_sweep_dir(config)
        except Exception as error:  # noqa: BLE001 - retried at the end
            report_log.debug("Sweep folder not resolvable yet: %s", error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self._sweep_dir
        try:
            if sweep_dir is None or not Path(sweep_dir).is_dir():
                sweep_dir = self._resolve_sweep_dir(config)
            # Imported here: Hydra builds this callback for every run, and only a sweep's
            # end needs the report (rich, matplotlib).
            from fracture_lit.results.sweep_report import write_report

            write_report(sweep_dir, out=self.out, show=self.show, html=self.html)
        except Exception as error:  # noqa: BLE001 - a report never fails the sweep
            report_log.warning(
                "Could not write the sweep report for %s: %s: %s (rerun it with "
                "`python -m fracture_lit.report <sweep folder>`)",
                sweep_dir,
                type(error).__name__,
                error,
            )
