"""Heatmaps that know nothing about the image, so that a score has something to beat.

* ``random``: independent uniform noise per pixel. Its expected pointing score is the
  share of the image within the tolerance of a fracture, its energy the regions' share of
  the image: what a heatmap pointing anywhere gets. Each image's maps are seeded by its
  identifier, so every job of a sweep draws the same maps for the same image, and a
  score is the mean over ``draws`` maps.
* ``centre``: a Gaussian at the centre of the input (sigma a quarter of the side): a
  model that looks at the middle, where radiographs usually put the anatomy.
"""

from __future__ import annotations

import zlib

import numpy as np

from fracture_lit.localization.names import BASELINES

__all__ = ["BASELINES", "centre_prior", "random_heatmaps"]

CENTRE_SIGMA = 0.25  # of the input side


def centre_prior(resolution: int, sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """``(R, R)`` Gaussian in [0, 1] at the centre, ``sigma`` a fraction of the side."""
    centres = np.arange(resolution, dtype=np.float64) + 0.5 - resolution / 2
    one = np.exp(-0.5 * (centres / (sigma * resolution)) ** 2)
    return np.outer(one, one).astype(np.float32)


def random_heatmaps(resolution: int, key: str, draws: int, seed: int = 0) -> np.ndarray:
    """``(draws, R, R)`` uniform noise, the same for the same ``key`` (image) and ``seed``."""
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
    return rng.random((int(draws), resolution, resolution), dtype=np.float32)
