"""Localization on the FracAtlas sample, recomputed independently from the saved heatmaps.

A model trained here (a few steps of a from-scratch ResNet-18; the slow test: a real tiny
training run and its best checkpoint) is scored on val and test. The test then recomputes
the pointing game, energy and IoU from nothing but the saved ``.npz`` and the COCO file,
with its own plain numpy + ``cv2.fillPoly`` code: regions filled at full resolution,
area-resized to the heatmap, the maximum mapped back to original pixels and looked up in
the region grown by the 15 px tolerance.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fracture_lit.data.datasets.fracatlas import FracAtlasDataModule
from fracture_lit.inference.split import predict_split
from fracture_lit.localization.files import load_heatmaps, load_per_image, save_heatmaps
from fracture_lit.localization.geometry import InputGeometry
from fracture_lit.localization.localize import (
    LocalizationSettings,
    SplitLocalization,
    localize_datamodule_split,
)
from fracture_lit.localization.regions import (
    default_regions_file,
    match_regions,
    read_coco_regions,
)
from fracture_lit.localization.scores import ImageTarget, score_heatmap
from fracture_lit.models.factory import create_backbone
from tests.conftest import REAL_SMALL, compose_entry
from tests.localization_data import fracatlas_with_regions, single_thread

SETTINGS = LocalizationSettings(n_bootstrap=200)
SCORES = ("pointing", "energy", "iou")


@pytest.fixture(scope="module")
def fracatlas(shared_data: Path) -> Path:
    return fracatlas_with_regions(shared_data)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


# ----------------------------------------------------------------- independent recompute
def _coco_masks(coco: dict, file_name: str) -> tuple[np.ndarray, int, int]:
    image = next(im for im in coco["images"] if im["file_name"] == file_name)
    full = np.zeros((image["height"], image["width"]), np.uint8)
    for annotation in coco["annotations"]:
        if annotation["image_id"] == image["id"]:
            for flat in annotation["segmentation"]:
                cv2.fillPoly(full, [np.round(np.reshape(flat, (-1, 2)) - 0.5).astype(np.int32)], 1)
    return full, image["width"], image["height"]


def _to_input(full: np.ndarray, size: int, mode: str) -> tuple[np.ndarray, float, float, int, int]:
    """The full-resolution mask area-resized into the square input, and the placement."""
    height, width = full.shape
    if mode == "resize":
        rows, cols, top, left = size, size, 0, 0
    else:
        scale = size / max(height, width)
        rows, cols = round(height * scale), round(width * scale)
        top, left = (size - rows) // 2, (size - cols) // 2
    coverage = np.zeros((size, size), np.float32)
    coverage[top : top + rows, left : left + cols] = cv2.resize(
        full.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA
    )
    mask = coverage >= 0.5
    if not mask.any():  # a fracture smaller than half a pixel keeps its best pixel
        mask.flat[int(coverage.argmax())] = True
    return mask, cols / width, rows / height, top, left


def recompute(npz: Path, coco_file: Path, tolerance: int = 15, threshold: float = 0.15) -> dict:
    """Per-image pointing, energy and IoU from the saved heatmaps and the COCO file."""
    with np.load(npz) as data:
        ids, maps = list(data["ids"]), data["heatmaps"].astype(np.float32)
        meta = json.loads(str(data["meta"]))
    coco = json.loads(coco_file.read_text())
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    out: dict[str, list[float]] = defaultdict(list)
    for path, heatmap in zip(ids, maps, strict=True):
        full, width, height = _coco_masks(coco, Path(path).name)
        mask, sx, sy, top, left = _to_input(full, heatmap.shape[0], meta["resize_mode"])
        row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
        x, y = (col + 0.5 - left) / sx, (row + 0.5 - top) / sy
        grown = cv2.dilate(full, grow)
        inside = 0 <= x < width and 0 <= y < height and grown[int(y), int(x)]
        flat = heatmap.max() == heatmap.min()  # Grad-CAM found nothing: points nowhere
        out["pointing"].append(float(inside and not flat))
        out["energy"].append(float(mask.mean() if flat else heatmap[mask].sum() / heatmap.sum()))
        above = heatmap >= threshold * heatmap.max()
        out["iou"].append(float((above & mask).sum() / (above | mask).sum()))
        # The centre prior's energy: a Gaussian, sigma a quarter of the side.
        axis = np.arange(heatmap.shape[0]) + 0.5 - heatmap.shape[0] / 2
        gauss = np.exp(-0.5 * (axis / (0.25 * heatmap.shape[0])) ** 2)
        centre = np.outer(gauss, gauss)
        out["centre_energy"].append(float(centre[mask].sum() / centre.sum()))
        row, col = np.unravel_index(centre.argmax(), centre.shape)
        x, y = (col + 0.5 - left) / sx, (row + 0.5 - top) / sy
        out["centre_pointing"].append(float(grown[int(y), int(x)]))
        # A random heatmap's expected pointing: the share of pixels within the tolerance.
        rows_, cols_ = np.indices(heatmap.shape)
        xs = np.clip(((cols_ + 0.5 - left) / sx).astype(int), 0, width - 1)
        ys = np.clip(((rows_ + 0.5 - top) / sy).astype(int), 0, height - 1)
        inside_image = (cols_ + 0.5 >= left) & (cols_ + 0.5 < left + sx * width)
        inside_image &= (rows_ + 0.5 >= top) & (rows_ + 0.5 < top + sy * height)
        out["random_pointing"].append(float((grown[ys, xs].astype(bool) & inside_image).mean()))
    return {"ids": ids, "meta": meta, **{k: np.array(v) for k, v in out.items()}}


def check_against_recompute(result: SplitLocalization, folder: Path, coco_file: Path) -> None:
    """The block's numbers, and each image's, agree with the independent recompute."""
    saved = result.save_heatmaps(folder)
    ids, maps, meta = load_heatmaps(saved)
    assert ids == result.ids and np.array_equal(maps, result.heatmaps)
    assert meta["settings"]["tolerance_px"] == 15.0 and meta["split"] == result.split
    for method in ("gradcam", "random", "centre"):  # what a sweep pairs jobs with
        assert load_per_image(saved, "energy", method) == result.per_image("energy", method)
    again = recompute(saved, coco_file)
    model = result.methods["gradcam"]
    n = len(ids)
    # Pointing: the same hit or miss per image, up to one image on a pixel's edge.
    assert (model.column("pointing") != again["pointing"]).sum() <= max(1, n // 20)
    for score, tolerance in (("energy", 0.02), ("iou", 0.03)):
        assert np.abs(model.column(score) - again[score]).max() < 2 * tolerance, score
        assert abs(model.column(score).mean() - again[score].mean()) < tolerance, score
    block = result.block()["groups"]["all"]
    for score in SCORES:
        assert block["gradcam"][score]["value"] == pytest.approx(model.column(score).mean())
    centre = result.methods["centre"]
    assert (centre.column("pointing") != again["centre_pointing"]).sum() <= max(1, n // 20)
    assert np.abs(centre.column("energy") - again["centre_energy"]).max() < 0.02
    random = block["random"]["pointing"]["value"]
    assert random == pytest.approx(again["random_pointing"].mean(), abs=0.05)


def check_block(block: dict, expected_ids: list[str]) -> None:
    """What a table needs: every score of every method with a CI, n and the settings."""
    assert block["n_images"] == len(expected_ids) > 10
    assert block["target_layer"] == "layer4" and block["explains"] == "fractured"
    assert block["settings"]["tolerance_px"] == 15.0 and block["settings"]["threshold"] == 0.15
    groups = block["groups"]
    assert groups["all"]["n"] == groups["correct"]["n"] + groups["missed"]["n"] == len(expected_ids)
    for method in ("gradcam", "random", "centre"):
        for score in (*SCORES, "box_hit", "max_box_acc"):
            entry = groups["all"][method][score]
            assert entry["low"] <= entry["value"] <= entry["high"], (method, score)
    json.dumps(block)  # JSON-able as it is, for metrics.json


def _fractured_with_regions(
    datamodule: FracAtlasDataModule, split: str, regions: dict
) -> list[str]:
    return [
        s.path
        for s in datamodule.samples
        if s.split == split and s.label == 1 and s.path in regions
    ]


# ----------------------------------------------------------------- heatmaps with known hits
@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_known_heatmaps_recompute_independently(fracatlas: Path, mode: str, tmp_path: Path) -> None:
    """Maps peaked at, near and away from each fracture (a barely trained model hits too
    rarely to test the pointing game): hits and misses agree with the recompute."""
    coco_file = default_regions_file(fracatlas)
    regions = read_coco_regions(coco_file)
    rng = np.random.default_rng(0)
    size, ids, maps, mine = 96, [], [], defaultdict(list)
    for name in sorted(regions)[:48]:
        image = regions[name]
        geometry = InputGeometry.of_image(image.width, image.height, size, mode)
        target = ImageTarget.build(image, geometry, size)
        polygon = image.regions[0].polygons[0]
        # From the region's centre outwards: inside, near, or up to 60 px past its edge.
        angle = rng.uniform(0, 2 * np.pi)
        reach = np.abs(polygon - polygon.mean(axis=0)).max() + rng.uniform(-20, 60)
        point = polygon.mean(axis=0) + reach * np.array([np.cos(angle), np.sin(angle)])
        px, py = geometry.to_input(point[None])[0]
        grid = np.arange(size) + 0.5
        heatmap = np.exp(-((grid[None] - px) ** 2 + (grid[:, None] - py) ** 2) / 8.0)
        heatmap = heatmap.astype(np.float16).astype(np.float32)
        scores, _ = score_heatmap(heatmap, target)
        for key in SCORES:
            mine[key].append(scores[key])
        ids.append(f"/data/{name}")
        maps.append(heatmap)
    saved = save_heatmaps(tmp_path / "known.npz", ids, np.array(maps), {"resize_mode": mode})
    again = recompute(saved, coco_file)
    pointing = np.array(mine["pointing"])
    assert 0.2 < pointing.mean() < 0.8  # hits and misses both
    assert (pointing != again["pointing"]).sum() <= 2
    # Per image, a peak on a region's edge swings with the edge pixels; on average, not.
    assert np.abs(np.array(mine["energy"]) - again["energy"]).max() < 0.15
    assert abs(np.mean(mine["energy"]) - again["energy"].mean()) < 0.01
    assert abs(np.mean(mine["iou"]) - again["iou"].mean()) < 0.02


# ----------------------------------------------------------------- a model trained here
@pytest.fixture(scope="module")
def trained_here(
    fracatlas: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None
) -> dict:
    datamodule = FracAtlasDataModule(
        fracatlas,
        image_size=64,
        batch_size=32,
        augment=None,
        cache_dir=tmp_path_factory.mktemp("cache"),
        group_duplicates=False,
    )
    datamodule.setup()
    torch.manual_seed(0)
    net = create_backbone("resnet18", num_classes=2)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for step, (images, labels) in enumerate(datamodule.train_dataloader()):
        loss = torch.nn.functional.cross_entropy(net(datamodule.normalizer(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 3:  # a few steps: the scores, not the model, are under test
            break
    net.eval()
    coco_file = default_regions_file(fracatlas)
    regions = match_regions(read_coco_regions(coco_file), [s.path for s in datamodule.samples])
    return {"net": net, "datamodule": datamodule, "regions": regions, "coco": coco_file}


@pytest.mark.parametrize("split", ["val", "test"])
def test_scores_recompute_independently(trained_here: dict, split: str, tmp_path: Path) -> None:
    datamodule, regions = trained_here["datamodule"], trained_here["regions"]
    pred = predict_split(trained_here["net"], datamodule, split, datamodule.classes)
    result = localize_datamodule_split(trained_here["net"], datamodule, pred, regions, SETTINGS)
    check_block(result.block(), _fractured_with_regions(datamodule, split, regions))
    check_against_recompute(result, tmp_path, trained_here["coco"])


# ----------------------------------------------------------------- a real training run
@pytest.mark.slow
def test_tiny_training_run_best_checkpoint(fracatlas: Path, tmp_path: Path) -> None:
    """train -> best checkpoint -> its val/test localization, at its validation threshold."""
    from hydra.utils import instantiate

    from fracture_lit.models.loading import load_checkpoint
    from fracture_lit.tasks.training import run as train_run

    overrides = [
        "data=fracatlas",
        f"data.root={fracatlas}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *REAL_SMALL,
        "~callbacks.review",
        "data.image_size=64",
        "data.batch_size=32",
    ]
    cfg = compose_entry("train", overrides, tmp_path / "run")
    results = train_run(cfg)
    assert results["status"] == "done"
    loaded = load_checkpoint(results["best_model_path"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    coco_file = default_regions_file(fracatlas)
    regions = match_regions(read_coco_regions(coco_file), [s.path for s in datamodule.samples])
    for split in ("val", "test"):
        pred = predict_split(
            loaded.model, datamodule, split, loaded.class_names, threshold=loaded.threshold
        )
        result = localize_datamodule_split(loaded.model.net, datamodule, pred, regions, SETTINGS)
        block = result.block()
        assert block["decision_threshold"] == pytest.approx(loaded.threshold)
        check_block(block, _fractured_with_regions(datamodule, split, regions))
        check_against_recompute(result, tmp_path / split, coco_file)
