"""Train-time geometric augmentation of a whole batch where it lives (the GPU).

On a GPU the per-image albumentations pipeline in the loader's process is what the GPU
waits for. With ``data.augment_on=device`` (``auto``: whenever training runs on a GPU) the
geometric presets (flip, rotation, zoom, shift) become one affine warp of the batch on the
device. Each sample's random draws still come from its own seed (``sample_seed``, epoch,
index), so a run stays reproducible and resumes exactly, as on the host. Photometric and
cropping presets have no device version; with any of them the whole pipeline stays on the
host (``auto``) or the configuration is refused (``device``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fracture_lit.data.transforms import preset_names
from fracture_lit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "AUGMENT_PLACES",
    "DEVICE_PRESETS",
    "DeviceAugment",
    "check_augment_place",
    "choose_device_augment",
    "host_only_presets",
]

#: ``data.augment_on``: on the device when possible, on the host, or on the device.
AUGMENT_PLACES = ("auto", "host", "device")


@dataclass(frozen=True)
class AffineStep:
    """One preset's random affine: applied with probability ``p``; flip is its own step."""

    p: float
    flip: bool = False
    rotate_deg: float = 0.0
    scale: float = 0.0  # zoom range: 1 +- scale
    translate: float = 0.0  # shift range: +- translate x the image side


# The same magnitudes and probabilities as the host presets (transforms._augment_presets).
DEVICE_PRESETS: dict[str, Callable[[float], list[AffineStep]]] = {
    "none": lambda s: [],
    "flip_rotate": lambda s: [AffineStep(0.5, flip=True), AffineStep(0.5, rotate_deg=10 * s)],
    "rotate_zoom_flip": lambda s: [
        AffineStep(0.5, flip=True),
        AffineStep(0.7, rotate_deg=10 * s, scale=0.2 * s),
    ],
    "shift": lambda s: [AffineStep(0.5, translate=0.1 * s)],
}


def host_only_presets(augment: Sequence[str]) -> list[str]:
    """The presets in ``augment`` that only the host pipeline implements."""
    return [name for name in augment if name not in DEVICE_PRESETS]


def _matrix(steps: list[AffineStep], rng: np.random.Generator) -> np.ndarray:
    """The 3x3 map from output to input coordinates ([-1, 1] on both axes) of one sample."""
    out = np.eye(3)
    for step in steps:
        if rng.random() >= step.p:
            continue
        if step.flip:
            out = out @ np.diag([-1.0, 1.0, 1.0])
            continue
        angle = math.radians(rng.uniform(-step.rotate_deg, step.rotate_deg))
        zoom = rng.uniform(1 - step.scale, 1 + step.scale) if step.scale else 1.0
        dx, dy = rng.uniform(-step.translate, step.translate, size=2) * 2  # [-1, 1] spans 2
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        out = out @ np.array([[cos, -sin, -dx], [sin, cos, -dy], [0.0, 0.0, 1.0]])
    return out


class DeviceAugment:
    """``(uint8 images (B, C, H, W), int64 seeds (B,))`` -> augmented float images in
    [0, 255] on the images' device (the :class:`~fracture_lit.data.transforms.Normalizer`
    takes them from there)."""

    def __init__(self, augment: Sequence[str], strength: float = 1.0) -> None:
        unknown = host_only_presets(augment)
        if unknown:
            raise ValueError(f"no device version of the augmentation preset(s) {unknown}")
        s = max(0.0, float(strength))
        self.steps = [step for name in augment for step in DEVICE_PRESETS[name](s)]

    def thetas(self, seeds: Sequence[int]) -> torch.Tensor:
        """The batch's ``(B, 2, 3)`` affine parameters, drawn per sample from its seed."""
        mats = [_matrix(self.steps, np.random.default_rng(int(seed)))[:2] for seed in seeds]
        return torch.from_numpy(np.stack(mats)).float()

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if not self.steps:
            return x
        theta = self.thetas(seeds.tolist()).to(x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # Zeros outside the image, bilinear inside: albumentations' Rotate/Affine defaults.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def check_augment_place(augment_on: str) -> None:
    if augment_on not in AUGMENT_PLACES:
        raise ConfigError(
            "data.augment_on", augment_on, "is not a place to augment", "Use auto, host or device."
        )


def choose_device_augment(
    augment_on: str, augment: str | Sequence[str] | None, strength: float, on_gpu: bool
) -> DeviceAugment | None:
    """The batch augmentation on the device, when ``augment_on`` puts it there
    (``auto``: when training runs on a GPU and every preset has a device version)."""
    if augment_on == "host":
        return None
    names = preset_names(augment)
    host_only = host_only_presets(names)
    if augment_on == "device":
        if host_only:
            raise ConfigError(
                "data.augment_on",
                "device",
                f"the augmentation preset(s) {', '.join(host_only)} (data.augment) run on "
                "the host only",
                "Use data.augment_on=auto or host, or device-capable presets: "
                f"{', '.join(sorted(DEVICE_PRESETS))}.",
            )
    elif host_only or not on_gpu:
        return None
    log.info("Augmentation %s runs on the device, per batch", names or "none")
    return DeviceAugment(names, strength)
