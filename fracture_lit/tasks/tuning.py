"""The finders behind ``python -m fracture_lit.tune lr|batch_size [overrides]``.

Both run Lightning's tuner (``Tuner.lr_find``, ``Tuner.scale_batch_size``) on the data and
model the overrides configure, on one device, with fresh weights, in a run folder of their
own, and print the override to use. They change nothing the user owns: no config file is
written, and Lightning restores the initial weights from a temporary checkpoint that it
deletes; no ``checkpoints/`` folder is made, so no later run (or resume) can mistake the
finder's partly trained model for a run to continue. They refuse where they cannot give
an honest answer (:func:`refusal`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.config import group_options
from fracture_lit.errors import UserError
from fracture_lit.layout import RunLayout
from fracture_lit.review.finder_plots import plot_lr_curve
from fracture_lit.tasks.building import instantiate_data_and_model
from fracture_lit.utils.environment import resolve_trainer_overrides
from fracture_lit.validation import validate_train

__all__ = ["FINDERS", "FinderRefused", "run_finder"]

log = logging.getLogger("fracture_lit.tune")

#: The finders: the options of ``conf/tune/`` (``lr``, ``batch_size``).
FINDERS = group_options("tune")
#: ``LRFinder.suggestion``'s defaults: points skipped at the start and end of the curve.
SKIP_BEGIN, SKIP_END = 10, 1
_DISTRIBUTED_ENV = ("WORLD_SIZE", "SLURM_NTASKS", "LOCAL_RANK")


class FinderRefused(UserError, RuntimeError):
    """A finder asked to run where its answer would be wrong or would harm a run."""


def _distributed_launch() -> str | None:
    """The variable saying this process is one of several ranks (torchrun, srun), if any."""
    for key in _DISTRIBUTED_ENV:
        value = os.environ.get(key, "")
        if key == "LOCAL_RANK" and value != "":
            return f"{key}={value}"
        if value.isdigit() and int(value) > 1:
            return f"{key}={value}"
    return None


def refusal(finder: str, cfg: DictConfig, multirun: bool, output_dir: Path) -> str | None:
    """Why ``finder`` cannot run with ``cfg`` here, or None."""
    if finder not in FINDERS:
        return f"unknown finder {finder!r}: choose {' or '.join(FINDERS)}"
    if multirun:
        return (
            "a finder cannot run inside a multirun (-m, hparams_search=...): it measures one "
            "configuration. Run it once per configuration, without -m."
        )
    launched = _distributed_launch()
    if launched:
        return (
            f"a finder runs in one process on one device, not under a distributed launch "
            f"({launched}); Lightning's batch-size finder gives wrong answers under DDP "
            "(Lightning #20994). Run `python -m fracture_lit.tune ...` directly: it reports "
            "the per-device value and how it scales to trainer.devices."
        )
    if cfg.get("ckpt_path"):
        return (
            f"ckpt_path={cfg.ckpt_path}: a finder starts from the configured model's fresh "
            "weights, not from a run being resumed. Drop ckpt_path."
        )
    trainer = cfg.get("trainer") or {}
    if trainer.get("fast_dev_run"):
        return "trainer.fast_dev_run is set: Lightning skips its finders then. Drop it."
    run = RunLayout(output_dir)
    for existing in (run.metrics, run.checkpoints):
        if existing.exists():
            return (
                f"{output_dir} already holds a training run ({existing.name}): a finder writes "
                "only into a folder of its own. Drop hydra.run.dir or choose a new folder."
            )
    return None


def _devices(cfg: DictConfig) -> int:
    """Devices the configured training would use (for the DDP scaling statement)."""
    devices = (cfg.get("trainer") or {}).get("devices", 1)
    if isinstance(devices, list | tuple):
        return len(devices)
    try:
        return max(1, int(devices)) * max(1, int(cfg.trainer.get("num_nodes") or 1))
    except (TypeError, ValueError):
        return 1  # "auto": one device on the machines a finder runs on


def _settings(cfg: DictConfig) -> dict[str, Any]:
    """``tune.*`` as the tuner's keyword arguments (``conf/tune/<finder>.yaml`` uses
    Lightning's own names)."""
    settings = OmegaConf.to_container(cfg.tune, resolve=True)
    assert isinstance(settings, dict)
    return {k: v for k, v in settings.items() if k != "finder"}


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """The datamodule, fresh model and a one-device Trainer that saves nothing."""
    cfg = cfg.copy()
    with open_dict(cfg):  # the finder's Trainer has neither: nothing to check or create
        cfg.callbacks = None
        cfg.logger = None
    validate_train(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = instantiate_data_and_model(cfg)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        devices=1,
        num_nodes=1,
        strategy="auto",
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        max_epochs=-1,  # the finders count steps; small datasets need many epochs
        num_sanity_val_steps=0,
        check_val_every_n_epoch=10**6,  # training steps only: validation tells them nothing
        **resolve_trainer_overrides(cfg.trainer),
    )
    return datamodule, model, trainer


