"""A model over one datamodule split, kept image by image for scoring and review.

Used by eval, ensembles (choosing their threshold on validation) and the review callback.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fracture_lit.data.image_datasets import collate_images
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.inference.pipeline import predict_probs

__all__ = ["predict_split"]


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
    members = [s for s in datamodule.samples if s.split == split]
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
