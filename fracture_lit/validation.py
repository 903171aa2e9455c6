"""One validation step per entry point, run before any data is indexed or a model is built.

Hydra checks that a key exists (``errors.check_command_line`` adds the nearest valid key);
this module checks what the value *means*: its type, its range, its combination with other
values, what this machine can provide (precision, devices) and that every output location
can be written. The first problem is raised as :class:`~fracture_lit.errors.ConfigError`,
whose one line names the key, the bad value and what is allowed; nothing heavy has run yet.

``validate_train`` / ``validate_eval`` / ``validate_predict`` / ``validate_export`` /
``validate_audit`` / ``validate_pipeline`` / ``validate_serve`` are the entry points'; the
small ``check_*`` helpers are for any other config.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from fracture_lit.errors import ConfigError, OutputNotWritableError

__all__ = [
    "check_checkpoint_path",
    "check_choice",
    "check_float",
    "check_int",
    "check_writable_dir",
    "check_writable_file",
    "monitorable_metrics",
    "validate_audit",
    "validate_data",
    "validate_eval",
    "validate_export",
    "validate_pipeline",
    "validate_predict",
    "validate_serve",
    "validate_train",
]

_MISSING = object()
PRECISIONS = (
    "auto",
    "32",
    "32-true",
    "64",
    "64-true",
    "16",
    "16-mixed",
    "16-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------- primitives


def _get(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (interpolations resolved), or ``_MISSING``."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "any number"


def check_int(
    cfg: Any,
    key: str,
    low: int | None = None,
    high: int | None = None,
    *,
    optional: bool = False,
    extra: Sequence[int] = (),
    fix: str = "",
) -> int | None:
    """An integer in [low, high] (or one of ``extra``); null only when ``optional``."""
    value = _get(cfg, key)
    if value is _MISSING or (value is None and optional):
        return None
    allowed = f"an integer {_range_text(low, high, False, False)}"
    if extra:
        allowed += f" (or {', '.join(str(e) for e in extra)})"
    if optional:
        allowed += ", or null"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, value, f"must be {allowed}", fix)
    if value in extra:
        return value
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(key, value, f"must be {allowed}", fix)
    return value


def check_float(
    cfg: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    fix: str = "",
) -> float | None:
    """A number in the given range; null only when ``optional``."""
    value = _get(cfg, key)
    if value is _MISSING or (value is None and optional):
        return None
    allowed = f"a number {_range_text(low, high, low_open, high_open)}"
    if optional:
        allowed += ", or null"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, value, f"must be {allowed}", fix)
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high or number != number:  # NaN is never in range
        raise ConfigError(key, value, f"must be {allowed}", fix)
    return number


def check_choice(
    cfg: Any, key: str, choices: Sequence[Any], *, optional: bool = False, fix: str = ""
) -> Any:
    value = _get(cfg, key)
    if value is _MISSING or (value is None and optional):
        return None
    if value not in choices:
        import difflib

        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        shown = ", ".join(str(c) for c in choices) + (", or null" if optional else "")
        raise ConfigError(key, value, f"must be one of {shown}{hint}", fix)
    return value


def check_bool(cfg: Any, key: str) -> bool | None:
    value = _get(cfg, key)
    if value is _MISSING:
        return None
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def _probe_write(directory: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test_"):
        pass


def check_writable_dir(path: Any, key: str) -> Path:
    """Create ``path`` if needed and prove a file can be written in it."""
    folder = Path(str(path)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputNotWritableError(
            f"{key}={folder}: this is a file, not a folder. Move it away or choose another "
            f"folder with {key}=..."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as error:
        raise OutputNotWritableError(
            f"{key}={folder}: cannot write there ({error.strerror or error}). Choose a "
            f"writable folder with {key}=... (nothing has run yet)."
        ) from error
    return folder


def check_writable_file(path: Any, key: str) -> Path:
    """The file's folder is writable and the path is not a folder."""
    target = Path(str(path)).expanduser()
    if target.is_dir():
        raise OutputNotWritableError(
            f"{key}={target}: this is a folder; give a file name, e.g. {target / 'out'}"
        )
    check_writable_dir(target.parent, f"{key} (its folder)")
    return target


