"""Fracture regions from COCO files: FracAtlas as released, joined by file name, checked."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fracture_lit.errors import UserError
from fracture_lit.localization.regions import (
    RegionsError,
    default_regions_file,
    match_regions,
    read_coco_regions,
)
from tests.localization_data import fracatlas_with_regions


@pytest.fixture(scope="module")
def fracatlas(shared_data: Path) -> Path:
    return fracatlas_with_regions(shared_data)


def _images(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "images").rglob("*.jpg"))


def test_fracatlas_sample_regions_as_released(fracatlas: Path, caplog) -> None:
    regions = read_coco_regions(default_regions_file(fracatlas))
    assert len(regions) == 156 and regions.n_regions == 200
    paths = _images(fracatlas)
    fractured = ["/Fractured/" in p for p in paths]
    with caplog.at_level(logging.INFO, logger="fracture_lit.localization.regions"):
        matched = match_regions(regions, paths, fractured)
    assert len(matched) == 156  # every annotated image is a fractured file of the sample
    assert all("/Fractured/" in p for p in matched)
    lines = [r.getMessage() for r in caplog.records if "annotated images" in r.getMessage()]
    assert len(lines) == 1 and "156 of 156" in lines[0] and "0 not in it" in lines[0]
    assert "0 fractured images have no regions" in lines[0]
    for path, image in matched.items():  # sizes were checked against the files: re-check
        decoded = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert decoded.shape == (image.height, image.width), path
        for region in image.regions:
            x, y, w, h = region.box
            points = np.concatenate(region.polygons)
            assert x >= 0 and y >= 0 and x + w <= image.width + 1 and y + h <= image.height + 1
            assert points[:, 0].min() >= x - 1 and points[:, 0].max() <= x + w + 1


def test_regions_join_by_file_name_not_by_coco_id(fracatlas: Path) -> None:
    """FracAtlas' ids are sequential: IMG0000044.jpg has id 3, and id 44 is IMG0000750.jpg."""
    path = default_regions_file(fracatlas)
    coco = json.loads(path.read_text())
    entry = {im["file_name"]: im for im in coco["images"]}
    number_as_id = {
        name: int(re.sub(r"\D", "", name)) for name in entry if int(re.sub(r"\D", "", name))
    }
    clashes = [
        n
        for n, i in number_as_id.items()
        if i != entry[n]["id"] and i in {im["id"] for im in coco["images"]}
    ]
    assert "IMG0000044.jpg" in clashes  # a join by the number would pick another image
    regions = read_coco_regions(path)
    for name in clashes:
        own = [a for a in coco["annotations"] if a["image_id"] == entry[name]["id"]]
        wrong = [a for a in coco["annotations"] if a["image_id"] == number_as_id[name]]
        got = [tuple(r.box) for r in regions[name].regions]
        assert got == [tuple(a["bbox"]) for a in own]
        assert got != [tuple(a["bbox"]) for a in wrong]


def test_readme_example_id_1_is_img0000019(tmp_path: Path) -> None:
    """The README's case itself: id 1 is IMG0000019.jpg, and an image with id 19 exists."""
    coco = {
        "images": [
            {"id": 1, "file_name": "IMG0000019.jpg", "width": 40, "height": 30},
            {"id": 19, "file_name": "IMG0000777.jpg", "width": 40, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 19, "bbox": [1, 1, 5, 5], "segmentation": []},
            {
                "id": 2,
                "image_id": 1,
                "bbox": [20, 10, 8, 6],
                "segmentation": [[20, 10, 28, 10, 28, 16, 20, 16]],
            },
        ],
        "categories": [{"id": 0, "name": "fractured"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    regions = read_coco_regions(path)
    assert [r.box for r in regions["IMG0000019.jpg"].regions] == [(20.0, 10.0, 8.0, 6.0)]
    only_box = regions["IMG0000777.jpg"].regions[0]  # no polygon: the box is the polygon
    assert only_box.polygons[0].tolist() == [[1, 1], [6, 1], [6, 6], [1, 6]]


def _write(tmp_path: Path, coco: object, name: str = "coco.json") -> Path:
    path = tmp_path / name
    path.write_text(coco if isinstance(coco, str) else json.dumps(coco))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not a readable JSON file"),
        ({"images": []}, r"no 'images' and 'annotations' lists"),
        ({"images": [{"id": 1}], "annotations": []}, r"images\[0\] lacks"),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
                "annotations": [{"id": 7, "image_id": 2, "bbox": [0, 0, 1, 1]}],
            },
            r"annotation 7 refers to image_id 2",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
                "annotations": [{"id": 7, "image_id": 1, "segmentation": {"counts": "x"}}],
            },
            r"RLE mask",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
                "annotations": [{"id": 7, "image_id": 1, "segmentation": [[1, 2, 3, 4]]}],
            },
            r"at least 3 \(x, y\) points",
        ),
    ],
)
def test_bad_regions_files_are_one_clear_error(tmp_path: Path, content, message) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(RegionsError, match=message) as caught:
        read_coco_regions(path)
    assert isinstance(caught.value, UserError) and str(path) in str(caught.value)


def test_missing_regions_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(RegionsError, match=r"data.regions=.*nothing.json: no such file"):
        read_coco_regions(tmp_path / "nothing.json")


def test_size_mismatch_with_the_file_names_it(tmp_path: Path) -> None:
    image = tmp_path / "data" / "fractured" / "x1.png"
    image.parent.mkdir(parents=True)
    cv2.imwrite(str(image), np.zeros((30, 50), np.uint8))
    other = tmp_path / "data" / "fractured" / "x2.png"
    cv2.imwrite(str(other), np.zeros((30, 50), np.uint8))
    coco = {
        "images": [
            {"id": 1, "file_name": "x1.png", "width": 60, "height": 30},
            {"id": 2, "file_name": "gone.png", "width": 60, "height": 30},
        ],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 5, 5]}],
    }
    regions = read_coco_regions(_write(tmp_path, coco))
    with pytest.raises(RegionsError, match=r"x1.png is 60x30 there but 50x30 on disk"):
        match_regions(regions, [str(image), str(other)])
    coco["images"][0]["width"] = 50
    matched = match_regions(read_coco_regions(_write(tmp_path, coco)), [str(image), str(other)])
    assert list(matched) == [str(image)]
