"""The names of a dataset's splits and of the stages a run reports, kept once.

Pure Python (no torch): the sweep report reads them in the launcher process.
"""

from __future__ import annotations

__all__ = ["EVAL_STAGE", "EXCLUDED_SPLIT", "EXTERNAL_SPLIT", "REPORT_STAGES", "SPLITS", "STAGES"]

#: A dataset's splits, in reading order.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Leave-one-dataset-out: the held-out source, tested as a whole after training (also the
#: name of its block in metrics.json).
EXTERNAL_SPLIT = "external"
#: Training-source images left out because they are copies of held-out images.
EXCLUDED_SPLIT = "excluded"
#: Stages of a training run that metrics.json reports (the best checkpoint's evaluation).
STAGES: tuple[str, ...] = ("val", "test")
#: The stage of an evaluation folder (``python -m fracture_lit.eval``).
EVAL_STAGE = "eval"
#: Every stage a run or evaluation folder may report, in reading order.
REPORT_STAGES: tuple[str, ...] = (*STAGES, EXTERNAL_SPLIT, EVAL_STAGE)
