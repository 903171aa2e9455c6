"""A run's localization outputs: per split the block, the heatmaps file and the panels.

The training review (``callbacks.review``), eval and predict all go through
:class:`LocalizationRun`, so they write the same files (:class:`~fracture_lit.layout.
ReviewLayout`: ``<split>/localization.npz`` and ``<split>/localization/{best,worst}_NN.png``)
and the same block (``metrics.json``'s ``localization.<split>``). The regions are read and
matched to the data once per run; a run without regions reads and computes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fracture_lit.data.cache import BadImageError
from fracture_lit.layout import ReviewLayout
from fracture_lit.localization.config import (
    datamodule_regions,
    localization_enabled,
    regions_file,
    settings_from_config,
)
from fracture_lit.localization.localize import (
    Predictions,
    SplitLocalization,
    localize_datamodule_split,
    localize_files,
)
from fracture_lit.localization.regions import ImageRegions
from fracture_lit.review.gradcam import captioned_overlay
from fracture_lit.review.panels import save_panel

__all__ = ["LocalizationRun", "write_panels"]

log = logging.getLogger(__name__)
PANEL_KINDS = ("best", "worst")


class LocalizationRun:
    """Grad-CAM scored against one run's regions, split after split (see the module doc).

    ``config`` is the ``localization`` block; ``regions_key`` the setting that names the
    regions (``data.regions``; predict's ``regions``), for messages.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None,
        *,
        regions_key: str = "data.regions",
        target_layer: str | None = None,
        tta: str = "none",
    ) -> None:
        self.config = dict(config or {})
        self.settings = settings_from_config(self.config, target_layer=target_layer, tta=tta)
        self.n_panels = int(self.config.get("n_panels", 4))
        self.regions_key = regions_key
        self.regions_path: Path | None = None
        self._matched: dict[str, ImageRegions] | None = None
        #: split -> its block, as metrics.json keeps it under ``localization``.
        self.blocks: dict[str, dict[str, Any]] = {}

    def use_regions(self, setting: Any, root: str | Path | None) -> bool:
        """Resolve the regions setting (``auto``: the dataset's own); whether to score."""
        path = regions_file(setting, root, self.regions_key)
        self.regions_path = (
            path if localization_enabled(self.config, path, self.regions_key) else None
        )
        return self.regions_path is not None

    def datamodule_regions(self, datamodule: Any) -> dict[str, ImageRegions] | None:
        """The regions matched to a set-up datamodule's images (once); None when off."""
        if self._matched is None:
            if not self.use_regions(getattr(datamodule, "regions", None), datamodule.root):
                self._matched = {}
            else:
                self._matched = datamodule_regions(datamodule, self.regions_path)
        return self._matched if self.regions_path is not None else None

    def score(
        self,
        net: nn.Module,
        predictions: Predictions,
        regions: Mapping[str, ImageRegions],
        review_folder: str | Path,
        pipeline: Any,
        datamodule: Any = None,
    ) -> dict[str, Any]:
        """Score one split, write its heatmaps file and panels; returns (and keeps) its block.

        The images come from ``datamodule``'s cached split when it has that split (the
        pixels the predictions were made from), else through ``pipeline`` (eval's
        ``split=all``, predict); the panels are drawn on ``pipeline``'s images.
        """
        start = time.perf_counter()
        datasets = getattr(datamodule, "datasets", {}) if datamodule is not None else {}
        if predictions.split in datasets:
            result = localize_datamodule_split(net, datamodule, predictions, regions, self.settings)
        else:
            result = localize_files(net, pipeline, predictions, regions, self.settings)
        review = ReviewLayout(Path(review_folder))
        result.save_heatmaps(review.folder)
        panels = write_panels(result, review, pipeline, self.n_panels)
        block = {
            **result.block(),
            "regions_file": str(self.regions_path) if self.regions_path else None,
            "panels": panels,
            "seconds": round(time.perf_counter() - start, 2),
        }
        log.info(
            "Localization of %s: %d image(s) scored in %.1f s (%s)",
            predictions.split,
            block["n_images"],
            block["seconds"],
            review.localization(predictions.split),
        )
        self.blocks[predictions.split] = block
        return block


def _caption(result: SplitLocalization, i: int, kind: str) -> str:
    scores = result.methods["gradcam"]
    pointing, energy = scores.column("pointing")[i], scores.column("energy")[i]
    called = "called" if bool(result.correct[i]) else "missed"
    return (
        f"{kind}: {Path(result.ids[i]).name} | {'hit' if pointing else 'miss'}, "
        f"energy {energy:.2f} | {called}"
    )


def write_panels(
    result: SplitLocalization, review: ReviewLayout, pipeline: Any, n: int
) -> list[dict[str, Any]]:
    """Best and worst hits by energy inside the regions (up to ``n`` each, never the same
    image twice), the regions outlined over image and heatmap. Returns what each shows."""
    order = result.ranked("energy")
    best = order[: min(n, (len(order) + 1) // 2)]
    worst = order[len(best) :][::-1][:n]
    scores = result.methods["gradcam"]
    written: list[dict[str, Any]] = []
    for kind, chosen in zip(PANEL_KINDS, (best, worst), strict=True):
        for number, i in enumerate(chosen):
            try:
                image = pipeline.read(result.ids[i])[0]
            except BadImageError as error:
                log.warning("Localization panel skips %s: %s", result.ids[i], error)
                continue
            heatmap = result.heatmaps[i].astype(np.float32)
            panel = captioned_overlay(
                image, heatmap, _caption(result, i, kind), outlines=result.outlines(i)
            )
            path = save_panel(panel, review.localization_panel(result.split, kind, number))
            written.append(
                {
                    "kind": kind,
                    "file": path.relative_to(review.folder).as_posix(),
                    "path": result.ids[i],
                    "called": bool(result.correct[i]),
                    **{s: float(scores.column(s)[i]) for s in ("pointing", "energy", "iou")},
                }
            )
    return written
