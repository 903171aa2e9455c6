"""Map regions through the geometry the model saw: original-image pixels -> model input.

An image reaches the network through :func:`fracture_lit.data.cache.fit_to_square` (a
plain resize or a letterbox to ``image_size``), no crop at evaluation time (the
``central_crop`` preset is a training augmentation), and, with ``tta=flip``, a
left-right mirror. That is a scale and a shift per axis plus an optional mirror;
:class:`InputGeometry` takes the content box from
:func:`~fracture_lit.data.cache.square_placement`, the function ``fit_to_square`` itself
places images with, so the two cannot drift apart.

Coordinates are continuous, with ``(0, 0)`` the top-left corner of the top-left pixel
(COCO's convention; cv2's resizes keep pixel areas aligned in it). One caveat, measured
by the tests: a large JPEG is decoded at 1/2-1/8 scale first, and in letterbox mode the
content box is rounded from that smaller size, which can move an edge by one input pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fracture_lit.data.cache import square_placement

__all__ = ["InputGeometry"]

_SHIFT = 8  # fractional bits for cv2.fillPoly: polygons keep sub-pixel vertices
_SUPERSAMPLE = 8  # sub-pixels per pixel and axis when measuring how much a region covers


@dataclass(frozen=True)
class InputGeometry:
    """Where a ``width`` x ``height`` image lies in the ``size`` x ``size`` model input."""

    width: int
    height: int
    size: int
    top: int
    left: int
    rows: int
    cols: int
    flip: bool = False

    @classmethod
    def of_image(
        cls, width: int, height: int, size: int, resize_mode: str, flip: bool = False
    ) -> InputGeometry:
        """The geometry the data pipeline gives an image of this size."""
        top, left, rows, cols = square_placement(int(height), int(width), int(size), resize_mode)
        return cls(int(width), int(height), int(size), top, left, rows, cols, bool(flip))

    @property
    def scale(self) -> tuple[float, float]:
        """Input pixels per original pixel along x and y (they differ in resize mode)."""
        return self.cols / self.width, self.rows / self.height

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` original ``(x, y)`` -> input coordinates."""
        sx, sy = self.scale
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        x = self.left + points[:, 0] * sx
        y = self.top + points[:, 1] * sy
        return np.column_stack([self.size - x if self.flip else x, y])

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` input ``(x, y)`` -> original coordinates (the inverse of :meth:`to_input`)."""
        sx, sy = self.scale
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        x = self.size - points[:, 0] if self.flip else points[:, 0]
        return np.column_stack([(x - self.left) / sx, (points[:, 1] - self.top) / sy])

    def box_to_input(self, box: Sequence[float]) -> np.ndarray:
        """COCO ``(x, y, w, h)`` -> ``(x0, y0, x1, y1)`` in input coordinates."""
        x, y, w, h = (float(v) for v in box)
        corners = self.to_input(np.array([[x, y], [x + w, y + h]]))
        low, high = corners.min(axis=0), corners.max(axis=0)
        return np.concatenate([low, high])

    def tolerance_in_input(self, pixels: float) -> tuple[float, float]:
        """A distance in original pixels as input pixels along x and y."""
        sx, sy = self.scale
        return pixels * sx, pixels * sy

    def rasterize(
        self, polygons: Sequence[np.ndarray], resolution: int | None = None
    ) -> np.ndarray:
        """Boolean ``(R, R)`` mask of the polygons (original coordinates) in the input, at
        ``resolution`` (default: the input size, which is the Grad-CAM map's).

        A pixel is set when the regions cover at least half of it, as a region drawn into
        the image would survive the pipeline's area-averaging resize. (``cv2.fillPoly``
        alone also sets every pixel the outline touches: a fifth too many for a small
        fracture.) A region smaller than that still sets its best-covered pixel, so no
        annotated fracture vanishes.
        """
        resolution = int(resolution or self.size)
        mask = np.zeros((resolution, resolution), bool)
        if not polygons:
            return mask
        points = [self.to_input(p) * (resolution / self.size) for p in polygons]
        every = np.concatenate(points)
        x0, y0 = np.clip(np.floor(every.min(axis=0)).astype(int), 0, resolution - 1)
        x1, y1 = np.clip(np.ceil(every.max(axis=0)).astype(int), x0 + 1, resolution)
        fine = np.zeros(((y1 - y0) * _SUPERSAMPLE, (x1 - x0) * _SUPERSAMPLE), np.uint8)
        offset = np.array([x0, y0], dtype=np.float64)
        fixed = [
            np.round(((p - offset) * _SUPERSAMPLE - 0.5) * (1 << _SHIFT)).astype(np.int32)
            for p in points
        ]
        cv2.fillPoly(fine, fixed, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        coverage = fine.reshape(y1 - y0, _SUPERSAMPLE, x1 - x0, _SUPERSAMPLE).mean(axis=(1, 3))
        window = coverage >= 0.5
        if not window.any() and coverage.max() > 0:
            window.flat[int(coverage.argmax())] = True
        mask[y0:y1, x0:x1] = window
        return mask
