"""Per-image scores of one heatmap against one image's fracture regions.

The weak-localization literature's settled measures, each a number per image so that
images can be resampled (bootstrap CIs) and paired across models:

* ``pointing``: the pointing game (Zhang et al. 2016; TorchRay): 1 when the heatmap's
  maximum lies inside a region or within ``tolerance_px`` ORIGINAL-image pixels of it
  (TorchRay uses 15). The maximum is mapped back to the original image and its distance to
  each polygon measured there, so the tolerance means the same on every image size;
* ``energy``: the energy-based pointing game (Score-CAM): the share of the heatmap's mass
  inside the regions (polygons, not boxes: fractures are thin);
* ``iou``: IoU of the heatmap above ``threshold`` (15%) of its maximum with the regions
  (the Grad-CAM paper's threshold);
* ``box_hit``: the Grad-CAM paper's localization test: the box around the largest
  connected area above ``threshold`` of the maximum has IoU >= ``box_min_iou`` (0.5) with
  a region's box;
* the same box test at every threshold of :data:`THRESHOLD_SWEEP`, from which the scoring
  takes MaxBoxAcc (Choe et al. 2020: the best threshold's hit rate over the images).

A flat heatmap (all values equal: the CAM found nothing) points nowhere: pointing and the
box tests are 0, energy and IoU are what a uniform map gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fracture_lit.localization.geometry import InputGeometry
from fracture_lit.localization.names import IMAGE_SCORES, THRESHOLD_SWEEP
from fracture_lit.localization.regions import ImageRegions

__all__ = [
    "IMAGE_SCORES",
    "THRESHOLD_SWEEP",
    "ImageTarget",
    "ScoreSettings",
    "box_iou",
    "is_flat",
    "largest_boxes",
    "score_heatmap",
]

_FLAT = 1e-6


@dataclass(frozen=True)
class ScoreSettings:
    """The knobs of the scores; reported with every result so numbers stay comparable."""

    tolerance_px: float = 15.0  # pointing game, in original-image pixels (TorchRay: 15)
    threshold: float = 0.15  # fraction of the maximum (Grad-CAM paper)
    box_min_iou: float = 0.5  # a box "hits" at this IoU (ILSVRC, Grad-CAM paper)


@dataclass(frozen=True)
class ImageTarget:
    """One image's regions, prepared once at heatmap resolution for every heatmap scored."""

    geometry: InputGeometry
    polygons: tuple[np.ndarray, ...]  # original coordinates, float32 contours
    mask: np.ndarray  # bool (R, R): the regions at heatmap resolution
    boxes: np.ndarray  # (n, 4) x0, y0, x1, y1 in heatmap pixels

    @classmethod
    def build(cls, image: ImageRegions, geometry: InputGeometry, resolution: int) -> ImageTarget:
        polygons = [p for region in image.regions for p in region.polygons]
        factor = resolution / geometry.size
        boxes = [geometry.box_to_input(region.box) * factor for region in image.regions]
        return cls(
            geometry=geometry,
            polygons=tuple(p.astype(np.float32).reshape(-1, 1, 2) for p in polygons),
            mask=geometry.rasterize(polygons, resolution),
            boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        )


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(x0, y0, x1, y1)`` box with each row of ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _largest_box(above: np.ndarray) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` around the largest 8-connected area of ``above``."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(above.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    k = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    x, y, w, h = (float(v) for v in stats[k, :4])
    return np.array([x, y, x + w, y + h])


def _pointing(heatmap: np.ndarray, target: ImageTarget, tolerance_px: float) -> float:
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    per_input = target.geometry.size / heatmap.shape[0]
    point = target.geometry.to_original(np.array([[col + 0.5, row + 0.5]]) * per_input)[0]
    where = (float(point[0]), float(point[1]))
    # Signed distance to each polygon's outline, positive inside (original pixels).
    best = max(cv2.pointPolygonTest(p, where, True) for p in target.polygons)
    return float(best >= -tolerance_px)


def is_flat(heatmap: np.ndarray) -> bool:
    """All values equal (Grad-CAM found nothing): the map points nowhere."""
    return float(heatmap.max()) - float(heatmap.min()) < _FLAT


def largest_boxes(heatmap: np.ndarray, fractions: Sequence[float]) -> list[np.ndarray | None]:
    """The box around the largest area above each fraction of the maximum (None: none).

    Separate from :func:`score_heatmap` so a map shared by every image (the centre prior)
    is measured once; each box costs a connected-components pass.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if is_flat(heatmap):
        return [None] * len(fractions)
    top = float(heatmap.max())
    return [_largest_box(heatmap >= f * top) for f in fractions]


def score_heatmap(
    heatmap: np.ndarray,
    target: ImageTarget,
    settings: ScoreSettings = ScoreSettings(),
    sweep: Sequence[float] = THRESHOLD_SWEEP,
    boxes: Sequence[np.ndarray | None] | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """The :data:`IMAGE_SCORES` of one heatmap, and its box hits at each ``sweep`` threshold.

    ``boxes``: :func:`largest_boxes` of ``(settings.threshold, *sweep)`` when already known.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    mask = target.mask
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap {heatmap.shape} and region mask {mask.shape} differ")
    flat = is_flat(heatmap)
    total = float(heatmap.sum())
    energy = float(heatmap[mask].sum()) / total if total > 0 and not flat else float(mask.mean())
    region = heatmap >= settings.threshold * float(heatmap.max())
    union = int((region | mask).sum())
    if boxes is None:
        boxes = largest_boxes(heatmap, (settings.threshold, *sweep))
    hits = np.array(
        [
            b is not None and bool((box_iou(b, target.boxes) >= settings.box_min_iou).any())
            for b in boxes
        ],
        dtype=np.float32,
    )
    scores = {
        "pointing": 0.0 if flat else _pointing(heatmap, target, settings.tolerance_px),
        "energy": energy,
        "iou": int((region & mask).sum()) / union if union else 0.0,
        "box_hit": float(hits[0]),
    }
    return scores, hits[1:]
