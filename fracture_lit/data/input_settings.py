"""What a trained model expects as input and how to read its output, from ONE resolver.

timm's ``resolve_model_data_config`` and MONAI's bundle metadata give every consumer the
same input size and normalisation; here :func:`resolve_input_settings` reads a checkpoint
once and returns an :class:`InputSettings`. eval, predict, export, the two-stage pipeline,
the review callback and the web app all use it, so a default changed here changes for all
of them, and none of them parses a checkpoint by hand.

A checkpoint stores these in two places: the datamodule's ``state_dict`` (image size,
resize mode, normalisation, preprocessing, channels) under the datamodule's class name,
and the model's ``fracture_lit`` block (class names, decision threshold, temperature).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["InputSettings", "datamodule_state", "resolve_input_settings"]


@dataclass(frozen=True)
class InputSettings:
    """How to feed a model and read its output; the defaults are the one set of defaults.

    Probabilities are ``softmax(logits / temperature)`` (temperature 1 unless calibration
    stored another); ``threshold`` applies to those same probabilities: a binary model
    says ``positive_class`` when ``p(positive_class) > threshold``, a multi-class model
    takes the argmax.
    """

    class_names: tuple[str, ...] = ()
    image_size: int = 224
    resize_mode: str = "resize"
    normalize: str = "imagenet"
    in_chans: int = 3
    preprocess: str | tuple[str, ...] | None = None
    threshold: float = 0.5
    temperature: float = 1.0

    def __post_init__(self) -> None:
        # Frozen and hashable: lists from a checkpoint or a config become tuples.
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.preprocess is not None and not isinstance(self.preprocess, str):
            object.__setattr__(self, "preprocess", tuple(str(p) for p in self.preprocess))
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature}: must be > 0.")

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def positive_class(self) -> str | None:
        """The class the threshold is about (binary models: the second, e.g. fractured)."""
        return self.class_names[1] if self.binary else None

    @property
    def pixels(self) -> tuple[Any, ...]:
        """What decides the pixels the network sees: equal keys, equal input tensors."""
        return (self.image_size, self.resize_mode, self.normalize, self.in_chans, self.preprocess)

    def replace(self, **changes: Any) -> InputSettings:
        return dataclasses.replace(self, **changes)

    def data_overrides(self) -> dict[str, Any]:
        """The datamodule arguments that must equal training's for the same inputs."""
        preprocess = list(self.preprocess) if isinstance(self.preprocess, tuple) else None
        return {
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "normalize": self.normalize,
            "preprocess": preprocess if preprocess is not None else self.preprocess,
            "in_chans": self.in_chans,
        }

    def label(self, probs: Sequence[float]) -> int:
        """The predicted class index for one image's probabilities."""
        if self.binary:
            return int(float(probs[1]) > self.threshold)
        return max(range(len(probs)), key=lambda i: float(probs[i]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, not tuples), e.g. for an export's metadata or a web page."""
        out = dataclasses.asdict(self)
        out["class_names"] = list(self.class_names)
        if isinstance(self.preprocess, tuple):
            out["preprocess"] = list(self.preprocess)
        out["positive_class"] = self.positive_class
        return out

    @classmethod
    def from_datamodule(
        cls, datamodule: Any, class_names: Sequence[str], threshold: float = 0.5
    ) -> InputSettings:
        """The settings of a live datamodule (the review callback, before any checkpoint)."""
        return cls(
            class_names=tuple(class_names),
            image_size=int(datamodule.image_size),
            resize_mode=str(datamodule.resize_mode),
            normalize=str(datamodule.normalize),
            in_chans=int(datamodule.in_chans),
            preprocess=datamodule.preprocess,
            threshold=float(threshold),
        )


def datamodule_state(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Lightning stores ``datamodule.state_dict()`` under the datamodule's class name."""
    for key, value in checkpoint.items():
        if isinstance(key, str) and key.endswith("DataModule") and isinstance(value, dict):
            return dict(value)
    return {}


def resolve_input_settings(checkpoint: Mapping[str, Any]) -> InputSettings:
    """The :class:`InputSettings` of a loaded checkpoint dict (``torch.load`` output).

    Order of precedence: the datamodule state, then the ``fracture_lit`` block, then the
    hyperparameters, then :class:`InputSettings`' defaults.
    """
    defaults = InputSettings()
    data = datamodule_state(checkpoint)
    meta = dict(checkpoint.get("fracture_lit") or {})
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_names = meta.get("class_names") or hparams.get("class_names") or data.get("classes")
    in_chans = data.get("in_chans", meta.get("in_chans", hparams.get("in_chans")))
    threshold = meta.get("decision_threshold")
    temperature = meta.get("temperature")
    return InputSettings(
        class_names=tuple(class_names or ()),
        image_size=int(data.get("image_size", defaults.image_size)),
        resize_mode=str(data.get("resize_mode", defaults.resize_mode)),
        normalize=str(data.get("normalize", defaults.normalize)),
        in_chans=int(in_chans if in_chans is not None else defaults.in_chans),
        preprocess=data.get("preprocess", defaults.preprocess),
        threshold=float(threshold if threshold is not None else defaults.threshold),
        temperature=float(temperature if temperature is not None else defaults.temperature),
    )
