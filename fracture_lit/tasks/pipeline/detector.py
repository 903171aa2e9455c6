"""Stage 1 of the pipeline as a filter: its detector scores the stage-2 images.

The images are decoded and normalised the way stage 1 saw its own (its
:class:`~fracture_lit.data.input_settings.InputSettings`), never the stage-2 config's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fracture_lit.data.cache import build_cache
from fracture_lit.data.image_datasets import CachedImageDataset, collate_images
from fracture_lit.data.input_settings import InputSettings
from fracture_lit.inference.pipeline import InputPipeline, predict_probs
from fracture_lit.models.loading import load_checkpoint
from fracture_lit.tasks.pipeline.stages import PipelineError

__all__ = ["load_detector", "score_images", "stage1_threshold"]

log = logging.getLogger("fracture_lit.pipeline")


def load_detector(checkpoint: Path) -> tuple[Any, InputSettings]:
    """The stage-1 model and its :class:`InputSettings` (image size, resize mode,
    preprocessing, normalisation, threshold), which the stage-2 images must be fed with."""
    loaded = load_checkpoint(checkpoint)
    if not loaded.settings.binary:
        raise PipelineError(
            f"stage 1 must be a binary detector; {checkpoint} has "
            f"{len(loaded.class_names)} classes ({loaded.class_names})."
        )
    return loaded.model, loaded.settings


def score_images(
    model: Any,
    paths: Sequence[str],
    settings: InputSettings,
    *,
    cache_dir: Path,
    batch_size: int,
    decode_workers: int | None = None,
) -> list[float]:
    """p(fractured) for each path (NaN for files that cannot be decoded).

    Images go through the same decode-once cache and the same eval transform and
    normaliser (:class:`~fracture_lit.inference.InputPipeline`) as in a stage-1
    evaluation, at stage 1's image size: the stage-2 config's own size, jet colour map or
    normalisation would feed the detector images it never saw.
    """
    pipeline = InputPipeline(settings)
    cached = build_cache(
        list(paths),
        size=settings.image_size,
        mode=settings.resize_mode,
        cache_dir=cache_dir,
        workers=decode_workers,
    )
    rows = list(range(len(paths)))
    dataset = CachedImageDataset(cached.array, rows, [0] * len(rows), pipeline.transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    scores: list[float] = []
    for images, _ in loader:
        probs = predict_probs(
            model, pipeline.normalizer(images.to(device)), temperature=settings.temperature
        )
        scores.extend(probs[:, 1].tolist())
    for i in cached.bad:
        scores[i] = math.nan
    if cached.bad:
        log.warning("%d stage-2 images could not be decoded; they do not pass.", len(cached.bad))
    return scores


def stage1_threshold(results: dict[str, Any], settings: InputSettings) -> float:
    """The Youden threshold stage 1 chose on validation for its best checkpoint."""
    value = results.get("val", {}).get("metrics", {}).get("val/youden_threshold")
    stored = settings.threshold
    if value is None:
        return float(stored)
    if abs(float(stored) - float(value)) > 1e-6:
        log.warning(
            "checkpoint threshold %.6f != validation's %.6f; using validation's.", stored, value
        )
    return float(value)
