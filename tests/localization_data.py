"""Data for the localization tests: the FracAtlas sample's regions, and synthetic marked
images whose class is a mark and whose region is a box.

A bright disc makes an image "fractured", a dark disc of the same size "intact". The
training images have the mark anywhere; validation has the fractured mark inside a known
box, test has it outside that box. A COCO file gives the box as the region of every
fractured validation and test image, so a model that looks at the mark points inside the
region on validation and outside it on test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fracture_lit.localization.regions import default_regions_file


def fracatlas_with_regions(shared_data: Path) -> Path:
    """The FracAtlas sample's root; skips the test when it carries no COCO regions."""
    root = shared_data / "FracAtlas"
    if default_regions_file(root) is None:
        pytest.skip(f"{root} has no Annotations/COCO JSON (FracAtlas sample with regions)")
    return root


@contextmanager
def single_thread() -> Iterator[None]:
    """Two torch threads on two loaded cores ran the tiny models up to ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


WIDTH, HEIGHT = 96, 64  # non-square originals: the letterbox/resize geometry matters
BOX = (8.0, 6.0, 34.0, 26.0)  # x, y, w, h in original pixels
RADIUS = 5
CLASSES = ("intact", "fractured")


def _centre(rng: np.random.Generator, where: str) -> tuple[int, int]:
    x, y, w, h = BOX
    margin = RADIUS + 1
    while True:
        if where == "inside":
            cx = rng.integers(int(x) + margin, int(x + w) - margin)
            cy = rng.integers(int(y) + margin, int(y + h) - margin)
        else:
            cx = rng.integers(margin, WIDTH - margin)
            cy = rng.integers(margin, HEIGHT - margin)
        near_box = (
            x - 2 * margin <= cx <= x + w + 2 * margin
            and y - 2 * margin <= cy <= y + h + 2 * margin
        )
        if where != "outside" or not near_box:
            return int(cx), int(cy)


def _image(rng: np.random.Generator, bright: bool, where: str) -> np.ndarray:
    noise = rng.normal(110, 25, (HEIGHT // 4, WIDTH // 4))
    image = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 8, image.shape)
    cv2.circle(image, _centre(rng, where), RADIUS, 235 if bright else 10, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_marked_dataset(root: Path, n_train: int = 80, n_eval: int = 24, seed: int = 0) -> Path:
    """``root/{train,val,test}/{intact,fractured}/*.png`` and ``root/regions.json`` (COCO)."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    plan = {"train": (n_train, "anywhere"), "val": (n_eval, "inside"), "test": (n_eval, "outside")}
    for split, (count, where) in plan.items():
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                file_name = f"{split}_{name}_{k:03d}.png"
                bright = label == 1
                cv2.imwrite(
                    str(folder / file_name), _image(rng, bright, where if bright else "anywhere")
                )
                if bright and split != "train":
                    image_id = len(images) + 1
                    images.append(
                        {"id": image_id, "file_name": file_name, "width": WIDTH, "height": HEIGHT}
                    )
                    x, y, w, h = BOX
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": 0,
                            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                            "bbox": list(BOX),
                        }
                    )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 0, "name": "mark"}]}
    (root / "regions.json").write_text(json.dumps(coco))
    return root / "regions.json"
