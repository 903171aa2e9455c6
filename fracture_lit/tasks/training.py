"""Train one configuration: build the run from its ``_target_`` blocks, fit, evaluate, record.

:func:`instantiate_run` builds the datamodule, model, callbacks, loggers and Trainer;
:func:`train` fits them and evaluates the best checkpoint on val and test; :func:`run` adds
the bookkeeping (resume policy, job record in ``metrics.json``, report, W&B closing) that
``python -m fracture_lit.train`` and the pipeline's stages need.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.callbacks.checkpoint import drop_last_when_done
from fracture_lit.callbacks.pruning import pruned_by
from fracture_lit.callbacks.resume import (
    ResumableTraining,
    TrainingPreempted,
    stop_for_requeue,
    trainer_plugins,
)
from fracture_lit.callbacks.review import ReviewCallback
from fracture_lit.layout import RunLayout
from fracture_lit.models.weights import normalise_weights_config, resolve_weights, weights_record
from fracture_lit.results.console import print_summary
from fracture_lit.results.folders import write_metrics
from fracture_lit.results.html_run import try_write_run_report
from fracture_lit.results.job_record import job_record
from fracture_lit.stats.splits import EXTERNAL_SPLIT
from fracture_lit.tasks.building import instantiate_data_and_model
from fracture_lit.tasks.output_errors import output_errors_named
from fracture_lit.tasks.run_data import data_record, evaluate_external, record_stage_subgroups
from fracture_lit.tasks.wandb_run import finish_wandb, is_multirun, job_name, wandb_settings
from fracture_lit.utils.distributed import (
    global_rank,
    job_environment,
    pin_ddp_children_to_this_job,
    release_process_group,
)
from fracture_lit.utils.environment import (
    configure_wandb_mode,
    resolve_trainer_overrides,
    route_lightning_logs_through_hydra,
    skip_deterministic_memory_fill,
)
from fracture_lit.utils.gpu_pool import pin_local_gpus
from fracture_lit.utils.instantiate import instantiate_group
from fracture_lit.utils.job_folder import check_same_job, plan_job
from fracture_lit.utils.job_lock import JobFolderLock, busy_record
from fracture_lit.utils.precision import choose_precision
from fracture_lit.utils.slurm_preflight import slurm_preflight
from fracture_lit.validation import validate_train

__all__ = ["instantiate_loggers", "instantiate_run", "objective", "prepare_job_folder", "run",
           "train", "training_precision"]  # fmt: skip

log = logging.getLogger("fracture_lit.train")

#: How rank 0 tells the DDP children which checkpoint the run continues from.
RESUME_FROM_ENV = "FRACTURE_LIT_RESUME_FROM"


def instantiate_loggers(cfg: DictConfig) -> list[Any]:
    """The run's loggers; a W&B logger gets the job's name, group and resumed id."""
    extra: dict[str, dict[str, Any]] = {}
    if cfg.get("logger") and "wandb" in cfg.logger:
        configure_wandb_mode()
        extra["wandb"] = wandb_settings(cfg)
    return instantiate_group(cfg.get("logger"), **extra)


def instantiate_run(
    cfg: DictConfig, extra_callbacks: Sequence[Any] = ()
) -> tuple[Any, Any, Any, list[Any]]:
    """The datamodule, model, Trainer and loggers of one run, as :func:`train` fits them
    (``benchmarks/bench_train.py`` times these same objects, plus its ``extra_callbacks``)."""
    datamodule, model = instantiate_data_and_model(cfg)
    # Always there: exact resume and preemption are part of every run (callbacks/resume.py).
    callbacks = [
        *instantiate_group(cfg.get("callbacks")),
        ResumableTraining(seed=cfg.get("seed")),
        *extra_callbacks,
    ]
    loggers = instantiate_loggers(cfg)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        **resolve_trainer_overrides(cfg.trainer),
        **trainer_plugins(),
    )
    skip_deterministic_memory_fill()  # after the Trainer switched deterministic mode on
    return datamodule, model, trainer, loggers


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and evaluate one configuration; returns the results written to metrics.json."""
    # First, before anything asks CUDA for devices: a parallel local sweep job's own GPUs.
    pinned_gpus = pin_local_gpus(cfg)
    deprecated = normalise_weights_config(cfg.model)  # model.pretrained* -> model.weights
    if deprecated and global_rank() == 0:
        log.warning(deprecated)
    validate_train(cfg)  # every value checked before data is indexed or a model built
    starting_weights = weights_record(cfg.model.backbone, resolve_weights(cfg.model.get("weights")))
    slurm_preflight(cfg)  # SLURM's allocation vs the trainer, before any process group forms
    route_lightning_logs_through_hydra()

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    datamodule, model, trainer, loggers = instantiate_run(cfg)
    precision = training_precision(cfg, trainer)
    if trainer.is_global_zero:
        RunLayout(output_dir).config.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {
        "backbone": cfg.model.backbone,
        "classes": datamodule.classes,
        "starting_weights": starting_weights,
        "precision": precision,
    }
    if pinned_gpus:
        results["gpus"] = pinned_gpus
    ckpt_path: str | None = None
    if trainer.world_size > 1:
        pin_ddp_children_to_this_job(output_dir)
    if cfg.get("train", True):
        with output_errors_named(trainer, cfg.get("ckpt_path")):
            trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        results["epochs"] = trainer.current_epoch
        ckpt_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        )
        if not ckpt_path:
            log.warning("No best checkpoint was saved; evaluating the current weights.")
            ckpt_path = None
        results["best_model_path"] = ckpt_path
        results["stopped_early"] = bool(
            trainer.early_stopping_callback and trainer.early_stopping_callback.stopped_epoch
        )
        pruned = pruned_by(trainer)
        if pruned is not None:  # an Optuna trial its pruner stopped: no final evaluation
            results.update(status="pruned", pruned=pruned)
            return results
    elif cfg.get("ckpt_path"):
        ckpt_path = cfg.ckpt_path

    if trainer.fast_dev_run:
        return results
    trainer.validate(model=model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    results["val"] = model.epoch_summary.get("val", {})
    if cfg.get("test", True):
        if datamodule.has_split("test"):
            trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            results["test"] = model.epoch_summary.get("test", {})
        else:
            log.info("The data has no test split; skipping test.")
    if trainer.is_global_zero:  # per-source subgroups, the held-out source, the data record
        record_stage_subgroups(results, model, datamodule, output_dir, trainer.world_size)
        external = evaluate_external(model, datamodule, output_dir) if cfg.get("test", 1) else None
        if external is not None:
            results[EXTERNAL_SPLIT] = external
        results["data"] = data_record(datamodule, output_dir)
    for callback in trainer.callbacks:  # the review's Grad-CAM vs data.regions, if any
        if isinstance(callback, ReviewCallback) and callback.localized:
            results["localization"] = dict(callback.localized)
    return results


def training_precision(cfg: DictConfig, trainer: Any) -> dict[str, str]:
    """The precision block of metrics.json (train, score, chosen_by), logged once as INFO."""
    trainer_cfg = cfg.trainer
    choice = choose_precision(trainer_cfg.get("precision"), trainer_cfg.get("accelerator"))
    # Lightning's own name of what it runs ("bf16" -> "bf16-mixed", 32 -> "32-true").
    choice = replace(choice, train=str(trainer.precision))
    if trainer.is_global_zero:
        log.info("%s", choice.sentence())
    return choice.record()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train with failure bookkeeping: the job's status always lands in metrics.json.

    In a sweep a failed job is recorded and the sweep goes on; a single run re-raises.
    """
    output_dir = Path(cfg.paths.output_dir)
    rank_zero = global_rank() == 0
    lock = JobFolderLock(output_dir)  # one owner per job folder (utils/job_lock.py)
    recorded = prepare_job_folder(cfg, rank_zero, lock)
    if recorded is not None:
        return recorded
    results: dict[str, Any] = {"job": job_name(cfg), "backbone": cfg.model.get("backbone")}
    multirun = is_multirun()
    preempted: TrainingPreempted | None = None

    def preemption(error: BaseException, record: dict[str, Any]) -> None:
        if isinstance(error, TrainingPreempted):
            record.pop("traceback", None)
            record.update(status="preempted", error=str(error), resume_from=error.checkpoint)

    def close_and_write(record: dict[str, Any]) -> None:
        finish_wandb()
        release_process_group()
        try:
            if rank_zero:
                write_metrics(record, output_dir)
                drop_last_when_done(cfg, record)
                try_write_run_report(output_dir)
        finally:
            lock.release()

    try:
        with job_record(results, close_and_write, on_error=preemption), job_environment():
            results.update(train(cfg))
    except TrainingPreempted as stop:
        preempted = stop
    except Exception:
        if not multirun:
            raise
        log.error("Job failed, the sweep goes on: %s", results["error"])
    if preempted is not None:
        stop_for_requeue(preempted)
    if rank_zero and results["status"] == "done" and "val" in results:
        print_summary(results, title=f"fracture_lit · {results['job']}")
        log.info("Run folder: %s", output_dir)
        if results.get("best_model_path"):
            log.info("Best checkpoint: %s", results["best_model_path"])
    elif rank_zero and results["status"] == "pruned":
        log.info("Pruned after %s epoch(s); run folder: %s", results.get("epochs"), output_dir)
    return results


def prepare_job_folder(
    cfg: DictConfig, rank_zero: bool, lock: JobFolderLock
) -> dict[str, Any] | None:
    """Own this run's folder (``lock``) and apply the resume policy to it (``resume=auto``,
    see ``utils/job_folder.py``): returns the recorded results of a job already done, or a
    ``running`` record when a live process owns the folder, else sets ``ckpt_path`` to the
    checkpoint to continue from (if any) and returns None with the lock held.

    DDP children take rank 0's decision from the environment: by the time they start,
    rank 0 has already moved an old attempt away or begun writing the folder.
    """
    if not rank_zero:
        checkpoint = os.environ.get(RESUME_FROM_ENV) or None
    else:
        folder = Path(cfg.paths.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        owner = lock.acquire()
        if owner is not None:
            return busy_record(folder, owner, job_name(cfg), is_multirun())
        try:
            if HydraConfig.initialized():
                check_same_job(folder, list(HydraConfig.get().overrides.task))
            plan = plan_job(folder, str(cfg.get("resume") or "auto"))
        except BaseException:
            lock.release()
            raise
        if plan.action == "skip":
            lock.release()
            log.info("%s is done (metrics.json): kept as it is, not rerun.", folder)
            return plan.recorded
        lock.announce()
        checkpoint = plan.checkpoint
        os.environ[RESUME_FROM_ENV] = checkpoint or ""
    if checkpoint and not cfg.get("ckpt_path"):
        log.info("Resuming from %s", checkpoint)
        with open_dict(cfg):
            cfg.ckpt_path = checkpoint
    return None


def objective(results: dict[str, Any], monitor: str) -> float:
    """The value a sweeper (Optuna) optimises: the monitored metric of the best checkpoint."""
    value = results.get("val", {}).get("metrics", {}).get(monitor)
    return float(value) if value is not None else math.nan
