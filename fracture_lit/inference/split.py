"""A model over one datamodule split, kept image by image for scoring and review.

Used by eval, ensembles (choosing their threshold on validation) and the review callback;
the review first tries :func:`with_split_images`, the scores the training run's evaluation
already computed, matched back to the split's images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fracture_lit.data.image_datasets import collate_images
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.inference.pipeline import predict_probs

__all__ = ["predict_split", "split_samples", "with_split_images"]


def split_samples(datamodule: Any, split: str) -> list[Any]:
    """The split's samples in the order of ``datamodule.datasets[split]``."""
    return [s for s in datamodule.samples if s.split == split]


def with_split_images(
    kept: SplitPredictions, datamodule: Any, split: str, world_size: int = 1
) -> SplitPredictions:
    """``kept`` (a LightningModule's epoch predictions, without paths) in the split's
    dataset order, with each image's path and metadata.

    Under DDP Lightning's ``UnrepeatedDistributedSampler`` (``data/loaders.py``) gives rank
    ``r`` the images ``r, r + W, r + 2W, ...`` and the ranks' scores are gathered rank after
    rank; that order is undone here. Raises ValueError when the scores cannot be the
    split's images in that order (another count, e.g. ``limit_val_batches``, or labels
    that disagree): the caller predicts the split again instead.
    """
    members = split_samples(datamodule, split)
    n, world_size = len(members), max(1, int(world_size))
    if len(kept.labels) != n:
        raise ValueError(f"{len(kept.labels)} kept scores for the {n} {split} images")
    order = np.concatenate([np.arange(rank, n, world_size) for rank in range(world_size)])
    probs, labels = np.empty_like(kept.probs), np.empty_like(kept.labels)
    probs[order], labels[order] = kept.probs, kept.labels
    if not np.array_equal(labels, [s.label for s in members]):
        raise ValueError(f"the kept labels are not the {split} images' in dataset order")
    return SplitPredictions(
        split=split,
        class_names=list(kept.class_names),
        paths=[s.path for s in members],
        labels=labels,
        probs=probs,
        threshold=kept.threshold,
        meta=[dict(s.meta) for s in members],
    )


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    datamodule: Any,
    split: str,
    class_names: list[str],
    threshold: float = 0.5,
    batch_size: int = 64,
    *,
    temperature: float = 1.0,
    tta: str = "none",
) -> SplitPredictions:
    """Run ``model`` over ``datamodule``'s ``split`` (set up, unaugmented) in its order;
    ``tta``/``temperature`` as in :func:`~fracture_lit.inference.pipeline.predict_probs`."""
    dataset = datamodule.datasets[split]
    members = split_samples(datamodule, split)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    probs, labels = [], []
    for images, targets in loader:
        batch = datamodule.normalizer(images)
        probs.append(predict_probs(model, batch, temperature=temperature, tta=tta))
        labels.append(targets)
    return SplitPredictions(
        split=split,
        class_names=list(class_names),
        paths=[s.path for s in members],
        labels=torch.cat(labels).numpy() if labels else np.zeros(0, np.int64),
        probs=torch.cat(probs).numpy() if probs else np.zeros((0, len(class_names))),
        threshold=float(threshold),
        meta=[dict(s.meta) for s in members],
    )