def check_checkpoint_path(cfg: Any, key: str = "ckpt_path", *, required: bool = True) -> None:
    """Refuse a missing or unsafe checkpoint with loading's one line (weights_only=True)."""
    value = _get(cfg, key)
    if value is _MISSING or value is None:
        if required:
            raise ConfigError(key, value, "a checkpoint is required", f"Pass {key}=<file>.ckpt.")
        return
    from fracture_lit.inference.ensemble import checkpoint_paths
    from fracture_lit.models.loading import check_checkpoint

    # One checkpoint, a list of them or a sweep folder (an ensemble): each is checked.
    for path in checkpoint_paths(value):
        check_checkpoint(path)


def _check_path_exists(cfg: Any, key: str, what: str = "file") -> None:
    value = _get(cfg, key)
    if value is _MISSING or value is None:
        return
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise ConfigError(key, value, f"no such {what}", f"Fix the path or set {key}=null.")


# --------------------------------------------------------------------------- groups


def monitorable_metrics() -> list[str]:
    """What FractureClassifier logs and a checkpoint, early stopping or sweep can follow."""
    from fracture_lit.metrics import METRIC_KEYS

    names = [f"val/{key}" for key in METRIC_KEYS] + ["val/loss", "train/loss"]
    names += [f"val/youden_{k}" for k in ("threshold", "sensitivity", "specificity", "j")]
    return names


def validate_data(cfg: Any, prefix: str = "data", *, devices: int = 1) -> None:
    """Ranges and combinations of the ``data/`` group (any dataset) of ``cfg``."""
    from fracture_lit.data.cache import RESIZE_MODES
    from fracture_lit.data.image_limits import OPENCV_MAX_PIXELS

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
    check_choice(cfg, key("normalize"), ("imagenet", "unit", "centered"))
    check_choice(cfg, key("balance"), ("none", "sampler"))
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
    check_int(cfg, key("n_per_class"), 2, optional=True)
    classes = _get(cfg, key("classes"))
    if classes not in (_MISSING, None):
        names = list(classes) if isinstance(classes, ListConfig | list | tuple) else None
        if (
            names is None
            or len(names) < 2
            or not all(isinstance(n, str) and n.strip() for n in names)
            or len({str(n).casefold() for n in names}) != len(names)
        ):
            raise ConfigError(
                key("classes"),
                classes,
                "must be a list of at least two different class (folder) names, or null",
                "e.g. data.classes=[intact,fractured].",
            )
    positive = _get(cfg, key("positive_class"))
    if positive not in (_MISSING, None):
        if not isinstance(positive, str) or not positive.strip():
            raise ConfigError(key("positive_class"), positive, "must be a class name, or null")
        if classes not in (_MISSING, None) and positive.casefold() not in {
            str(c).casefold() for c in classes
        }:
            raise ConfigError(
                key("positive_class"),
                positive,
                f"is not one of data.classes={list(classes)}",
            )
    _check_path_exists(cfg, key("subset_file"))
    _check_path_exists(cfg, key("manifest"))
    _check_transforms(cfg, prefix)


def _check_transforms(cfg: Any, prefix: str) -> None:
    from fracture_lit.data.transforms import PREPROCESS, _augment_presets

    def names(value: Any) -> list[str]:
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, ListConfig | list) else [str(value)]

    presets = sorted(_augment_presets(64, 1.0))
    for item, allowed in (("augment", [*presets, "none"]), ("preprocess", sorted(PREPROCESS))):
        value = _get(cfg, f"{prefix}.{item}")
        if value is _MISSING:
            continue
        for name in names(value):
            if name not in allowed:
                raise ConfigError(
                    f"{prefix}.{item}",
                    value,
                    f"{name!r} is not one of {', '.join(allowed)}",
                    "A list is allowed, e.g. [flip_rotate,gamma].",
                )


