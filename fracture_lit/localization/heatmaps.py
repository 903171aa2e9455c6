"""Grad-CAM heatmaps to score, made with the review's CAM machinery, and their file.

The maps come from :class:`fracture_lit.review.gradcam.CamExplainer`, the method and
default target layer of the review's panels, so a score describes the heatmaps a reader
sees. Images reach the network through a :data:`BatchSource`: the datamodule's own split
(training's review, eval: the cached pixels evaluation used) or an
:class:`~fracture_lit.inference.pipeline.InputPipeline` (predict: files as the checkpoint reads
them). With ``tta=flip`` the map of the mirrored image is mirrored back and averaged in,
as the prediction averages the two views.

Maps are kept as float16 at input resolution (:mod:`.files`); scores are computed from
those float16 values, so scoring the saved file again gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fracture_lit.localization.files import HEATMAP_DTYPE
from fracture_lit.review.gradcam import CamExplainer

__all__ = [
    "BatchSource",
    "HEATMAP_DTYPE",
    "compute_heatmaps",
    "datamodule_batches",
    "pipeline_batches",
]

#: Normalised ``(B, C, S, S)`` float batch of the images at the given indices.
BatchSource = Callable[[Sequence[int]], torch.Tensor]


def datamodule_batches(datamodule: Any, split: str) -> BatchSource:
    """Images of a set-up datamodule's ``split``, by position in its order (unaugmented)."""
    dataset = datamodule.datasets[split]

    def load(indices: Sequence[int]) -> torch.Tensor:
        images = np.stack([dataset[int(i)][0] for i in indices])
        return datamodule.normalizer(torch.from_numpy(images))

    return load


def pipeline_batches(pipeline: Any, paths: Sequence[str]) -> BatchSource:
    """Files read by an :class:`~fracture_lit.inference.pipeline.InputPipeline` (predict, eval)."""

    def load(indices: Sequence[int]) -> torch.Tensor:
        return pipeline.to_tensor([pipeline.read(paths[int(i)])[0] for i in indices])

    return load


def compute_heatmaps(
    net: nn.Module,
    batches: BatchSource,
    indices: Sequence[int],
    classes: Sequence[int],
    *,
    target_layer: str | None = None,
    tta: str = "none",
    batch_size: int = 32,
) -> tuple[np.ndarray, str]:
    """Grad-CAM maps ``(N, S, S)`` (float16, [0, 1]) of ``classes[k]`` for image
    ``indices[k]``, and the name of the layer they were read from."""
    if tta not in ("none", "flip"):
        raise ValueError(f"tta={tta!r}: use none or flip")
    device = next(net.parameters()).device
    explainer: CamExplainer | None = None
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(indices), batch_size):
            chunk = list(indices[start : start + batch_size])
            wanted = [int(c) for c in classes[start : start + batch_size]]
            batch = batches(chunk).to(device)
            if explainer is None:
                explainer = CamExplainer(net, batch, target_layer)
            maps = explainer(batch, wanted)
            if tta == "flip":
                mirrored = explainer(torch.flip(batch, dims=[-1]), wanted)[..., ::-1]
                maps = (maps + mirrored) / 2
            out.append(maps.astype(HEATMAP_DTYPE))
    finally:
        if explainer is not None:
            explainer.close()
    if not out:
        return np.zeros((0, 0, 0), HEATMAP_DTYPE), target_layer or ""
    return np.concatenate(out), explainer.layer.name if explainer else ""
