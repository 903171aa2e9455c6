"""DataLoaders and samplers of a datamodule: global batch sizes, seeded training order,
DDP sharding without duplicated evaluation images."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from fracture_lit.data.image_datasets import collate_images
from fracture_lit.data.sampling import EpochSampler

log = logging.getLogger(__name__)

__all__ = ["BALANCE_CHOICES", "eval_sampler", "make_loader", "per_device", "train_sampler"]

#: ``data.balance``: none, or weighted random sampling (a weighted loss is the model's).
BALANCE_CHOICES = ("none", "sampler")


def per_device(batch_size: int, trainer: Any) -> int:
    """Keep the configured *global* batch size whatever the number of devices."""
    world = trainer.world_size if trainer is not None else 1
    if batch_size % world:
        log.warning("batch size %d is not divisible by %d devices", batch_size, world)
    return max(1, batch_size // world)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    num_workers: int,
    pin_memory: bool,
    shuffle: bool = False,
    sampler: Any = None,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_images,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    counts = Counter(labels)
    return [counts.get(i, 0) for i in range(num_classes)]


def train_sampler(
    labels: Sequence[int], num_classes: int, *, seed: int, balance: str, trainer: Any
) -> EpochSampler:
    """Seeded order (or weighted sampling with ``balance=sampler``) per epoch, sharded
    across DDP ranks."""
    weights = None
    if balance == "sampler":
        counts = class_counts(labels, num_classes)
        weights = [1.0 / max(1, counts[label]) for label in labels]
    return EpochSampler(
        len(labels),
        seed=seed,
        num_replicas=trainer.world_size if trainer is not None else 1,
        rank=trainer.global_rank if trainer is not None else 0,
        weights=weights,
    )


def eval_sampler(dataset: Dataset | None) -> Any:
    """Under DDP, shard val/test without the padding DistributedSampler adds (it repeats
    samples so ranks get equal batches, which skews metrics); torchmetrics gathers the
    uneven shards, so every metric covers each image exactly once."""
    if dataset is None or not (
        torch.distributed.is_available() and torch.distributed.is_initialized()
    ):
        return None
    if torch.distributed.get_world_size() < 2:
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False)
