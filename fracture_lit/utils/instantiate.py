"""Instantiate the callbacks and loggers groups (each a dict of ``_target_`` blocks)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None, **extra: Any) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group; ``extra`` overrides per key."""
    if not group:
        return []
    objects = []
    for key, conf in group.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.debug("Instantiating %s <%s>", key, conf._target_)
            objects.append(hydra.utils.instantiate(conf, **extra.get(key, {})))
    return objects
