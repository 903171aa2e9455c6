"""Make Lightning's DDP re-launch safe inside Hydra runs and sweeps.

Lightning starts the other DDP ranks by re-executing ``sys.argv`` plus
``hydra.run.dir=<HydraConfig.run.dir>``. In a Hydra multirun ``sys.argv`` still holds
``-m`` and the comma lists, so every child would re-run the whole sweep; and ``run.dir``
holds ``${now:...}``, which a child resolving later may turn into another folder. Before
fitting, :func:`pin_ddp_children_to_this_job` rewrites both: the children re-run exactly
this job's overrides, in RUN mode (even when the job's config asks for a multirun, as
``hparams_search=optuna`` does), in this job's folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import read_write


def global_rank() -> int:
    """This process's rank as the launch environment tells it (0 when not distributed)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if key in os.environ:
            try:
                return int(os.environ[key])
            except ValueError:
                continue
    return 0


def pin_ddp_children_to_this_job(output_dir: str | Path) -> None:
    """Point the command Lightning will use for DDP children at this one job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_node = HydraConfig.instance().cfg.hydra
    with read_write(hydra_node), read_write(hydra_node.run):
        hydra_node.run.dir = str(output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    # hydra.mode=RUN: a config can itself ask for a multirun (hparams_search=optuna sets
    # hydra.mode: MULTIRUN), and a child must run this one job, not start the search again.
    sys.argv = [sys.argv[0], *overrides, "hydra.mode=RUN"]


def release_process_group() -> None:
    """Tear down this job's process group so the next job of an in-process sweep starts its
    own (a leftover group points at the previous job's exited ranks)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def job_environment() -> Iterator[None]:
    """Restore ``os.environ`` after a job.

    Lightning's DDP launcher writes LOCAL_RANK, NODE_RANK, WORLD_SIZE and MASTER_PORT into
    the parent's environment; the next job of an in-process sweep would read LOCAL_RANK,
    conclude that something else launched its ranks, and wait forever for children it
    never starts.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
