"""Asynchronous trials: each of N slots starts the next trial as soon as its own ends.

Hydra's launchers take a batch of jobs and return when the slowest has ended, so a
batched search leaves every other slot idle while one long trial runs (Hydra #1954,
#1974). Here each slot is a thread that launches one job at a time through the
configured launcher and waits for it: the job itself runs where the launcher puts it (a
joblib worker process pinned to its own GPUs by ``fracture_lit.utils.gpu_pool``, or a
SLURM job of its own), so the threads only wait. Asking the study for a trial and telling
it the result happen under one lock, so trials are numbered in the order they start and
trial ``n`` still runs in job folder ``n``: a killed search resumes as a batched one does.

With ``hydra/launcher=slurm`` a slot's launch submits a one-job array and waits for its
result (submitit polls the queue); every submission is added to ``slurm_jobs.json`` under
a lock, and a resumed search adopts a trial's job still in the queue instead of
submitting it again. The in-process basic launcher gets one slot (its jobs share the
sweeper's process, its working folder and Hydra's global state).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["SlotRunner"]


class SlotRunner(Generic[T]):
    """Run ``run(item)`` in ``n_slots`` threads, each taking ``next_item()`` when free.

    ``next_item`` is called under :attr:`lock` and returns None when nothing is left;
    ``run`` takes :attr:`lock` itself for whatever must not interleave (telling the study).
    The first error of a slot stops every slot from taking more work and is raised once
    the running items have ended.
    """

    def __init__(
        self, n_slots: int, next_item: Callable[[], T | None], run: Callable[[T], None]
    ) -> None:
        self.n_slots = max(1, int(n_slots))
        self.next_item = next_item
        self.run_item = run
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    def _slot(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                item = self.next_item()
            if item is None:
                return
            try:
                self.run_item(item)
            except BaseException as error:  # noqa: BLE001 - re-raised by run()
                self._errors.append(error)
                self._stop.set()
                return

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._slot, name=f"trial-slot-{i}", daemon=True)
            for i in range(self.n_slots)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)  # short joins: Ctrl-C reaches this thread
        except BaseException:
            self._stop.set()
            raise
        if self._errors:
            raise self._errors[0]
