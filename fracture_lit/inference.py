"""Feed images to a trained model exactly as its training run did.

Used by predict, eval's Grad-CAM and the review callback: the same resize mode, image
size, preprocessing (CLAHE, edges, ...) and normalisation as training, with no
augmentation, on greyscale uint8 images already fitted to the square.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fracture_lit.data.readers import read_image
from fracture_lit.data.transforms import ImageTransform, Normalizer

__all__ = ["InputPipeline", "predict_probs"]


@dataclass
class InputPipeline:
    """File -> uint8 square image -> normalised float tensor for the model."""

    image_size: int
    resize_mode: str = "resize"
    normalize: str = "imagenet"
    preprocess: str | Sequence[str] | None = None
    in_chans: int = 3

    def __post_init__(self) -> None:
        self._transform = ImageTransform(
            image_size=self.image_size, train=False, augment=None, preprocess=self.preprocess
        )
        self._normalizer = Normalizer(self.normalize, self.in_chans)

    @classmethod
    def from_checkpoint(cls, loaded: Any) -> InputPipeline:
        """The pipeline a :class:`~fracture_lit.models.loading.LoadedCheckpoint` trained with."""
        data = loaded.data
        return cls(
            image_size=loaded.image_size,
            resize_mode=data.get("resize_mode", "resize"),
            normalize=data.get("normalize", "imagenet"),
            preprocess=data.get("preprocess"),
            in_chans=loaded.in_chans,
        )

    @classmethod
    def from_datamodule(cls, datamodule: Any) -> InputPipeline:
        return cls(
            image_size=datamodule.image_size,
            resize_mode=datamodule.resize_mode,
            normalize=datamodule.normalize,
            preprocess=datamodule.preprocess,
            in_chans=datamodule.in_chans,
        )

    def read(
        self, path: str | Path, window: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, str]:
        """Greyscale uint8 square image (what overlays are drawn on) and a note."""
        return read_image(path, self.image_size, self.resize_mode, window)

    def to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Normalised ``(B, in_chans, S, S)`` float batch from greyscale uint8 images."""
        batch = np.stack([self._transform(image) for image in images])
        return self._normalizer(torch.from_numpy(batch))


@torch.inference_mode()
def predict_probs(
    model: torch.nn.Module, batch: torch.Tensor, chunk: int = 64, temperature: float = 1.0
) -> torch.Tensor:
    """Softmax probabilities ``(B, num_classes)`` in float32, ``chunk`` images at a time,
    of the logits divided by the checkpoint's ``temperature`` (1.0 unless calibrated)."""
    device = next(model.parameters()).device
    outs = [
        torch.softmax(model(part.to(device)).float() / temperature, dim=1).cpu()
        for part in batch.split(chunk)
    ]
    return torch.cat(outs) if outs else torch.empty(0)
