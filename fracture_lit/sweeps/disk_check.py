"""Before a sweep's first job: will its checkpoints and files fit the disk?

A 100-job grid of large backbones is tens of GB of checkpoints, which is where cluster
quotas stop a sweep halfway. :class:`CheckSweepDisk` (a Hydra callback, so it runs for
every launcher) estimates what the jobs still to run will write (``utils/disk_budget.py``:
checkpoint sizes from each job's parameter count and optimizer, the checkpoint preset,
review and W&B files) against the free space of the sweep folder's file system, and

* warns when the sweep would use more than ``warn_fraction`` of the free space;
* refuses with one line, before any job starts (no job folder is created), when it cannot
  fit: the numbers, and the ways out (``callbacks=sweep_lean``, fewer jobs, another
  folder).

Jobs already done in the folder (a resumed sweep) need nothing more. ``free_bytes``
replaces the measured free space (a quota the file system does not report, and tests).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fracture_lit.config import register_resolvers
from fracture_lit.errors import exit_with
from fracture_lit.utils.disk_budget import (
    DiskBudgetError,
    JobNeed,
    free_bytes,
    human,
    job_need,
    optimizer_slots,
    sweep_need,
)
from fracture_lit.utils.job_folder import read_status

log = logging.getLogger("fracture_lit.sweeps")

#: Config trees whose overrides can change a job's disk need; jobs differing only in
#: others (seed, trainer.*, scheduler, ...) or in the common sweep axes below share one
#: estimate (one composition each: about a second).
_SIZE_KEYS = ("model", "optimizer", "experiment", "callbacks", "data", "logger")
_NO_SIZE_KEYS = (
    "model.optimizer.lr",
    "model.optimizer.weight_decay",
    "model.drop_rate",
    "model.label_smoothing",
    "data.batch_size",
    "data.fold",
    "data.augment",
)


class CheckSweepDisk(Callback):
    """Estimate a sweep's disk need at ``on_multirun_start``; warn, or refuse (see module)."""

    def __init__(self, free_bytes: int | None = None, warn_fraction: float = 0.8) -> None:
        self.free_bytes = None if free_bytes is None else int(float(free_bytes))
        self.warn_fraction = float(warn_fraction)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        register_resolvers()
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            needs = [need for num, need in _job_needs(config) if not _done(sweep_dir, num)]
            parallel = _parallel_jobs(config)
        except Exception as error:  # noqa: BLE001 - an estimate never stops a sweep
            log.warning(
                "Could not estimate the sweep's disk need: %s: %s", type(error).__name__, error
            )
            return
        check_fits(needs, parallel, sweep_dir, self.free_bytes, self.warn_fraction)


def check_fits(
    needs: list[JobNeed],
    parallel: int,
    sweep_dir: Path,
    free: int | None = None,
    warn_fraction: float = 0.8,
) -> int:
    """The sweep's need in bytes; warns when tight, exits with one line when it cannot fit."""
    need = sweep_need(needs, parallel)
    free = free_bytes(sweep_dir) if free is None else free
    if not needs:
        return 0
    per_job = max(needs, key=lambda n: n.done)
    line = (
        f"the sweep needs about {human(need)} in {sweep_dir} ({len(needs)} job(s) to run, up "
        f"to {human(per_job.done)} each when done, {human(per_job.full)} per complete "
        f"checkpoint; {parallel} at once) and its file system has {human(free)} free"
    )
    if need > free:
        lean = sweep_need([_lean(n) for n in needs], parallel)
        ways = [] if lean == need else [f"callbacks=sweep_lean (best weights only: ~{human(lean)})"]
        ways += ["fewer jobs", "another folder (hydra.sweep.dir=...)"]
        error = DiskBudgetError(
            f"{line}: refusing to start it (nothing was run). Use {', or '.join(ways)}; "
            "or skip this check with ~hydra.callbacks.disk_budget."
        )
        exit_with(error)
    level = logging.WARNING if need > warn_fraction * free else logging.INFO
    log.log(level, "Disk: %s%s.", line, " (tight)" if level == logging.WARNING else "")
    return need


