"""Checks of one config group each: ``data/``, ``trainer/``, ``model/`` and what is monitored.

Allowed values come from the code that interprets them (resize modes from the cache,
presets from the transforms, precisions from the environment, ...), so a value added there
is allowed here without a second list. A dataset's own keys are checked by its DataModule
(:meth:`~fracture_lit.data.base.FractureDataModule.check_config`).
"""

from __future__ import annotations

import os
from typing import Any

import hydra
import torch
from omegaconf import ListConfig

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.cache import RESIZE_MODES
from fracture_lit.data.image_limits import OPENCV_MAX_PIXELS
from fracture_lit.data.loaders import BALANCE_CHOICES
from fracture_lit.data.transforms import NORMALIZATIONS, PREPROCESS, augment_preset_names
from fracture_lit.errors import ConfigError, nearest
from fracture_lit.metrics import METRIC_KEYS
from fracture_lit.models.factory import check_backbone_name, check_has_weights
from fracture_lit.models.weights import IMAGENET, check_weights_file, resolve_weights
from fracture_lit.stats.temperature import CALIBRATE_CHOICES
from fracture_lit.utils.environment import ACCELERATORS
from fracture_lit.utils.precision import PRECISIONS, refuse_half_weights
from fracture_lit.validation.checkers import (
    MISSING,
    check_choice,
    check_float,
    check_int,
    check_path_exists,
    get_value,
)

__all__ = [
    "monitorable_metrics",
    "validate_data",
    "validate_model",
    "validate_monitor",
    "validate_trainer",
]

#: Monitor directions of checkpointing, early stopping and sweeps.
MONITOR_MODES = ("min", "max")


def monitorable_metrics() -> list[str]:
    """What FractureClassifier logs and a checkpoint, early stopping or sweep can follow."""
    names = [f"val/{key}" for key in METRIC_KEYS] + ["val/loss", "train/loss"]
    names += [f"val/youden_{k}" for k in ("threshold", "sensitivity", "specificity", "j")]
    return names


# --------------------------------------------------------------------------- data


def validate_data(cfg: Any, prefix: str = "data", *, devices: int = 1) -> None:
    """Ranges and combinations of the ``data/`` group of ``cfg``: the keys every dataset
    shares, then the dataset's own (its DataModule's ``check_config``)."""

    def key(name: str) -> str:
        return f"{prefix}.{name}"

    check_int(cfg, key("image_size"), 16, 4096, fix="e.g. data.image_size=224.")
    batch = check_int(cfg, key("batch_size"), 1, fix="e.g. data.batch_size=32.")
    check_int(cfg, key("eval_batch_size"), 1, optional=True)
    if batch is not None and devices > 1 and batch < devices:
        raise ConfigError(
            key("batch_size"),
            batch,
            f"the global batch is split across {devices} devices, each needs at least one image",
            f"Use data.batch_size>={devices}.",
        )
    check_int(cfg, key("num_workers"), 0)
    check_int(cfg, key("decode_workers"), 1, optional=True)
    check_choice(cfg, key("resize_mode"), RESIZE_MODES)
    check_choice(cfg, key("normalize"), NORMALIZATIONS)
    check_choice(cfg, key("balance"), BALANCE_CHOICES)
    check_float(cfg, key("augment_strength"), 0.0)
    val = check_float(cfg, key("val_fraction"), 0.0, 1.0, high_open=True) or 0.0
    test = check_float(cfg, key("test_fraction"), 0.0, 1.0, high_open=True) or 0.0
    if val + test >= 1.0:
        raise ConfigError(
            f"{key('val_fraction')}+{key('test_fraction')}",
            f"{val:g}+{test:g}",
            "leaves no training images",
            "Keep their sum below 1.",
        )
    n_folds = check_int(cfg, key("n_folds"), 2, optional=True)
    fold = check_int(cfg, key("fold"), 0, None if n_folds is None else n_folds - 1, optional=True)
    if fold is not None and n_folds is None:
        raise ConfigError(key("fold"), fold, "needs data.n_folds", "Set data.n_folds=5 (say).")
    check_float(cfg, key("max_bad_fraction"), 0.0, 1.0)
    check_int(
        cfg,
        key("max_image_pixels"),
        1,
        OPENCV_MAX_PIXELS,
        optional=True,
        fix="The default is Pillow's bomb guard, 89478485.",
    )
    check_int(cfg, key("split_seed"), optional=True)
    check_path_exists(cfg, key("subset_file"))
    check_path_exists(cfg, key("manifest"))
    _check_transforms(cfg, prefix)
    dataset = _dataset_class(cfg, prefix)
    if dataset is not None:
        dataset.check_config(get_value(cfg, prefix), prefix)


