"""Feed images to a trained model exactly as its training run did, and read its output.

Used by eval, predict, the two-stage pipeline, the review callback and the web app: the
same reader (:func:`~fracture_lit.data.readers.read_image`), resize mode, image size,
preprocessing (CLAHE, edges, ...) and normalisation as training, with no augmentation,
all taken from one :class:`~fracture_lit.data.input_settings.InputSettings`.

Test-time augmentation (``tta``) averages the softmax over views of the batch:
``none`` (the image as is) or ``flip`` (as is and mirrored left-right, which a
radiograph of a left and a right limb makes natural).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS
from fracture_lit.data.input_settings import InputSettings
from fracture_lit.data.readers import read_image
from fracture_lit.data.transforms import ImageTransform, Normalizer
from fracture_lit.errors import ConfigError
from fracture_lit.utils.precision import fp32_scoring

__all__ = ["TTA_MODES", "InputPipeline", "check_tta", "predict_probs"]

TTA_MODES = ("none", "flip")


class InputPipeline:
    """File -> uint8 square image -> normalised float tensor, per :class:`InputSettings`."""

    def __init__(self, settings: InputSettings, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.settings = settings
        self.max_pixels = max_pixels
        self.transform = ImageTransform(
            image_size=settings.image_size,
            train=False,
            augment=None,
            preprocess=list(settings.preprocess)
            if isinstance(settings.preprocess, tuple)
            else settings.preprocess,
        )
        self.normalizer = Normalizer(settings.normalize, settings.in_chans)

    @classmethod
    def from_checkpoint(cls, loaded: object, **kwargs: object) -> InputPipeline:
        """The pipeline of a :class:`~fracture_lit.models.loading.LoadedCheckpoint`."""
        return cls(loaded.settings, **kwargs)  # type: ignore[attr-defined]

    @property
    def image_size(self) -> int:
        return self.settings.image_size

    def read(
        self, path: str | Path, window: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, str]:
        """Greyscale uint8 square image (what overlays are drawn on) and a note."""
        return read_image(
            path, self.settings.image_size, self.settings.resize_mode, window, self.max_pixels
        )

    def to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Normalised ``(B, in_chans, S, S)`` float batch from greyscale uint8 images."""
        batch = np.stack([self.transform(image) for image in images])
        return self.normalizer(torch.from_numpy(batch))


def check_tta(tta: str | None) -> str:
    value = str(tta or "none").lower()
    if value not in TTA_MODES:
        raise ConfigError("tta", tta, f"must be one of {', '.join(TTA_MODES)}")
    return value


def _views(batch: torch.Tensor, tta: str) -> list[torch.Tensor]:
    if tta == "flip":
        return [batch, torch.flip(batch, dims=[-1])]
    return [batch]


@torch.inference_mode()
def predict_probs(
    model: torch.nn.Module,
    batch: torch.Tensor,
    chunk: int = 64,
    *,
    temperature: float = 1.0,
    tta: str = "none",
) -> torch.Tensor:
    """Probabilities ``(B, num_classes)``, float32: ``softmax(logits / temperature)``,
    averaged over the ``tta`` views, ``chunk`` images at a time, computed in fp32 (no
    autocast, no TF32) like the training run's validation and test scores."""
    weight = next(model.parameters())
    views = _views(batch, check_tta(tta))
    outs = []
    with fp32_scoring(weight.device.type):  # the one scoring precision (utils/precision.py)
        for start in range(0, batch.shape[0], chunk):
            probs = [
                torch.softmax(model(v[start : start + chunk].to(weight)).float() / temperature, 1)
                for v in views
            ]
            outs.append(torch.stack(probs).mean(0).cpu())
    return torch.cat(outs) if outs else torch.empty(0)
