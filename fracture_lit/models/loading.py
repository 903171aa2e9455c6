"""Load a trained FractureClassifier back from its checkpoint, safely and with what it needs.

eval, predict, export and the review callbacks all start from a checkpoint. It is read with
``weights_only=True`` (no arbitrary unpickling), the network is rebuilt from the stored
hyperparameters without touching the hub (the trained weights replace any pretrained
ones), and the input pipeline the model was trained with (image size, resize mode,
normalisation, preprocessing, threshold) comes back with it as one
:class:`~fracture_lit.data.input_settings.InputSettings`, so inference sees the same pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fracture_lit.data.class_roles import binary_role as _binary_role
from fracture_lit.data.input_settings import InputSettings, resolve_input_settings
from fracture_lit.errors import UserError

__all__ = [
    "CheckpointError",
    "ClassMismatchError",
    "LoadedCheckpoint",
    "check_checkpoint",
    "load_checkpoint",
    "match_classes",
]

# Hyperparameters that only matter while training, or would reach for the network.
_INFERENCE_OVERRIDES = {"weights": "none", "pretrained": None, "pretrained_file": None,
                        "compile": False}  # fmt: skip


class CheckpointError(UserError, ValueError):
    """The file is missing, not a checkpoint, or not one of fracture_lit's."""


class ClassMismatchError(UserError, ValueError):
    """The checkpoint's classes do not match the data it is asked to evaluate."""


@dataclass
class LoadedCheckpoint:
    """A model in eval mode plus the :class:`InputSettings` to feed it the same inputs."""

    path: Path
    model: Any  # FractureClassifier (imported lazily: lightning is slow to import)
    settings: InputSettings
    # The precision its weights were trained in (None: written before it was recorded).
    trained_precision: str | None = None

    @property
    def backbone(self) -> str:
        return str(self.model.hparams.backbone)

    @property
    def class_names(self) -> list[str]:
        return list(self.settings.class_names)

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def temperature(self) -> float:
        """Divides the logits before the softmax (temperature scaling; 1.0 = none)."""
        return self.settings.temperature

    @property
    def image_size(self) -> int:
        return self.settings.image_size

    @property
    def in_chans(self) -> int:
        return self.settings.in_chans

    def data_overrides(self) -> dict[str, Any]:
        """The datamodule arguments that must equal training's for the same inputs."""
        return self.settings.data_overrides()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            found = sorted(p.name for p in path.parent.glob("*.ckpt"))
            if found:
                hint = f" {path.parent} has: {', '.join(found[:8])}."
        raise CheckpointError(
            f"ckpt_path={path}: no such file.{hint} A run keeps its checkpoints in "
            "<run folder>/checkpoints/ (epoch_NNN.ckpt is the best, last.ckpt the latest)."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        # torch's own message suggests weights_only=False, which is exactly what must not
        # happen with a file of unknown origin: only its type is repeated here.
        raise CheckpointError(
            f"ckpt_path={path}: not a checkpoint that loads with weights_only=True "
            f"({type(error).__name__}). Pass a .ckpt written by `python -m fracture_lit.train`; "
            "files that would need arbitrary unpickling are refused on purpose."
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path}: not a Lightning checkpoint (no state_dict).")
    if "fracture_lit" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={path}: a Lightning checkpoint, but not one of fracture_lit's (no "
            "'fracture_lit' block). Train with `python -m fracture_lit.train`, or load a "
            "plain timm state dict as starting weights: model.weights=<file>."
        )
    return checkpoint


def check_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint, or the one-line refusal eval/predict/export give (train's ckpt_path too)."""
    return _read(Path(path).expanduser())


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model of a fracture_lit checkpoint, in eval mode on ``device``."""
    # Here, not at the top: the module imports lightning (seconds), which validation's
    # checkpoint checks (check_checkpoint) and the web app's start do without.
    from fracture_lit.models.module import FractureClassifier

    path = Path(path).expanduser()
    checkpoint = _read(path)
    hparams = {**checkpoint["hyper_parameters"], **_INFERENCE_OVERRIDES}
    model = FractureClassifier(**hparams)
    try:
        missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
    except RuntimeError as error:  # same names, other shapes (e.g. in_chans, num_classes)
        detail = next((ln.strip() for ln in str(error).splitlines() if "size mismatch" in ln), "")
        raise CheckpointError(
            f"ckpt_path={path}: its weights do not fit the model its settings describe "
            f"(backbone {hparams.get('backbone')!r}; {detail or type(error).__name__}). The "
            "checkpoint is damaged or was written by another model definition."
        ) from error
    # Metric states are not part of what a checkpoint must carry; network weights are.
    # Nor is the temperature of checkpoints older than temperature scaling (1.0 then).
    missing = [
        k for k in missing if not k.startswith(("train_", "val_", "test_")) and k != "temperature"
    ]
    if missing or unexpected:
        raise CheckpointError(
            f"ckpt_path={path}: its weights do not fit backbone {hparams.get('backbone')!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. "
            f"{(missing or unexpected)[0]}). The checkpoint is damaged or was written by "
            "another model definition."
        )
    model.eval().to(device)
    settings = resolve_input_settings(checkpoint)
    if not settings.class_names:
        settings = settings.replace(class_names=tuple(model.class_names))
    model.temperature.fill_(settings.temperature)
    trained = (checkpoint["fracture_lit"].get("precision") or {}).get("train")
    return LoadedCheckpoint(path=path, model=model, settings=settings, trained_precision=trained)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def match_classes(model_classes: list[str], data_classes: list[str], where: str) -> None:
    """Refuse data whose labels would not mean what the model's outputs mean.

    Names must agree class by class, up to case and punctuation. Binary fracture datasets
    name their classes differently (``intact``/``non_fractured``/``not fractured`` vs
    ``fractured``), so for two classes the roles (negative, positive) must agree instead:
    that is what makes training on one dataset and evaluating on another possible.
    """
    if [_norm(c) for c in model_classes] == [_norm(c) for c in data_classes]:
        return
    if len(model_classes) == len(data_classes) == 2:
        roles_model = [_binary_role(c) for c in model_classes]
        roles_data = [_binary_role(c) for c in data_classes]
        if roles_model == roles_data == ["negative", "positive"]:
            return
    raise ClassMismatchError(
        f"The checkpoint was trained on classes {model_classes} but {where} has "
        f"{data_classes}: its outputs would be scored against the wrong labels. Evaluate it "
        "on data with the same classes (binary fracture datasets match each other: "
        "negative class first, then fractured), or pick the classes with data.classes=[...] "
        "where the dataset supports it."
    )