def _dataset_class(cfg: Any, prefix: str) -> type[FractureDataModule] | None:
    """The DataModule ``<prefix>._target_`` names (importing it registers a user's dataset)."""
    target = get_value(cfg, f"{prefix}._target_")
    if not isinstance(target, str):
        return None
    try:
        found = hydra.utils.get_class(target)
    except Exception:  # noqa: BLE001 - instantiating it reports a bad _target_ with the cause
        return None
    return found if isinstance(found, type) and issubclass(found, FractureDataModule) else None


def _check_transforms(cfg: Any, prefix: str) -> None:
    def names(value: Any) -> list[str]:
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, ListConfig | list) else [str(value)]

    augment = [*augment_preset_names(), "none"]
    for item, allowed in (("augment", augment), ("preprocess", sorted(PREPROCESS))):
        value = get_value(cfg, f"{prefix}.{item}")
        if value is MISSING:
            continue
        for name in names(value):
            if name not in allowed:
                raise ConfigError(
                    f"{prefix}.{item}",
                    value,
                    f"{name!r} is not one of {', '.join(allowed)}",
                    "A list is allowed, e.g. [flip_rotate,gamma].",
                )


# --------------------------------------------------------------------------- trainer


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def validate_trainer(cfg: Any) -> int:
    """trainer.*: epochs, intervals, and what this machine can run. Returns the device count."""
    max_epochs = check_int(
        cfg, "trainer.max_epochs", 1, extra=(-1,), optional=True, fix="-1 trains without a limit."
    )
    min_epochs = check_int(cfg, "trainer.min_epochs", 0, optional=True)
    if min_epochs is not None and max_epochs not in (None, -1) and min_epochs > max_epochs:
        raise ConfigError(
            "trainer.min_epochs", min_epochs, f"is more than trainer.max_epochs={max_epochs}"
        )
    check_int(cfg, "trainer.max_steps", 1, extra=(-1,), optional=True)
    check_int(cfg, "trainer.check_val_every_n_epoch", 1, optional=True)
    check_int(cfg, "trainer.log_every_n_steps", 1, optional=True)
    check_int(cfg, "trainer.accumulate_grad_batches", 1, optional=True)
    check_float(cfg, "trainer.gradient_clip_val", 0.0, optional=True)
    for limit in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = get_value(cfg, f"trainer.{limit}")
        if isinstance(value, float):
            check_float(cfg, f"trainer.{limit}", 0.0, 1.0)
        else:
            check_int(cfg, f"trainer.{limit}", 0, optional=True)
    accelerator = check_choice(cfg, "trainer.accelerator", ACCELERATORS, optional=True)
    precision = get_value(cfg, "trainer.precision")
    if precision is not MISSING and precision is not None:
        text = str(precision)
        if text not in PRECISIONS:
            raise ConfigError(
                "trainer.precision", precision, f"must be one of {', '.join(PRECISIONS)}"
            )
        refuse_half_weights(precision)
    gpus = _cuda_count()
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            "this machine has no CUDA GPU",
            "Use trainer.accelerator=cpu (or auto).",
        )
    on_gpu = gpus > 0 and accelerator in ("gpu", "cuda", "auto", None)
    if precision is not MISSING and str(precision) in ("16", "16-mixed", "16-true") and not on_gpu:
        raise ConfigError(
            "trainer.precision",
            precision,
            "float16 needs a CUDA GPU and this run is on the CPU",
            "Use trainer.precision=32-true (or bf16-mixed, or auto).",
        )
    return _device_count(get_value(cfg, "trainer.devices"), gpus, on_gpu)