def find_lr(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Lightning's LR range test; the curve goes to ``lr_find.csv`` and ``lr_find.png``."""
    datamodule, model, trainer = build(cfg)
    finder = Tuner(trainer).lr_find(
        model, datamodule=datamodule, update_attr=False, **_settings(cfg)
    )
    if finder is None:
        raise FinderRefused("Lightning's LR finder did not run (fast_dev_run?).")
    lrs = [float(x) for x in finder.results["lr"]]
    losses = [float(x) for x in finder.results["loss"]]
    suggestion = finder.suggestion(skip_begin=SKIP_BEGIN, skip_end=SKIP_END)
    with (RunLayout(output_dir).lr_curve).open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(lrs, losses, strict=True))
    plot_lr_curve(lrs, losses, suggestion, RunLayout(output_dir).lr_plot)
    record: dict[str, Any] = {
        "finder": "lr",
        "suggestion": suggestion,
        "rule": "steepest descent of the smoothed training loss against the learning rate",
        "skip_begin": SKIP_BEGIN,
        "skip_end": SKIP_END,
        "steps": len(lrs),
        "batch_size": int(cfg.data.batch_size),
        "curve": RunLayout.LR_CURVE,
        "plot": RunLayout.LR_PLOT,
    }
    if suggestion is None:
        record["message"] = (
            f"No suggestion: only {len(lrs)} points on the curve. Raise tune.num_training "
            "or use more training data."
        )
        return record
    override = f"model.optimizer.lr={suggestion:.3g}"
    record["override"] = override
    devices = _devices(cfg)
    scope = (
        f" (measured on one device with the global batch data.batch_size={cfg.data.batch_size}; "
        f"with trainer.devices={devices} DDP averages gradients over that same global batch, "
        "so the rate carries over)"
        if devices > 1
        else ""
    )
    record["message"] = (
        f"Suggested learning rate: {suggestion:.3g}, where the loss falls fastest{scope}. "
        f"Train with: {override}"
    )
    return record


def find_batch_size(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """The largest training batch that runs on one device (Lightning's finder)."""
    import torch

    datamodule, model, trainer = build(cfg)
    found = Tuner(trainer).scale_batch_size(
        model, datamodule=datamodule, batch_arg_name="batch_size", **_settings(cfg)
    )
    if not found:
        raise FinderRefused("Lightning's batch-size finder did not run (fast_dev_run?).")
    per_device = int(found)
    devices = _devices(cfg)
    current = int(cfg.data.batch_size)
    on_gpu = trainer.strategy.root_device.type == "cuda"
    limit = (
        ""
        if on_gpu
        else " (on a CPU memory rarely runs out: the limit is tune.max_val or the training set)"
    )
    record: dict[str, Any] = {
        "finder": "batch_size",
        "per_device": per_device,
        "devices": devices,
        "global_batch_size": per_device * devices,
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "override": f"data.batch_size={per_device * devices}",
    }
    lines = [f"Largest batch that fits on one device: {per_device}{limit}."]
    if devices > 1:
        lines.append(
            f"data.batch_size is the global batch, split across the {devices} devices of "
            f"trainer.devices: data.batch_size={per_device * devices} gives each device "
            f"{per_device}."
        )
    scale = per_device * devices / current
    lr = (cfg.get("model") or {}).get("optimizer", {}).get("lr")
    if not math.isclose(scale, 1.0) and isinstance(lr, int | float):
        record["lr_if_scaled"] = float(lr) * scale
        lines.append(
            f"That changes the global batch from {current} to {per_device * devices} "
            f"({scale:.3g}x): the linear scaling rule suggests model.optimizer.lr="
            f"{float(lr) * scale:.3g} ({scale:.3g} x {lr}), best with a warm-up; "
            "`python -m fracture_lit.tune lr data.batch_size=...` measures it instead."
        )
    lines.append(f"Train with: {record['override']}")
    record["message"] = " ".join(lines)
    return record


def run_finder(finder: str, cfg: DictConfig, multirun: bool = False) -> dict[str, Any]:
    """Run ``finder`` (``lr`` or ``batch_size``) and write its record into the run folder."""
    output_dir = Path(cfg.paths.output_dir)
    problem = refusal(finder, cfg, multirun, output_dir)
    if problem:
        raise FinderRefused(problem)
    output_dir.mkdir(parents=True, exist_ok=True)
    record = (find_lr if finder == "lr" else find_batch_size)(cfg, output_dir)
    record["run_folder"] = str(output_dir)
    (RunLayout(output_dir).tune_record).write_text(json.dumps(record, indent=1))
    log.info("%s", record["message"])
    return record