def _lean(need: JobNeed) -> JobNeed:
    return replace(need, best_weights_only=True, remove_last=True)


def _done(sweep_dir: Path, num: int) -> bool:
    status = read_status(sweep_dir / str(num))
    return status is not None and status.get("status") == "done"


def _parallel_jobs(config: DictConfig) -> int:
    launcher = config.hydra.get("launcher") or {}
    for key in ("n_jobs", "array_parallelism"):
        value = launcher.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return 1


def _job_overrides(config: DictConfig) -> list[list[str]]:
    """Every job's overrides, numbered as the sweeper will number them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = list(config.hydra.overrides.task)
    sweeper = config.hydra.sweeper
    if "optuna" in str(sweeper.get("_target_", "")).lower():
        # The search space is Optuna's to choose: the base configuration, n_trials times.
        base = [o for o in task if "," not in o.partition("=")[2]]
        return [base] * int(sweeper.get("n_trials") or 1)
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(params + task), None)
    return [job for batch in batches for job in batch]


def _job_needs(config: DictConfig) -> list[tuple[int, JobNeed]]:
    """``(job number, need)`` of every job; one composition per distinct size setting."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    cache: dict[tuple[str, ...], JobNeed] = {}
    out = []
    for num, overrides in enumerate(_job_overrides(config)):
        key = tuple(o for o in overrides if _changes_size(o))
        if key not in cache:
            cache[key] = _need_of(loader.load_sweep_config(config, list(overrides)))
        out.append((num, cache[key]))
    return out


def _changes_size(override: str) -> bool:
    key = override.lstrip("+~").partition("=")[0]
    return key.split(".")[0].split("/")[0] in _SIZE_KEYS and key not in _NO_SIZE_KEYS


def _need_of(cfg: DictConfig) -> JobNeed:
    model = cfg.model
    classes = OmegaConf.select(cfg, "data.classes", default=None)
    kwargs = _plain(model.get("backbone_kwargs"))
    values = count_values(
        str(model.backbone),
        int(model.in_chans),
        len(classes) if isinstance(classes, list | tuple) or OmegaConf.is_list(classes) else 2,
        repr(sorted(kwargs.items())) if kwargs else "",
    )
    optimizer = _plain(model.get("optimizer"))
    checkpoint = OmegaConf.select(cfg, "callbacks.model_checkpoint", default=None) or {}
    return job_need(
        values,
        optimizer_slots(str(optimizer.get("_target_", "adam")), optimizer),
        best_weights_only=bool(checkpoint.get("best_weights_only")),
        remove_last=bool(checkpoint.get("remove_last_when_done")),
        review=bool(OmegaConf.select(cfg, "callbacks.review", default=None)),
        wandb="wandb" in (cfg.get("logger") or {}),
    )


def _plain(node: Any) -> dict[str, Any]:
    """A config node as a resolved dict (``{}`` for none)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_dict(node) else {}


@functools.lru_cache(maxsize=64)
def count_values(backbone: str, in_chans: int, num_classes: int, kwargs: str = "") -> int:
    """Parameters plus buffers of the network, built on PyTorch's meta device: shapes
    without memory, so even efficientnet_b6 costs a fraction of a second, and nothing is
    downloaded. ``kwargs``: the backbone's extra arguments as ``repr`` of sorted items."""
    import ast

    import timm
    import torch

    import fracture_lit.models.factory  # noqa: F401 - registers the papers' CNNs with timm

    extra = dict(ast.literal_eval(kwargs)) if kwargs else {}
    with torch.device("meta"):
        net = timm.create_model(
            backbone, pretrained=False, num_classes=num_classes, in_chans=in_chans, **extra
        )
    return sum(t.numel() for t in (*net.parameters(), *net.buffers()))
