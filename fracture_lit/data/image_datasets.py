"""The torch datasets a split is served from, and the collate that batches them.

Images travel as uint8 ``(C, H, W)`` until the batch reaches its device, where the
datamodule normalises it (4x less to move than float32). Training samples are addressed
by ``(epoch, index)`` keys so that their augmentation is a function of the key, not of
the process that happens to load them (see :mod:`fracture_lit.data.sampling`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from fracture_lit.data.cache import CachedImages, decode_image
from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS
from fracture_lit.data.samples import Sample
from fracture_lit.data.sampling import SampleKey, sample_seed
from fracture_lit.data.transforms import ImageTransform

__all__ = ["CachedImageDataset", "DecodingImageDataset", "collate_images", "split_dataset"]


def collate_images(batch: list[tuple[Any, ...]]) -> list[torch.Tensor]:
    """Stack uint8 ``(C, H, W)`` samples into ``[uint8 (B, C, H, W), int64 (B,)]`` (plus
    the int64 augmentation seeds when the samples carry them for device augmentation).

    numpy does the stacking: ``torch.stack`` spreads the copy over the intra-op thread
    pool, which on 2 busy cores cost more than the whole cached epoch's augmentation.
    """
    images = torch.from_numpy(np.stack([sample[0] for sample in batch]))
    if get_worker_info() is not None:
        images.share_memory_()  # as default_collate does: no copy when sent to the trainer
    out = [images, torch.tensor([sample[1] for sample in batch], dtype=torch.long)]
    if len(batch[0]) == 3:
        out.append(torch.tensor([sample[2] for sample in batch], dtype=torch.long))
    return out


def _split_key(key: int | SampleKey, seed: int | None) -> tuple[int, int | None]:
    """``(index, augmentation seed)`` of a dataset key: the training sampler's
    ``(epoch, index)`` keys get the seed of that sample in that epoch; plain indices
    (evaluation, or a loader without :class:`EpochSampler`) none."""
    if isinstance(key, tuple):
        epoch, index = key
        return index, None if seed is None else sample_seed(seed, epoch, index)
    return key, None


def _with_seed(sample: tuple[np.ndarray, int], seed: int | None) -> tuple[np.ndarray, int, int]:
    """A sample plus the seed the device augmentation draws it from (a fresh one from the
    seeded global generator for keys without one)."""
    return (*sample, int(np.random.randint(2**31)) if seed is None else seed)


class CachedImageDataset(Dataset):
    """Rows of the decoded-image cache, augmented on the fly."""

    def __init__(
        self,
        array: np.ndarray,
        rows: Sequence[int],
        labels: Sequence[int],
        transform: ImageTransform,
        seed: int | None = None,
        return_seed: bool = False,
    ) -> None:
        self.array, self.rows, self.labels, self.transform = (
            array,
            list(rows),
            list(labels),
            transform,
        )
        self.seed, self.return_seed = seed, return_seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | SampleKey) -> tuple[Any, ...]:
        i, seed = _split_key(key, self.seed)
        if self.return_seed:  # augmented on the device, from this seed
            return _with_seed(
                (self.transform(np.array(self.array[self.rows[i]])), self.labels[i]), seed
            )
        # A writable copy of the row: the memory map itself is read-only.
        return self.transform(np.array(self.array[self.rows[i]]), seed=seed), self.labels[i]


class DecodingImageDataset(Dataset):
    """Decodes each file on every access: the uncached path (and the benchmark baseline)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        size: int,
        mode: str,
        transform: ImageTransform,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        seed: int | None = None,
        return_seed: bool = False,
    ) -> None:
        self.paths, self.labels, self.size, self.mode = list(paths), list(labels), size, mode
        self.transform, self.max_pixels, self.seed = transform, max_pixels, seed
        self.return_seed = return_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | SampleKey) -> tuple[np.ndarray, int]:
        i, seed = _split_key(key, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image, _ = decode_image(self.paths[i], self.size, self.mode, self.max_pixels)
        if self.return_seed:  # augmented on the device, from this seed
            return _with_seed((self.transform(image), self.labels[i]), seed)
        return self.transform(image, seed=seed), self.labels[i]


def split_dataset(
    members: Sequence[Sample],
    cached: CachedImages | None,
    rows: dict[str, int],
    transform: ImageTransform,
    *,
    size: int,
    mode: str,
    max_pixels: int | None,
    seed: int,
    return_seed: bool,
) -> Dataset:
    """One split's dataset: rows of the decode-once cache (``rows``: path -> row), or the
    files decoded on every access when there is no cache."""
    labels = [s.label for s in members]
    if cached is not None:
        return CachedImageDataset(
            cached.array,
            [rows[s.path] for s in members],
            labels,
            transform,
            seed=seed,
            return_seed=return_seed,
        )
    return DecodingImageDataset(
        [s.path for s in members],
        labels,
        size,
        mode,
        transform,
        max_pixels,
        seed=seed,
        return_seed=return_seed,
    )
