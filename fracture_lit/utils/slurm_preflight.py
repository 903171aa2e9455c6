"""Check a SLURM allocation against the Trainer before any process group forms.

Under ``srun`` Lightning takes its ranks from SLURM (``SLURMEnvironment``): one task per
device and node, ``trainer.devices`` tasks on each of ``trainer.num_nodes`` nodes. When the
allocation says otherwise (``--ntasks-per-node`` vs ``devices``, ``--nodes`` vs
``num_nodes``, a total ``--ntasks`` that is neither) the ranks wait in process-group
setup for peers that never come (Lightning #19883, #20391), or each task trains alone
into the same run folder; a job script that runs Python without ``srun`` starts rank 0
alone, which then waits for the rest. :func:`slurm_preflight` refuses that with one line naming both
values and the fix, then gives every rank rank 0's starting checkpoint
(``fracture_lit.utils.slurm_ranks``): under SLURM the ranks are separate processes that do
not inherit rank 0's resume decision the way Lightning's local DDP children do.

The decision is made from an environment mapping, so it is tested with injected
environments; it fires exactly where Lightning would use ``SLURMEnvironment``: not outside
SLURM, not in an interactive allocation (job name ``bash`` or ``interactive``), not under
``torchrun`` inside a SLURM job (TorchElastic takes precedence there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig

from fracture_lit.errors import ConfigError
from fracture_lit.utils.slurm_ranks import share_start_checkpoint

#: Job names with which Lightning leaves a SLURM allocation alone (``salloc``, ``srun
#: --pty bash``, ``--job-name=interactive``): the ranks are then not SLURM's tasks.
INTERACTIVE_JOB_NAMES = ("bash", "interactive")
#: What ``torchrun`` sets; Lightning's TorchElastic environment wins over SLURM's then.
TORCHELASTIC_VARIABLES = ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")

_PER_NODE_ITEM = re.compile(r"^\s*(\d+)\s*(?:\(x(\d+)\))?\s*$")


def slurm_starts_the_ranks(environ: Mapping[str, str]) -> bool:
    """Whether Lightning takes this process's rank from SLURM (its ``SLURMEnvironment``
    detection: ``SLURM_NTASKS`` set and not an interactive job name), torchrun aside."""
    if all(name in environ for name in TORCHELASTIC_VARIABLES):
        return False
    return "SLURM_NTASKS" in environ and environ.get("SLURM_JOB_NAME") not in INTERACTIVE_JOB_NAMES


def expand_tasks_per_node(value: str) -> list[int]:
    """SLURM's compressed per-node counts: ``2(x3),1`` -> ``[2, 2, 2, 1]``."""
    counts: list[int] = []
    for item in value.split(","):
        match = _PER_NODE_ITEM.match(item)
        if match is None:
            raise ValueError(f"not a SLURM task count list: {value!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


@dataclass(frozen=True)
class Allocation:
    """What SLURM gives this job step, as its environment says."""

    ntasks: int
    nodes: int | None
    per_node: tuple[int, ...] | None
    per_node_text: str | None
    #: Started by srun (a job step), not by the batch script itself.
    in_step: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Allocation:
        nodes = environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES")
        text = environ.get("SLURM_NTASKS_PER_NODE")
        return cls(
            ntasks=int(environ["SLURM_NTASKS"]),
            nodes=int(nodes) if nodes else None,
            per_node=tuple(expand_tasks_per_node(text)) if text else None,
            per_node_text=text,
            in_step="SLURM_STEP_ID" in environ or "SLURM_STEPID" in environ,
        )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}{'es' if word[-1] == 's' else 's'}"


def device_count(devices: Any) -> int | None:
    """Processes per node that ``trainer.devices`` asks for; None for ``auto`` / ``-1``
    (Lightning counts the hardware then, and the per-node check is left to it)."""
    if isinstance(devices, ListConfig | list | tuple):
        return len(devices)
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    return None


