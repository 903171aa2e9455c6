"""The one Grad-CAM panel writer: predict, eval's review, the training review callback and
the web app all draw and save heatmap panels here, so they look and are named alike.

A panel is the model's input image and its heatmap side by side under a caption
(:func:`~fracture_lit.review.gradcam.captioned_overlay`). The explainer (hooks on the
network) is built on the first batch and reused; close the writer (or use it as a context
manager) to release the hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
import torch

from fracture_lit.review.gradcam import CamExplainer, captioned_overlay

__all__ = ["CamPanelWriter", "cam_class", "save_panel"]


def cam_class(binary: bool, predicted: int) -> int:
    """The class a heatmap explains: binary, the positive class (where the model sees a
    fracture, whatever it decided); multi-class, the predicted class."""
    return 1 if binary else int(predicted)


def save_panel(panel: np.ndarray, path: Path) -> Path:
    """Write an RGB uint8 panel as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(panel[..., ::-1])):
        raise OSError(f"{path}: cannot write the Grad-CAM panel")
    return path


class CamPanelWriter:
    """Grad-CAM panels for batches of one network; the hooks live until :meth:`close`."""

    def __init__(self, net: torch.nn.Module, target_layer: str | None = None) -> None:
        self.net, self.target_layer = net, target_layer
        self._explainer = None

    def maps(self, batch: torch.Tensor, classes: Sequence[int]) -> np.ndarray:
        """Heatmaps ``(B, S, S)`` in [0, 1] of ``classes`` for a normalised batch."""
        batch = batch.to(next(self.net.parameters()).device)
        if self._explainer is None:
            self._explainer = CamExplainer(self.net, batch, self.target_layer)
        return self._explainer(batch, list(classes))

    def panels(
        self,
        batch: torch.Tensor,
        images: Sequence[np.ndarray],
        classes: Sequence[int],
        captions: Sequence[str],
    ) -> list[np.ndarray]:
        """RGB uint8 panels (image | heatmap, captioned), one per image."""
        maps = self.maps(batch, classes)
        return [
            captioned_overlay(image, cam, caption)
            for image, cam, caption in zip(images, maps, captions, strict=True)
        ]

    def write(
        self,
        batch: torch.Tensor,
        images: Sequence[np.ndarray],
        classes: Sequence[int],
        captions: Sequence[str],
        paths: Sequence[Path],
    ) -> list[Path]:
        """The panels of :meth:`panels`, saved as PNG at ``paths``."""
        panels = self.panels(batch, images, classes, captions)
        return [save_panel(panel, path) for panel, path in zip(panels, paths, strict=True)]

    def close(self) -> None:
        """Remove pytorch-grad-cam's hooks from the network."""
        if self._explainer is not None:
            self._explainer.close()
            self._explainer = None

    def __enter__(self) -> CamPanelWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
