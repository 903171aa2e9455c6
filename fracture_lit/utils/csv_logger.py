"""A CSV logger that keeps a run's history when the run resumes in its folder.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so resuming
into the same run folder lost the epochs before the checkpoint. This one keeps the file
(and its header, so appended rows line up) and, on resume, drops only the rows logged
after the checkpoint was written (see ``callbacks/resume.py``), which the resumed run
logs again.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from fracture_lit.utils.atomic import unique_tmp


class _KeepingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep an existing metrics.csv and continue its columns."""
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])

    def keep_rows_before_step(self, step: int) -> int:
        """Drop the rows logged at ``step`` or later; returns how many were dropped."""
        self.save()
        if not os.path.isfile(self.metrics_file_path):
            return 0
        with open(self.metrics_file_path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
        kept = [row for row in rows if _step(row) < step]
        if len(kept) != len(rows):
            tmp = unique_tmp(self.metrics_file_path)
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, self.metrics_file_path)
        return len(rows) - len(kept)


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume in the same folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _KeepingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def keep_rows_before_step(self, step: int) -> None:
        """Cut the history back to what a checkpoint at ``step`` had seen."""
        self.experiment.keep_rows_before_step(step)