def _cuda_count() -> int:
    import torch

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
        value = _get(cfg, f"trainer.{limit}")
        if isinstance(value, float):
            check_float(cfg, f"trainer.{limit}", 0.0, 1.0)
        else:
            check_int(cfg, f"trainer.{limit}", 0, optional=True)
    accelerator = check_choice(cfg, "trainer.accelerator", ACCELERATORS, optional=True)
    precision = _get(cfg, "trainer.precision")
    if precision is not _MISSING and precision is not None:
        text = str(precision)
        if text not in PRECISIONS:
            raise ConfigError(
                "trainer.precision", precision, f"must be one of {', '.join(PRECISIONS)}"
            )
    gpus = _cuda_count()
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            "this machine has no CUDA GPU",
            "Use trainer.accelerator=cpu (or auto).",
        )
    on_gpu = gpus > 0 and accelerator in ("gpu", "cuda", "auto", None)
    if precision is not _MISSING and str(precision) in ("16", "16-mixed", "16-true") and not on_gpu:
        raise ConfigError(
            "trainer.precision",
            precision,
            "float16 needs a CUDA GPU and this run is on the CPU",
            "Use trainer.precision=32-true (or bf16-mixed, or auto).",
        )
    devices = _get(cfg, "trainer.devices")
    if devices is _MISSING or devices in (None, "auto"):
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


def validate_model(cfg: Any) -> None:
    check_int(cfg, "model.in_chans", 1, 3)
    check_float(cfg, "model.drop_rate", 0.0, 1.0, high_open=True)
    check_float(cfg, "model.label_smoothing", 0.0, 1.0, high_open=True)
    check_int(cfg, "model.n_bootstrap", 0)
    check_choice(
        cfg, "model.calibrate", ("none", "temperature"), fix="e.g. model.calibrate=temperature."
    )
    check_bool(cfg, "model.pretrained")
    check_float(cfg, "model.optimizer.lr", 0.0, 10.0, low_open=True, fix="e.g. 1e-3.")
    check_float(cfg, "model.optimizer.weight_decay", 0.0)
    check_float(cfg, "model.optimizer.momentum", 0.0, 1.0)
    weights = _get(cfg, "model.class_weights")
    if weights not in (_MISSING, None, "balanced"):
        ok = isinstance(weights, ListConfig | list) and all(
            isinstance(w, int | float) and not isinstance(w, bool) and w > 0 for w in weights
        )
        if not ok:
            raise ConfigError(
                "model.class_weights",
                weights,
                "must be null, balanced, or a list of positive numbers (one per class)",
            )
    backbone = _get(cfg, "model.backbone")
    if isinstance(backbone, str):
        from fracture_lit.models.factory import check_backbone_name

        check_backbone_name(backbone)


def validate_monitor(cfg: Any) -> None:
    names = monitorable_metrics()
    check_choice(cfg, "monitor_mode", ("min", "max"))
    for key in (
        "monitor",
        "callbacks.model_checkpoint.monitor",
        "callbacks.early_stopping.monitor",
    ):
        value = _get(cfg, key)
        if value is _MISSING or value is None:
            continue
        if value not in names:
            from fracture_lit.errors import nearest

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


def _checkpoint_backbone(cfg: Any) -> None:
    """train ckpt_path=: the same refusal as eval/predict, and the same backbone."""
    value = _get(cfg, "ckpt_path")
    if value in (_MISSING, None):
        return
    from fracture_lit.models.loading import check_checkpoint

    checkpoint = check_checkpoint(str(value))
    trained = (checkpoint.get("hyper_parameters") or {}).get("backbone")
    wanted = _get(cfg, "model.backbone")
    if trained and isinstance(wanted, str) and trained != wanted:
        raise ConfigError(
            "ckpt_path",
            value,
            f"was trained with backbone {trained!r} but model.backbone={wanted}",
            f"Resume with model.backbone={trained} (or the model/ preset that has it).",
        )