def _device_count(devices: Any, gpus: int, on_gpu: bool) -> int:
    """How many processes ``trainer.devices`` asks for on this machine (checked)."""
    if devices is MISSING or devices in (None, "auto"):
        return 1
    if isinstance(devices, ListConfig | list):
        count = len(devices)
        if on_gpu and any(not isinstance(d, int) or d < 0 or d >= gpus for d in devices):
            raise ConfigError("trainer.devices", devices, f"this machine has GPUs 0..{gpus - 1}")
        return count
    if isinstance(devices, bool) or not isinstance(devices, int) or devices == 0 or devices < -1:
        raise ConfigError(
            "trainer.devices", devices, "must be a positive integer, -1 (all), auto, or a list"
        )
    if devices == -1:
        return max(gpus, 1) if on_gpu else os.cpu_count() or 1
    if on_gpu and devices > gpus:
        raise ConfigError(
            "trainer.devices",
            devices,
            f"this machine has {gpus} CUDA GPU(s)",
            f"Use trainer.devices<={gpus}.",
        )
    return devices


# --------------------------------------------------------------------------- model, monitor


def validate_model(cfg: Any) -> None:
    check_int(cfg, "model.in_chans", 1, 3)
    check_float(cfg, "model.drop_rate", 0.0, 1.0, high_open=True)
    check_float(cfg, "model.label_smoothing", 0.0, 1.0, high_open=True)
    check_int(cfg, "model.n_bootstrap", 0)
    check_choice(cfg, "model.calibrate", CALIBRATE_CHOICES, fix="e.g. model.calibrate=temperature.")
    _check_weights(cfg)
    check_float(cfg, "model.optimizer.lr", 0.0, 10.0, low_open=True, fix="e.g. 1e-3.")
    check_float(cfg, "model.optimizer.weight_decay", 0.0)
    check_float(cfg, "model.optimizer.momentum", 0.0, 1.0)
    weights = get_value(cfg, "model.class_weights")
    if weights not in (MISSING, None, "balanced"):
        ok = isinstance(weights, ListConfig | list) and all(
            isinstance(w, int | float) and not isinstance(w, bool) and w > 0 for w in weights
        )
        if not ok:
            raise ConfigError(
                "model.class_weights",
                weights,
                "must be null, balanced, or a list of positive numbers (one per class)",
            )
    backbone = get_value(cfg, "model.backbone")
    if isinstance(backbone, str):
        check_backbone_name(backbone)


def _check_weights(cfg: Any) -> None:
    """``model.weights``: none, imagenet (for a backbone that has them) or an existing file;
    the deprecated ``model.pretrained`` is null, true or false."""
    pretrained = get_value(cfg, "model.pretrained")
    if pretrained not in (MISSING, None) and not isinstance(pretrained, bool):
        raise ConfigError(
            "model.pretrained", pretrained, "must be true, false or null",
            "It is deprecated: use model.weights=none|imagenet|/path/to/weights.pth.",
        )  # fmt: skip
    weights, path = get_value(cfg, "model.weights"), get_value(cfg, "model.pretrained_file")
    start = resolve_weights(
        None if weights is MISSING else weights,
        None if pretrained is MISSING else pretrained,
        None if path is MISSING else path,
    )
    if start.file is not None:
        check_weights_file(start.file)
    backbone = get_value(cfg, "model.backbone")
    if start.kind == IMAGENET and isinstance(backbone, str):
        check_backbone_name(backbone)
        check_has_weights(backbone)


def validate_monitor(cfg: Any) -> None:
    names = monitorable_metrics()
    check_choice(cfg, "monitor_mode", MONITOR_MODES)
    for key in (
        "monitor",
        "callbacks.model_checkpoint.monitor",
        "callbacks.early_stopping.monitor",
    ):
        value = get_value(cfg, key)
        if value is MISSING or value is None:
            continue
        if value not in names:
            guess = nearest(str(value), names)
            hint = f" (did you mean {guess}?)" if guess else ""
            raise ConfigError(
                key,
                value,
                f"the model does not log this metric{hint}",
                f"It logs: {', '.join(names)}.",
            )
    check_int(cfg, "callbacks.early_stopping.patience", 0)
    check_float(cfg, "callbacks.early_stopping.min_delta", 0.0)
    check_int(cfg, "callbacks.model_checkpoint.save_top_k", -1)
