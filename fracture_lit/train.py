"""Train a fracture classifier: ``python -m fracture_lit.train [overrides]``.

Composes ``conf/train.yaml``, instantiates the datamodule, model, callbacks, loggers and
trainer from their ``_target_`` blocks, fits, then evaluates the best checkpoint on the
validation and test splits and prints the table. ``-m`` runs a sweep.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.errors import check_command_line, clean_exit

log = logging.getLogger("fracture_lit.train")
register_resolvers()


def _job_name(cfg: DictConfig) -> str:
    """A sweep job's overrides (``model=resnet18,seed=1``), or the task name."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = HydraConfig.get().job.override_dirname
        if overrides:
            return overrides
    return str(cfg.task_name)


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def wandb_settings(cfg: DictConfig) -> dict[str, Any]:
    """Name, group and (on resume) id of the job's W&B run.

    * name: the job's overrides (``model=resnet18,seed=1``), so sweep runs tell themselves
      apart in the dashboard;
    * group: ``logger.wandb.group`` when set, else the task name, plus the sweep's id in a
      multirun, so two sweeps of the same task never share a group;
    * id: resuming from a checkpoint continues the W&B run that wrote it.
    """
    conf = cfg.logger.wandb
    group = conf.get("group")
    if not group:
        group = str(cfg.task_name)
        if _is_multirun():
            from hydra.core.hydra_config import HydraConfig

            group = f"{group}-{Path(HydraConfig.get().sweep.dir).name}"
    out: dict[str, Any] = {"name": conf.get("name") or _job_name(cfg), "group": group}
    if cfg.get("ckpt_path") and not conf.get("id"):
        run_id = checkpoint_wandb_id(cfg.ckpt_path)
        if run_id:
            out.update(id=run_id, resume="allow")
            log.info("W&B: resuming run %s from %s", run_id, cfg.ckpt_path)
    return out


def checkpoint_wandb_id(ckpt_path: str) -> str | None:
    """The W&B run id a checkpoint was written under (read with weights_only=True)."""
    import torch

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, ValueError):
        return None  # the fit itself reports an unreadable checkpoint
    return (checkpoint.get("fracture_lit") or {}).get("wandb_run_id")


def _loggers(cfg: DictConfig) -> list[Any]:
    from fracture_lit.utils.environment import configure_wandb_mode
    from fracture_lit.utils.instantiate import instantiate_group

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
    from fracture_lit.callbacks.resume import ResumableTraining, trainer_plugins
    from fracture_lit.utils.environment import (
        resolve_trainer_overrides,
        skip_deterministic_memory_fill,
    )
    from fracture_lit.utils.instantiate import instantiate_group

    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    log.info("Instantiating model <%s> (%s)", cfg.model._target_, cfg.model.backbone)
    model = hydra.utils.instantiate(
        cfg.model,
        num_classes=datamodule.num_classes,
        class_names=datamodule.classes,
        monitor=cfg.monitor,
        monitor_mode=cfg.monitor_mode,
    )
    # Always there: exact resume and preemption are part of every run (callbacks/resume.py).
    callbacks = [
        *instantiate_group(cfg.get("callbacks")),
        ResumableTraining(seed=cfg.get("seed")),
        *extra_callbacks,
    ]
    loggers = _loggers(cfg)
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
    from fracture_lit.utils.gpu_pool import pin_local_gpus
    from fracture_lit.validation import validate_train

    # First, before anything asks CUDA for devices: a parallel local sweep job's own GPUs.
    pinned_gpus = pin_local_gpus(cfg)
    validate_train(cfg)  # every value checked before data is indexed or a model built
    import lightning as L
    import torch

    from fracture_lit.utils.distributed import pin_ddp_children_to_this_job
    from fracture_lit.utils.environment import route_lightning_logs_through_hydra

    route_lightning_logs_through_hydra()

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    datamodule, model, trainer, loggers = instantiate_run(cfg)
    if trainer.is_global_zero:
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {"backbone": cfg.model.backbone, "classes": datamodule.classes}
    if pinned_gpus:
        results["gpus"] = pinned_gpus
    ckpt_path: str | None = None
    if trainer.world_size > 1:
        pin_ddp_children_to_this_job(output_dir)
    if cfg.get("train", True):
        with _output_errors_named(trainer, cfg.get("ckpt_path")):
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
    return results


