"""A region drawn into an image lands, after the real input pipeline, where the geometry
maps it: resize and letterbox, non-square images, PNG and large (draft-decoded) JPEG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fracture_lit.data.input_settings import InputSettings
from fracture_lit.inference.pipeline import InputPipeline
from fracture_lit.localization.geometry import InputGeometry


def _polygons(width: int, height: int, seed: int) -> list[np.ndarray]:
    """Two irregular polygons, about a fifth of the image across, in original pixels."""
    rng = np.random.default_rng(seed)
    out = []
    for cx, cy in ((0.3, 0.35), (0.7, 0.7)):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radius = rng.uniform(0.06, 0.11, 9) * min(width, height) * 1.5
        out.append(
            np.column_stack(
                [cx * width + radius * np.cos(angles), cy * height + radius * np.sin(angles)]
            )
        )
    return out


def _draw(path: Path, width: int, height: int, polygons: list[np.ndarray]) -> None:
    """The regions filled white on a black image (pixel centres inside, sub-pixel vertices)."""
    image = np.zeros((height, width), np.uint8)
    fixed = [np.round((p - 0.5) * 256).astype(np.int32) for p in polygons]
    cv2.fillPoly(image, fixed, 255, shift=8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 98] if path.suffix == ".jpg" else []
    assert cv2.imwrite(str(path), image, params)


def _only_edges_differ(got: np.ndarray, expected: np.ndarray, band: int = 1) -> bool:
    """Every pixel where the two masks disagree lies within ``band`` pixels of the
    expected mask's outline."""
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    grown = cv2.dilate(expected.astype(np.uint8), kernel).astype(bool)
    shrunk = cv2.erode(expected.astype(np.uint8), kernel).astype(bool)
    return not ((got ^ expected) & ~(grown & ~shrunk)).any()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize(
    ("width", "height", "suffix", "size", "mode"),
    [
        (373, 454, ".png", 64, "resize"),
        (373, 454, ".png", 64, "letterbox"),
        (454, 373, ".png", 48, "letterbox"),
        (2304, 2880, ".jpg", 64, "resize"),  # decoded at 1/8 scale first
        (2880, 2304, ".jpg", 96, "letterbox"),
        (150, 90, ".png", 224, "letterbox"),  # upscaled
    ],
)
def test_drawn_region_lands_on_the_mapped_pixels(
    tmp_path: Path, width: int, height: int, suffix: str, size: int, mode: str
) -> None:
    polygons = _polygons(width, height, seed=width + size)
    path = tmp_path / f"drawn{suffix}"
    _draw(path, width, height, polygons)
    pipeline = InputPipeline(InputSettings(image_size=size, resize_mode=mode))
    seen = pipeline.read(path)[0] >= 128  # what the model's input holds
    geometry = InputGeometry.of_image(width, height, size, mode)
    mapped = geometry.rasterize(polygons)
    assert mapped.sum() > 30  # a real region, not a speck
    # The drawing itself is quantised to original pixels: upscaled, that is more than one
    # input pixel (half an original pixel, plus half an input pixel).
    band = int(np.ceil(0.5 * max(max(geometry.scale), 1.0) + 0.5))
    # IoU 0.95 is what a one-pixel shift of these regions would already fail.
    assert _iou(seen, mapped) > (0.95 if band == 1 else 0.85)
    assert _only_edges_differ(seen, mapped, band)
    # Test-time flip: the mirrored input against the mirrored geometry.
    flipped = InputGeometry.of_image(width, height, size, mode, flip=True)
    assert _only_edges_differ(np.fliplr(seen), flipped.rasterize(polygons), band)
    # The same mask at another (heatmap) resolution is the input mask resampled.
    half = geometry.rasterize(polygons, size // 2)
    area = cv2.resize(mapped.astype(np.float32), (size // 2, size // 2), cv2.INTER_AREA)
    assert _iou(half, area >= 0.5) > 0.8


def test_coordinates_round_trip_and_tolerance_scales_per_axis() -> None:
    geometry = InputGeometry.of_image(400, 200, 100, "resize", flip=True)
    points = np.array([[0.0, 0.0], [400.0, 200.0], [123.4, 56.7]])
    assert np.allclose(geometry.to_original(geometry.to_input(points)), points)
    assert geometry.to_input(np.array([[0.0, 0.0]])).tolist() == [[100.0, 0.0]]  # mirrored
    assert geometry.tolerance_in_input(15) == (3.75, 7.5)  # 100/400 and 100/200 per pixel
    letterbox = InputGeometry.of_image(400, 200, 100, "letterbox")
    assert (letterbox.top, letterbox.left, letterbox.rows, letterbox.cols) == (25, 0, 50, 100)
    assert letterbox.tolerance_in_input(15) == (3.75, 3.75)  # aspect kept: one scale
    assert letterbox.box_to_input((0, 0, 400, 200)).tolist() == [0.0, 25.0, 100.0, 75.0]


def test_a_region_smaller_than_a_pixel_keeps_one_pixel() -> None:
    geometry = InputGeometry.of_image(2000, 2000, 32, "resize")
    tiny = np.array([[1000.0, 1000.0], [1010.0, 1000.0], [1010.0, 1010.0]])
    mask = geometry.rasterize([tiny])
    assert mask.sum() == 1 and mask[16, 16]
