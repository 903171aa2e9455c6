"""Resume a sweep: run its own command again against its folder.

Every sweep records the command that started it in ``<sweep folder>/.resume/sweep.json``
(:class:`RecordSweepCommand`, a Hydra callback). :func:`resume_command` turns that back
into ``python -m fracture_lit.train -m <the same overrides> hydra.sweep.dir=<folder>``;
Hydra numbers the jobs as before, so each job meets its own folder and the job-folder
policy (``utils/job_folder.py``) keeps done jobs, continues killed ones from
``last.ckpt``, reruns failed ones and refuses a folder of another job.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fracture_lit.errors import UserError
from fracture_lit.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

RECORD = Path(".resume") / "sweep.json"
_DROPPED = ("hydra.sweep.dir=", "hydra.mode=")


class NotASweepFolderError(UserError, FileNotFoundError):
    """The folder has no sweep record."""


class RecordSweepCommand(Callback):
    """Write the sweep's overrides into its folder when it starts (kept if present, so a
    resumed sweep keeps the original record)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from fracture_lit.config import register_resolvers

        register_resolvers()
        try:
            record = Path(str(config.hydra.sweep.dir)) / RECORD
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


def resume_command(sweep_dir: str | Path, extra: list[str] | None = None) -> list[str]:
    """The command that finishes the sweep in ``sweep_dir`` (``extra`` overrides last)."""
    folder = Path(sweep_dir).resolve()
    record = folder / RECORD
    if not record.is_file():
        raise NotASweepFolderError(
            f"{folder} has no {RECORD} (written when a sweep starts): it is not a sweep "
            "folder, or the sweep predates resume support. Rerun its command with "
            f"hydra.sweep.dir={folder} instead."
        )
    saved = json.loads(record.read_text())
    hydra_overrides = [o for o in saved.get("hydra", []) if not o.startswith(_DROPPED)]
    return [
        sys.executable,
        "-m",
        saved.get("entry", "fracture_lit.train"),
        "-m",
        *hydra_overrides,
        *saved.get("task", []),
        f"hydra.sweep.dir={folder}",
        *(extra or []),
    ]
