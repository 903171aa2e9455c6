"""The pipeline's stages: each an ordinary training run, composed as ``fracture_lit.train`` would.

Each stage is :func:`fracture_lit.tasks.training.run` in ``<run>/stage1`` and
``<run>/stage2``, so its folder is the same as a ``python -m fracture_lit.train`` run's.
Stages run in this process: multi-device (DDP) trainers are refused, since DDP would
relaunch the pipeline in every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.errors import UserError
from fracture_lit.tasks.training import run as run_training

__all__ = ["PipelineError", "Stage", "compose_stage", "run_stage"]

log = logging.getLogger("fracture_lit.pipeline")


class PipelineError(UserError, RuntimeError):
    """A stage cannot go on; the message says what to change."""


@dataclass
class Stage:
    """One stage's composed ``train`` config (resolved) and the Hydra node it came with,
    which ``tasks.training.run`` reads (job name, run mode) while the stage runs."""

    name: str
    cfg: DictConfig
    hydra_cfg: DictConfig

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)


@contextmanager
def _hydra_config(hydra_cfg: DictConfig) -> Iterator[None]:
    """Make ``hydra_cfg`` the global HydraConfig for a while, then restore the pipeline's.

    ``${hydra:...}`` interpolations (``recipe: ${recipes.${hydra:runtime.choices.model}}``
    in bone_break_subtypes, ``paper.model``) read the global HydraConfig, which inside this
    app is the pipeline's own, not the stage's.
    """
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(hydra_cfg)
    try:
        yield
    finally:
        if saved is not None:
            HydraConfig.instance().set_config(saved)
        else:  # called outside a Hydra app (tests): leave no stage config behind
            HydraConfig.instance().cfg = None


def compose_stage(name: str, overrides: Sequence[str], output_dir: Path) -> Stage:
    """Compose ``conf/train.yaml`` as ``python -m fracture_lit.train <overrides>`` would.

    The config is resolved now, under the stage's own Hydra node, so a typo in an override
    fails before any training and the stage's ``${hydra:...}`` values are its own.
    """
    try:
        cfg = hydra.compose(
            config_name="train", overrides=list(overrides), return_hydra_config=True
        )
    except Exception as error:
        raise PipelineError(
            f"{name}: cannot compose train with {list(overrides)}: {error}"
        ) from error
    if OmegaConf.select(cfg, "hydra.sweeper.params"):
        # Presets written as sweeps (e.g. bone_break_subtypes over three models) run as
        # their single composed config: the pipeline chains one detector into one model.
        # Pick another of the grid's models with e.g. stage2=[...,model=efficientnet_b0].
        log.info("%s: the preset is a sweep; running its single composed config.", name)
    hydra_cfg = OmegaConf.masked_copy(cfg, "hydra")
    with _hydra_config(hydra_cfg), open_dict(cfg):
        # As in a real run, the job's config does not carry the hydra node.
        del cfg["hydra"]
        cfg.paths.output_dir = str(output_dir)
        try:
            OmegaConf.resolve(cfg)
        except Exception as error:
            raise PipelineError(
                f"{name}: the config with {list(overrides)} does not resolve: {error}"
            ) from error
    trainer = cfg.trainer
    if "ddp" in str(trainer.get("strategy") or "") or _devices(trainer.get("devices")) > 1:
        raise PipelineError(
            f"{name}: the pipeline runs its stages in one process; use one device "
            "(trainer=default trainer.devices=1), or run the stages with fracture_lit.train."
        )
    return Stage(name, cfg, hydra_cfg)


def _devices(devices: Any) -> int:
    if isinstance(devices, int):
        return devices
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)
    return 1  # "auto", or a string like "1"; a multi-device string needs an explicit strategy


def run_stage(stage: Stage) -> dict[str, Any]:
    """``tasks.training.run`` on the stage's config; a failed stage stops the pipeline."""
    log.info("=== %s -> %s", stage.name, stage.output_dir)
    with _hydra_config(stage.hydra_cfg):
        results = run_training(stage.cfg)
    if results.get("status") != "done":
        raise PipelineError(f"{stage.name} failed: {results.get('error')}")
    return results