_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def _output_errors_named(trainer: Any, ckpt_path: str | None = None) -> Iterator[None]:
    """A checkpoint or log that cannot be written (disk full, read-only) mid-run becomes one
    line naming the file and the epoch; what was written before stays in the run folder.
    A resumed checkpoint whose weights do not fit the configured model is one line too."""
    from fracture_lit.errors import OutputNotWritableError

    try:
        yield
    except RuntimeError as error:
        if "Error(s) in loading state_dict" not in str(error) or not ckpt_path:
            raise
        from fracture_lit.models.loading import CheckpointError

        detail = next((ln.strip() for ln in str(error).splitlines() if "size mismatch" in ln), "")
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: its weights do not fit the configured model "
            f"({detail or 'missing or unexpected keys'}). Resume with the settings it was "
            "trained with (model=, model.in_chans=, data.classes= of its run's config.yaml)."
        ) from error
    except OSError as error:
        if error.errno not in _OUTPUT_ERRNOS:
            raise
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        target = error.filename or (f"a checkpoint in {folder}" if folder else "an output file")
        raise OutputNotWritableError(
            f"could not write {target} at epoch {trainer.current_epoch} "
            f"({error.strerror}). Free space or make the folder writable, then resume with "
            "ckpt_path=<run folder>/checkpoints/last.ckpt; the checkpoints written before "
            "are intact."
        ) from error


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train with failure bookkeeping: the job's status always lands in metrics.json.

    In a sweep a failed job is recorded and the sweep goes on; a single run re-raises.
    """
    from fracture_lit.callbacks.checkpoint import drop_last_when_done
    from fracture_lit.callbacks.resume import TrainingPreempted, stop_for_requeue
    from fracture_lit.results.console import print_summary
    from fracture_lit.results.folders import write_metrics
    from fracture_lit.results.html_run import try_write_run_report
    from fracture_lit.results.job_record import job_record
    from fracture_lit.utils.distributed import (
        global_rank,
        job_environment,
        release_process_group,
    )
    from fracture_lit.utils.job_lock import JobFolderLock

    output_dir = Path(cfg.paths.output_dir)
    rank_zero = global_rank() == 0
    lock = JobFolderLock(output_dir)  # one owner per job folder (utils/job_lock.py)
    recorded = prepare_job_folder(cfg, rank_zero, lock)
    if recorded is not None:
        return recorded
    results: dict[str, Any] = {"job": _job_name(cfg), "backbone": cfg.model.get("backbone")}
    is_multirun = _is_multirun()
    preempted: TrainingPreempted | None = None

    def preemption(error: BaseException, record: dict[str, Any]) -> None:
        if isinstance(error, TrainingPreempted):
            record.pop("traceback", None)
            record.update(status="preempted", error=str(error), resume_from=error.checkpoint)

    def close_and_write(record: dict[str, Any]) -> None:
        _finish_wandb()
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
        if not is_multirun:
            raise
        log.error("Job failed, the sweep goes on: %s", results["error"])
    if preempted is not None:
        stop_for_requeue(preempted)
    if rank_zero and results["status"] == "done" and "val" in results:
        print_summary(results, title=f"fracture_lit · {results['job']}")
        log.info("Run folder: %s", output_dir)
        if results.get("best_model_path"):
            log.info("Best checkpoint: %s", results["best_model_path"])
    return results


def prepare_job_folder(cfg: DictConfig, rank_zero: bool, lock: Any) -> dict[str, Any] | None:
    """Own this run's folder (``lock``, a :class:`~fracture_lit.utils.job_lock.JobFolderLock`)
    and apply the resume policy to it (``resume=auto``, see ``utils/job_folder.py``):
    returns the recorded results of a job already done, or a ``running`` record when a live
    process owns the folder, else sets ``ckpt_path`` to the checkpoint to continue from (if
    any) and returns None with the lock held.

    DDP children take rank 0's decision from the environment: by the time they start,
    rank 0 has already moved an old attempt away or begun writing the folder.
    """
    import os

    from hydra.core.hydra_config import HydraConfig

    from fracture_lit.utils.job_folder import check_same_job, plan_job
    from fracture_lit.utils.job_lock import busy_record

    key = "FRACTURE_LIT_RESUME_FROM"
    if not rank_zero:
        checkpoint = os.environ.get(key) or None
    else:
        folder = Path(cfg.paths.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        owner = lock.acquire()
        if owner is not None:
            return busy_record(folder, owner, _job_name(cfg), _is_multirun())
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
        os.environ[key] = checkpoint or ""
    if checkpoint and not cfg.get("ckpt_path"):
        log.info("Resuming from %s", checkpoint)
        with open_dict(cfg):
            cfg.ckpt_path = checkpoint
    return None


def _finish_wandb() -> None:
    """Close a live W&B run so the next sweep job starts its own instead of merging; an
    offline run says how to upload it."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        run = wandb.run
        if run is not None:
            offline = bool(run.offline)
            run_dir = Path(run.dir).parent
            try:
                wandb.finish()
            except Exception as error:  # noqa: BLE001 - closing must not hide how the job ended
                # SLURM signals every process of a preempted step, W&B's service included.
                log.warning(
                    "W&B could not close the run cleanly (%r); its files in %s are "
                    "kept and a resumed job continues the same run.",
                    error,
                    run_dir,
                )
                return
            if offline:
                log.info("W&B run recorded offline; upload it with: wandb sync %s", run_dir)


def objective(results: dict[str, Any], monitor: str) -> float:
    """The value a sweeper (Optuna) optimises: the monitored metric of the best checkpoint."""
    value = results.get("val", {}).get("metrics", {}).get(monitor)
    return float(value) if value is not None else math.nan


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    with clean_exit():
        return objective(run(cfg), cfg.monitor)


if __name__ == "__main__":
    check_command_line("train")
    main()