def allocation_mismatch(devices: Any, num_nodes: int, allocation: Allocation) -> ConfigError | None:
    """Why ``allocation`` cannot run ``trainer.devices`` x ``trainer.num_nodes`` DDP
    processes (one line naming both values and the fix), or None when it can."""
    count = device_count(devices)
    if allocation.ntasks > 1 and not allocation.in_step:
        others = allocation.ntasks - 1
        return ConfigError(
            "SLURM_NTASKS",
            allocation.ntasks,
            f"this process runs in the job script itself, not under srun, so the other "
            f"{_plural(others, 'rank')} never {'starts' if others == 1 else 'start'}",
            "Start it with `srun python -m fracture_lit.train ...` (or submit with "
            "hydra/launcher=slurm).",
        )
    if allocation.nodes is not None and allocation.nodes != num_nodes:
        return ConfigError(
            "trainer.num_nodes",
            num_nodes,
            f"SLURM gives {_plural(allocation.nodes, 'node')} (SLURM_NNODES={allocation.nodes})",
            f"Set trainer.num_nodes={allocation.nodes} or submit with --nodes={num_nodes}.",
        )
    per_node, text = allocation.per_node, allocation.per_node_text
    if per_node is not None and len(set(per_node)) > 1:
        return ConfigError(
            "trainer.devices",
            devices,
            f"SLURM gives a different number of tasks on each node "
            f"(SLURM_NTASKS_PER_NODE={text}) and DDP needs the same number on every node",
            f"Submit with --nodes={num_nodes} --ntasks-per-node={count or max(per_node)}.",
        )
    if per_node is not None and count is not None and per_node[0] != count:
        return ConfigError(
            "trainer.devices",
            devices,
            f"SLURM gives {_plural(per_node[0], 'task')} per node (SLURM_NTASKS_PER_NODE={text})",
            f"Set trainer.devices={per_node[0]} or submit with --ntasks-per-node={count}.",
        )
    if count is None:
        return None
    fix = f"--nodes={num_nodes} --ntasks-per-node={count}"
    if allocation.ntasks != count * num_nodes:
        return ConfigError(
            "trainer.devices",
            devices,
            f"with trainer.num_nodes={num_nodes} that is {_plural(count * num_nodes, 'process')}"
            f" but SLURM starts {_plural(allocation.ntasks, 'task')} "
            f"(SLURM_NTASKS={allocation.ntasks})",
            f"Submit with {fix} and no other --ntasks.",
        )
    if per_node is None and allocation.ntasks > 1:
        # Lightning places ranks by the per-node count (its SLURMEnvironment refuses --ntasks).
        return ConfigError(
            "trainer.devices",
            devices,
            f"SLURM gives {_plural(allocation.ntasks, 'task')} without a per-node count "
            f"(SLURM_NTASKS={allocation.ntasks}, no SLURM_NTASKS_PER_NODE)",
            f"Submit with {fix} instead of --ntasks.",
        )
    return None


def check_allocation(trainer: Any, environ: Mapping[str, str]) -> None:
    """Raise a :class:`ConfigError` when SLURM starts this process and its allocation does
    not match ``trainer.devices`` and ``trainer.num_nodes``."""
    if not slurm_starts_the_ranks(environ):
        return
    try:
        allocation = Allocation.from_environ(environ)
    except ValueError as error:
        raise ConfigError(
            "SLURM_NTASKS_PER_NODE",
            environ.get("SLURM_NTASKS_PER_NODE"),
            f"cannot be read with SLURM_NTASKS={environ.get('SLURM_NTASKS')} ({error})",
            "Submit with --nodes=N --ntasks-per-node=M.",
        ) from error
    error = allocation_mismatch(
        trainer.get("devices"), int(trainer.get("num_nodes") or 1), allocation
    )
    if error is not None:
        raise error


def slurm_preflight(cfg: DictConfig, environ: Mapping[str, str] | None = None) -> None:
    """Before the Trainer exists: refuse an allocation that does not fit it, then give
    every SLURM-started rank the checkpoint rank 0 starts from."""
    environ = os.environ if environ is None else environ
    if not slurm_starts_the_ranks(environ):
        return
    check_allocation(cfg.trainer, environ)
    share_start_checkpoint(cfg, environ)
