"""A callback ``bench_main.py`` adds to the jobs it times: the moment the first training
batch starts, as ``time.time()`` in a file (the job logs no line of its own there).

Added with ``+callbacks.startup_stamp._target_=startup_stamp.FirstBatchStamp`` and the
``benchmarks`` folder on ``PYTHONPATH``; it does nothing else, so the job is the real one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class FirstBatchStamp(Callback):
    """Write the wall-clock time of the first training batch's start to ``path``, once."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.path.exists():
            self.path.write_text(repr(time.time()))