def validate_train(cfg: DictConfig) -> None:
    """Everything ``python -m fracture_lit.train`` is given, before data or model exist."""
    check_int(cfg, "seed", optional=True)
    check_bool(cfg, "train")
    check_bool(cfg, "test")
    devices = validate_trainer(cfg)
    validate_data(cfg, devices=devices)
    validate_model(cfg)
    validate_monitor(cfg)
    _checkpoint_backbone(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the run folder)")
    dirpath = _get(cfg, "callbacks.model_checkpoint.dirpath")
    if dirpath not in (_MISSING, None):
        check_writable_dir(dirpath, "callbacks.model_checkpoint.dirpath")
    if _get(cfg, "data.cache") is True and _get(cfg, "data.cache_dir") not in (_MISSING, None):
        check_writable_dir(cfg.data.cache_dir, "data.cache_dir")


def _check_threshold(cfg: Any) -> None:
    check_float(cfg, "threshold", 0.0, 1.0, optional=True, fix="null uses the checkpoint's.")


def validate_eval(cfg: DictConfig) -> None:
    check_checkpoint_path(cfg)
    check_choice(cfg, "split", ("train", "val", "test", "all"))
    _check_threshold(cfg)
    check_int(cfg, "n_bootstrap", 0)
    check_int(cfg, "batch_size", 1)
    check_choice(cfg, "device", DEVICE_CHOICES)
    check_int(cfg, "gradcam.n_fixed", 0)
    check_int(cfg, "gradcam.n_worst", 0)
    validate_data(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the evaluation folder)")


def validate_predict(cfg: DictConfig) -> None:
    check_checkpoint_path(cfg)
    value = _get(cfg, "input")
    if not Path(str(value)).expanduser().exists():
        raise ConfigError(
            "input", value, "no such file or folder", "Pass an image, a DICOM or a folder."
        )
    _check_threshold(cfg)
    check_int(cfg, "batch_size", 1)
    check_choice(cfg, "device", DEVICE_CHOICES)
    window = _get(cfg, "window")
    if window not in (_MISSING, None) and not (
        isinstance(window, ListConfig | list)
        and len(window) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in window)
        and window[1] > 0
    ):
        raise ConfigError("window", window, "must be [centre, width] with width > 0, or null")
    check_int(cfg, "max_image_pixels", 1, optional=True)
    if _get(cfg, "output") not in (_MISSING, None):
        check_writable_file(cfg.output, "output")
    else:
        check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the predict folder)")


def validate_export(cfg: DictConfig) -> None:
    """ckpt_path and format are judged by export itself, inside its export.json record."""
    check_int(cfg, "opset", 7, 30)
    check_bool(cfg, "dynamo")
    check_bool(cfg, "check")
    check_int(cfg, "batch_size", 1)
    check_float(cfg, "atol", 0.0, low_open=True)
    if _get(cfg, "output") not in (_MISSING, None):
        check_writable_file(cfg.output, "output")
    else:
        check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the export folder)")


def validate_audit(cfg: DictConfig) -> None:
    check_int(cfg, "seed", optional=True)
    check_choice(cfg, "audit.split", ("given", "ours"))
    check_int(cfg, "audit.max_hamming", 0, 64)
    check_int(cfg, "audit.show_groups", 0)
    validate_data(cfg)
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir (the audit folder)")


def validate_pipeline(cfg: DictConfig) -> None:
    """The pipeline's own keys; each stage's train config is validated when it runs."""
    for key in ("stage1", "stage2", "common"):
        value = _get(cfg, key)
        if value is _MISSING:
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
    if _get(cfg, "ckpt_path") is not _MISSING:
        check_checkpoint_path(cfg)
    _check_threshold(cfg)
    check_int(cfg, "port", 0, 65535)
    check_int(cfg, "batch_size", 1)
    check_float(cfg, "max_upload_mb", 0.0, low_open=True)
    check_int(cfg, "max_image_pixels", 1, optional=True)
    check_choice(cfg, "device", DEVICE_CHOICES)
