"""One validation step per entry point, run before any data is indexed or a model is built.

Hydra checks that a key exists (``errors.check_command_line`` adds the nearest valid key);
these check what the values *mean*, through the typed checks of
:mod:`~fracture_lit.validation.checkers` and the group checks of
:mod:`~fracture_lit.validation.groups`. The first problem is raised as
:class:`~fracture_lit.errors.ConfigError`; nothing heavy has run yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from fracture_lit.errors import ConfigError
from fracture_lit.stats.splits import SPLITS
from fracture_lit.utils.environment import DEVICE_CHOICES
from fracture_lit.validation.checkers import (
    MISSING,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_writable_dir,
    check_writable_file,
    get_value,
)
from fracture_lit.validation.checkpoints import check_checkpoint_backbone, check_checkpoint_path
from fracture_lit.validation.groups import (
    validate_data,
    validate_model,
    validate_monitor,
    validate_trainer,
)
from fracture_lit.validation.localization import validate_localization

__all__ = [
    "validate_audit",
    "validate_eval",
    "validate_export",
    "validate_pipeline",
    "validate_predict",
    "validate_serve",
    "validate_train",
]

#: ``audit.split``: audit the dataset's given split, or the one this project makes.
AUDIT_SPLITS = ("given", "ours")


def validate_train(cfg: DictConfig) -> None:
    """Everything ``python -m fracture_lit.train`` is given, before data or model exist."""
    check_int(cfg, "seed", optional=True)
    check_bool(cfg, "train")
    check_bool(cfg, "test")
    devices = validate_trainer(cfg)
    validate_data(cfg, devices=devices)
    validate_model(cfg)
    validate_monitor(cfg)
    validate_localization(cfg)
    check_checkpoint_backbone(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the run folder)")
    dirpath = get_value(cfg, "callbacks.model_checkpoint.dirpath")
    if dirpath not in (MISSING, None):
        check_writable_dir(dirpath, "callbacks.model_checkpoint.dirpath")
    cache_dir = get_value(cfg, "data.cache_dir")
    if get_value(cfg, "data.cache") is True and cache_dir not in (MISSING, None):
        check_writable_dir(cfg.data.cache_dir, "data.cache_dir")


def _check_output(cfg: Any, entry: str) -> None:
    """``output=<file>`` when given, else the entry's folder under ``paths.output_dir``."""
    if get_value(cfg, "output") not in (MISSING, None):
        check_writable_file(cfg.output, "output")
    else:
        check_writable_dir(cfg.paths.output_dir, f"paths.output_dir (the {entry} folder)")


def _check_threshold(cfg: Any) -> None:
    check_float(cfg, "threshold", 0.0, 1.0, optional=True, fix="null uses the checkpoint's.")


def validate_eval(cfg: DictConfig) -> None:
    check_checkpoint_path(cfg)
    check_choice(cfg, "split", (*SPLITS, "all"))
    _check_threshold(cfg)
    check_int(cfg, "n_bootstrap", 0)
    check_int(cfg, "batch_size", 1)
    check_choice(cfg, "device", DEVICE_CHOICES)
    check_int(cfg, "gradcam.n_fixed", 0)
    check_int(cfg, "gradcam.n_worst", 0)
    validate_data(cfg)
    validate_localization(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the evaluation folder)")


def validate_predict(cfg: DictConfig) -> None:
    check_checkpoint_path(cfg)
    value = get_value(cfg, "input")
    if not Path(str(value)).expanduser().exists():
        raise ConfigError(
            "input", value, "no such file or folder", "Pass an image, a DICOM or a folder."
        )
    _check_threshold(cfg)
    check_int(cfg, "batch_size", 1)
    check_choice(cfg, "device", DEVICE_CHOICES)
    window = get_value(cfg, "window")
    if window not in (MISSING, None) and not (
        isinstance(window, ListConfig | list)
        and len(window) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in window)
        and window[1] > 0
    ):
        raise ConfigError("window", window, "must be [centre, width] with width > 0, or null")
    check_int(cfg, "max_image_pixels", 1, optional=True)
    validate_localization(cfg, regions_key="regions", root_key=None)
    _check_output(cfg, "predict")


def validate_export(cfg: DictConfig) -> None:
    """ckpt_path and format are judged by export itself, inside its export.json record."""
    check_int(cfg, "opset", 7, 30)
    check_bool(cfg, "dynamo")
    check_bool(cfg, "check")
    check_int(cfg, "batch_size", 1)
    check_float(cfg, "atol", 0.0, low_open=True)
    _check_output(cfg, "export")


def validate_audit(cfg: DictConfig) -> None:
    check_int(cfg, "seed", optional=True)
    check_choice(cfg, "audit.split", AUDIT_SPLITS)
    check_int(cfg, "audit.max_hamming", 0, 64)
    check_int(cfg, "audit.fine_max_hamming", 0, 256, optional=True)
    check_int(cfg, "audit.show_groups", 0)
    validate_data(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the audit folder)")


def validate_pipeline(cfg: DictConfig) -> None:
    """The pipeline's own keys; each stage's train config is validated when it runs."""
    for key in ("stage1", "stage2", "common"):
        value = get_value(cfg, key)
        if value is MISSING:
            continue
        if not isinstance(value, ListConfig | list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                key,
                value,
                "must be a list of train overrides",
                f"e.g. '{key}=[\"model=resnet18\"]'",
            )
    _check_threshold(cfg)
    check_int(cfg, "min_per_class", 1)
    check_int(cfg, "batch_size", 1)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the pipeline folder)")


def validate_serve(cfg: DictConfig) -> None:
    """For the serve entry point: the keys it has among the usual ones."""
    if get_value(cfg, "ckpt_path") is not MISSING:
        check_checkpoint_path(cfg)
    _check_threshold(cfg)
    check_int(cfg, "port", 0, 65535)
    check_int(cfg, "batch_size", 1)
    check_float(cfg, "max_upload_mb", 0.0, low_open=True)
    check_int(cfg, "max_image_pixels", 1, optional=True)
    check_choice(cfg, "device", DEVICE_CHOICES)
