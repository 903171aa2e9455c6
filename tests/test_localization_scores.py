"""Per-image localization scores, baselines and their bootstrap summaries, on maps whose
answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_lit.errors import ConfigError
from fracture_lit.localization.baselines import centre_prior, random_heatmaps
from fracture_lit.localization.geometry import InputGeometry
from fracture_lit.localization.localize import LocalizationSettings
from fracture_lit.localization.regions import ImageRegions, Region
from fracture_lit.localization.scores import (
    THRESHOLD_SWEEP,
    ImageTarget,
    ScoreSettings,
    score_heatmap,
)
from fracture_lit.localization.scoring import MethodScores, summarize
from fracture_lit.stats import MIN_IMAGES_FOR_CI

# A 400 x 200 image resized to 100 x 100: x shrinks 4x, y 2x.
GEOMETRY = InputGeometry.of_image(400, 200, 100, "resize")
SQUARE = np.array([[100.0, 50.0], [140.0, 50.0], [140.0, 90.0], [100.0, 90.0]])


def _target(polygon: np.ndarray = SQUARE, geometry: InputGeometry = GEOMETRY) -> ImageTarget:
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    box = (low[0], low[1], high[0] - low[0], high[1] - low[1])
    image = ImageRegions("x.png", geometry.width, geometry.height, (Region((polygon,), box),))
    return ImageTarget.build(image, geometry, geometry.size)


def _peak_at(x: float, y: float, geometry: InputGeometry = GEOMETRY) -> np.ndarray:
    """A heatmap whose maximum is the input pixel holding original point (x, y)."""
    heatmap = np.zeros((geometry.size, geometry.size), np.float32)
    col, row = geometry.to_input(np.array([[x, y]]))[0].astype(int)
    heatmap[row, col] = 1.0
    return heatmap


def test_pointing_tolerance_is_in_original_pixels() -> None:
    target = _target()
    # 10 original pixels right of the square: 2.5 input pixels in x.
    outside = _peak_at(150.5, 70.0)
    for tolerance, hit in ((15.0, 1.0), (5.0, 0.0)):
        scores, _ = score_heatmap(outside, target, ScoreSettings(tolerance_px=tolerance))
        assert scores["pointing"] == hit
    # 10 original pixels below it: 5 input pixels in y, the same answer.
    below = _peak_at(120.0, 100.5)
    assert score_heatmap(below, target, ScoreSettings(tolerance_px=15))[0]["pointing"] == 1
    assert score_heatmap(below, target, ScoreSettings(tolerance_px=5))[0]["pointing"] == 0
    inside = _peak_at(120.0, 70.0)
    assert score_heatmap(inside, target, ScoreSettings(tolerance_px=0))[0]["pointing"] == 1


def test_energy_iou_and_box_hits() -> None:
    target = _target()
    mask = target.mask
    exact = mask.astype(np.float32)
    scores, sweep = score_heatmap(exact, target)
    assert scores["energy"] == pytest.approx(1.0)
    assert scores["iou"] == pytest.approx(1.0) and scores["box_hit"] == 1.0
    assert sweep.shape == (len(THRESHOLD_SWEEP),) and sweep.all()
    # A floor at 10% of the maximum: below the 15% threshold, so the IoU stays 1, and the
    # energy is the regions' share of the mass.
    floored = np.where(mask, 1.0, 0.1).astype(np.float32)
    scores, sweep = score_heatmap(floored, target)
    expected = mask.sum() / (mask.sum() + 0.1 * (~mask).sum())
    assert scores["energy"] == pytest.approx(expected, rel=1e-5)
    assert scores["iou"] == pytest.approx(1.0)
    assert sweep[0] == 0.0 and sweep[-1] == 1.0  # at 5% everything is one big box
    # Elsewhere entirely: nothing hits.
    away = np.zeros_like(exact)
    away[80:95, 80:95] = 1.0
    scores, sweep = score_heatmap(away, target)
    assert scores == {"pointing": 0.0, "energy": 0.0, "iou": 0.0, "box_hit": 0.0}
    assert not sweep.any()


def test_a_flat_heatmap_points_nowhere() -> None:
    target = _target()
    for value in (0.0, 0.7):
        flat = np.full(target.mask.shape, value, np.float32)
        scores, sweep = score_heatmap(flat, target)
        assert scores["pointing"] == 0.0 and scores["box_hit"] == 0.0 and not sweep.any()
        assert scores["energy"] == pytest.approx(target.mask.mean())


def test_baselines_are_seeded_per_image() -> None:
    a = random_heatmaps(32, "IMG1.jpg", draws=3, seed=0)
    assert a.shape == (3, 32, 32) and np.array_equal(a, random_heatmaps(32, "IMG1.jpg", 3, 0))
    assert not np.array_equal(a, random_heatmaps(32, "IMG2.jpg", 3, 0))
    assert not np.array_equal(a, random_heatmaps(32, "IMG1.jpg", 3, 1))
    centre = centre_prior(32)
    assert np.unravel_index(centre.argmax(), centre.shape) in {
        (15, 15),
        (15, 16),
        (16, 15),
        (16, 16),
    }
    assert np.allclose(centre, centre.T) and np.allclose(centre, centre[::-1])
    # The centre prior points at the centre: a hit only for a region there.
    middle = np.array([[180.0, 80.0], [220.0, 80.0], [220.0, 120.0], [180.0, 120.0]])
    big = centre_prior(GEOMETRY.size)
    assert score_heatmap(big, _target(middle))[0]["pointing"] == 1.0
    assert score_heatmap(big, _target())[0]["pointing"] == 0.0


def test_summaries_have_intervals_from_ten_images() -> None:
    rng = np.random.default_rng(0)
    hits = rng.random((40, 4)) < 0.6
    sweep = rng.random((40, len(THRESHOLD_SWEEP))) < np.linspace(0.1, 0.5, len(THRESHOLD_SWEEP))
    methods = {"gradcam": MethodScores(hits.astype(float), sweep.astype(float))}
    summary = summarize(methods, n_bootstrap=300)["gradcam"]
    for name, entry in summary.items():
        assert entry["low"] <= entry["value"] <= entry["high"], name
        assert entry["high"] - entry["low"] > 0.05  # 40 images: a real interval
    assert summary["pointing"]["value"] == pytest.approx(hits[:, 0].mean())
    best = sweep.mean(axis=0).argmax()
    assert summary["max_box_acc"]["value"] == pytest.approx(sweep.mean(axis=0)[best])
    assert summary["max_box_acc"]["threshold"] == THRESHOLD_SWEEP[best]
    few = {"gradcam": MethodScores(hits[: MIN_IMAGES_FOR_CI - 1], sweep[: MIN_IMAGES_FOR_CI - 1])}
    assert all(set(e) <= {"value", "threshold"} for e in summarize(few)["gradcam"].values())
    empty = {"gradcam": MethodScores(hits[:0], sweep[:0])}
    assert summarize(empty) == {}


@pytest.mark.parametrize(
    ("setting", "value"),
    [("tolerance_px", -1.0), ("threshold", 1.5), ("tta", "rotate"), ("random_draws", 0)],
)
def test_bad_settings_name_the_key(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^localization\.{setting}={value}: must"):
        LocalizationSettings(**{setting: value})
