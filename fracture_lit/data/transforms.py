"""Albumentations presets covering the papers' preprocessing and augmentation.

Images arrive from the cache as greyscale ``uint8`` arrays already at ``image_size``;
``preprocess`` steps (CLAHE, Canny edges, jet colour map) run on every split, ``augment``
presets only on train. Samples stay uint8 ``(C, H, W)`` through the loader; the
:class:`Normalizer` turns a whole batch into floats on the device, repeating greyscale to 3
channels for ImageNet backbones or keeping 1 with ``in_chans=1``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``data.normalize``: ImageNet mean/std, [0, 1] or [-1, 1].
NORMALIZATIONS = ("imagenet", "unit", "centered")


def _augment_presets(image_size: int, strength: float) -> dict[str, list[A.BasicTransform]]:
    """Named train-time augmentations; ``strength`` scales their magnitudes (Optuna)."""
    s = max(0.0, float(strength))
    return {
        "none": [],
        # Paper A: random horizontal flip + rotation up to 10 degrees.
        "flip_rotate": [A.HorizontalFlip(p=0.5), A.Rotate(limit=10 * s, p=0.5)],
        # Papers C and E: rotation, zoom and flip.
        "rotate_zoom_flip": [
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-10 * s, 10 * s), scale=(1 - 0.2 * s, 1 + 0.2 * s), p=0.7),
        ],
        "shift": [A.Affine(translate_percent=(-0.1 * s, 0.1 * s), p=0.5)],
        "brightness_contrast": [
            A.RandomBrightnessContrast(brightness_limit=0.2 * s, contrast_limit=0.2 * s, p=0.5)
        ],
        "gamma": [A.RandomGamma(gamma_limit=(80, 120), p=0.3)],
        "blur": [A.GaussianBlur(blur_limit=(3, 5), p=0.3)],
        "noise": [A.GaussNoise(std_range=(0.01, 0.05 * max(s, 0.2)), p=0.3)],
        # Paper D tried (and rejected) a random central crop; kept for reproducing that.
        "central_crop": [
            A.RandomResizedCrop(
                size=(image_size, image_size), scale=(0.7, 1.0), ratio=(0.9, 1.1), p=0.5
            )
        ],
    }


class CannyEdges(A.ImageOnlyTransform):
    """Canny edge map (paper D tried it as preprocessing)."""

    def __init__(self, low: int = 50, high: int = 150, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.low, self.high = low, high

    def apply(self, img: np.ndarray, **params: object) -> np.ndarray:
        grey = img if img.ndim == 2 else img[..., 0]
        edges = cv2.Canny(np.ascontiguousarray(grey), self.low, self.high)
        return edges if img.ndim == 2 else edges[..., None]


class JetColourMap(A.ImageOnlyTransform):
    """The jet colour map paper C applied to every image; makes 3 channels."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p=p)

    def apply(self, img: np.ndarray, **params: object) -> np.ndarray:
        grey = img if img.ndim == 2 else img[..., 0]
        return cv2.cvtColor(
            cv2.applyColorMap(np.ascontiguousarray(grey), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
        )


PREPROCESS: dict[str, Callable[[], A.BasicTransform]] = {
    "clahe": lambda: A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=1.0),
    "canny": lambda: CannyEdges(),
    "jet": lambda: JetColourMap(),
}


def augment_preset_names() -> list[str]:
    """The ``data.augment`` presets, sorted (``none`` among them)."""
    return sorted(_augment_presets(64, 1.0))


def preset_names(value: str | Sequence[str] | None) -> list[str]:
    """``data.augment`` / ``data.preprocess`` (a name, a list, none or null) as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [] if value in ("", "none") else [value]
    return [str(v) for v in value]


class ImageTransform:
    """Preprocessing (every split) and augmentation (train) of one uint8 image."""

    def __init__(
        self,
        *,
        image_size: int,
        train: bool,
        augment: str | Sequence[str] | None = "flip_rotate",
        preprocess: str | Sequence[str] | None = None,
        strength: float = 1.0,
        seed: int | None = None,
    ) -> None:
        presets = _augment_presets(image_size, strength)
        steps: list[A.BasicTransform] = []
        for name in preset_names(preprocess):
            if name not in PREPROCESS:
                raise ValueError(
                    f"Unknown preprocessing {name!r} (data.preprocess); known: "
                    f"{', '.join(sorted(PREPROCESS))}."
                )
            steps.append(PREPROCESS[name]())
        if train:
            for name in preset_names(augment):
                if name not in presets:
                    raise ValueError(
                        f"Unknown augmentation preset {name!r} (data.augment); known: "
                        f"{', '.join(sorted(presets))}."
                    )
                steps.extend(presets[name])
        # Albumentations draws from its own generator: seed it from torch's seed (set by
        # `seed=`) or augmentation differs between otherwise identical runs.
        seed = int(torch.initial_seed() % 2**32) if seed is None else seed
        self.pipeline = A.Compose(steps, seed=seed) if steps else None

    def __call__(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Augment one cached image; returns uint8 ``(C, H, W)`` (C is 1, or 3 after jet).

        ``seed`` (the training sampler's, per sample and epoch) makes the augmentation a
        function of the sample alone, whichever process or worker draws it.
        """
        if self.pipeline is not None:
            if seed is not None:
                # One generator pair shared by every step (cheaper than set_random_seed).
                self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
            image = self.pipeline(image=image)["image"]
        chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        return np.ascontiguousarray(chw)


class Normalizer:
    """uint8 batch ``(B, C, H, W)`` -> normalised float ``(B, in_chans, H, W)``.

    Runs after the batch reached the device (the datamodule's ``on_after_batch_transfer``),
    so the loader moves uint8 (4x less than float32) and the arithmetic happens once per
    batch, on the GPU when there is one, instead of per image on the CPU.
    """

    def __init__(self, normalize: str = "imagenet", in_chans: int = 3) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(
                f"data.normalize={normalize!r}; use imagenet (ImageNet mean/std), unit ([0, 1]) "
                "or centered ([-1, 1])."
            )
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans={in_chans}: radiographs are fed as 1 or 3 channels.")
        self.in_chans = in_chans
        mean, std = {
            "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
            "unit": ((0.0,) * 3, (1.0,) * 3),
            "centered": ((0.5,) * 3, (0.5,) * 3),
        }[normalize]
        if in_chans == 1:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        single = images.ndim == 3
        x = images.unsqueeze(0) if single else images
        x = x.float().div_(255.0)
        if x.shape[1] != self.in_chans:
            x = x.expand(-1, self.in_chans, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        out = (x - mean) / std
        return out[0] if single else out
