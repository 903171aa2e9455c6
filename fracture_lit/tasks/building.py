"""The datamodule and model of a run, built from the config as every task builds them."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

__all__ = ["instantiate_data_and_model"]

log = logging.getLogger("fracture_lit.train")


def instantiate_data_and_model(cfg: DictConfig) -> tuple[Any, Any]:
    """``cfg.data`` and ``cfg.model`` instantiated; the model learns its classes from the
    datamodule and its monitored metric from ``cfg.monitor`` / ``cfg.monitor_mode``."""
    import hydra

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
    return datamodule, model
