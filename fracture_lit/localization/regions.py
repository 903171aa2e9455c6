"""The radiologists' fracture regions, read from a COCO file as the dataset released them.

FracAtlas ships polygons and boxes in ``Annotations/COCO JSON/COCO_fracture_masks.json``;
any other dataset can give the same format with ``data.regions=<file>``. Two traps are
handled here once:

* COCO image ids are not the numbers in the file names (FracAtlas' id 1 is
  ``IMG0000019.jpg``): regions are joined to images by ``file_name``, never by id;
* coordinates are pixels of the original image, so the width/height the COCO file states
  must be the size of the file on disk; a mismatch (another export, a resized copy) would
  put every region in the wrong place and is an error naming the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fracture_lit.data.readers import is_dicom
from fracture_lit.errors import UserError

__all__ = [
    "FRACATLAS_REGIONS",
    "ImageRegions",
    "Region",
    "RegionSet",
    "RegionsError",
    "default_regions_file",
    "image_size_on_disk",
    "match_regions",
    "read_coco_regions",
]

log = logging.getLogger(__name__)

#: Where FracAtlas keeps its COCO regions, relative to the dataset root.
FRACATLAS_REGIONS = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
_FIX = "Point data.regions= at a COCO JSON file with 'images' and 'annotations'."


class RegionsError(UserError, ValueError):
    """A regions file that is missing, malformed or does not fit the images."""


@dataclass(frozen=True)
class Region:
    """One annotated fracture: its polygon(s) and box in original-image pixels.

    ``polygons`` are ``(K, 2)`` float arrays of ``(x, y)``, with ``(0, 0)`` the top-left
    corner of the top-left pixel (COCO's convention); a box-only annotation has its box as
    the one polygon. ``box`` is COCO's ``(x, y, width, height)``.
    """

    polygons: tuple[np.ndarray, ...]
    box: tuple[float, float, float, float]
    category: str = ""


@dataclass(frozen=True)
class ImageRegions:
    """The regions of one image, with the image size the annotator worked on."""

    file_name: str
    width: int
    height: int
    regions: tuple[Region, ...]


class RegionSet(Mapping[str, ImageRegions]):
    """COCO ``file_name`` -> :class:`ImageRegions`, remembering which file it came from."""

    def __init__(self, images: dict[str, ImageRegions], source: Path) -> None:
        self._images, self.source = images, source

    def __getitem__(self, file_name: str) -> ImageRegions:
        return self._images[file_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._images)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def n_regions(self) -> int:
        return sum(len(image.regions) for image in self._images.values())


def default_regions_file(root: str | Path) -> Path | None:
    """The regions a dataset root ships (FracAtlas' COCO file), or None."""
    path = Path(root) / FRACATLAS_REGIONS
    return path if path.is_file() else None


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RegionsError(f"data.regions={path}: no such file. {_FIX}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RegionsError(
            f"data.regions={path}: not a readable JSON file ({error}). {_FIX}"
        ) from error
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations")
    ):
        raise RegionsError(f"data.regions={path}: no 'images' and 'annotations' lists. {_FIX}")
    return data


def _polygons(annotation: dict[str, Any], box: tuple[float, ...], where: str) -> list[np.ndarray]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]``; the box when there are none."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        raise RegionsError(
            f"{where}: an RLE mask; only polygon or box regions are read. Export the "
            "annotations as polygons."
        )
    polygons = []
    for flat in segmentation or []:
        if not isinstance(flat, list) or len(flat) < 6 or len(flat) % 2:
            raise RegionsError(f"{where}: a polygon needs at least 3 (x, y) points")
        polygons.append(np.asarray(flat, dtype=np.float64).reshape(-1, 2))
    if not polygons:
        x, y, w, h = box
        polygons.append(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))
    return polygons


def _box(annotation: dict[str, Any], where: str) -> tuple[float, float, float, float] | None:
    box = annotation.get("bbox")
    if box is None:
        return None
    if not isinstance(box, list) or len(box) != 4 or box[2] < 0 or box[3] < 0:
        raise RegionsError(f"{where}: bbox must be [x, y, width, height], got {box!r}")
    return float(box[0]), float(box[1]), float(box[2]), float(box[3])


def _box_of(polygons: list[np.ndarray]) -> tuple[float, float, float, float]:
    points = np.concatenate(polygons)
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])


def read_coco_regions(path: str | Path, categories: Sequence[str] | None = None) -> RegionSet:
    """Every image of a COCO file with its regions (``categories``: keep only those names).

    Images listed without an annotation are kept with no regions. Raises
    :class:`RegionsError` naming the file and entry for anything it cannot use.
    """
    path = Path(path).expanduser()
    data = _load_json(path)
    names = {c.get("id"): str(c.get("name", "")) for c in data.get("categories") or []}
    wanted = set(categories) if categories else None
    by_id: dict[Any, tuple[str, int, int]] = {}
    for n, image in enumerate(data["images"]):
        try:
            key, name = image["id"], str(image["file_name"])
            width, height = int(image["width"]), int(image["height"])
        except (KeyError, TypeError, ValueError):
            raise RegionsError(
                f"{path}: images[{n}] lacks an id, file_name, width or height. {_FIX}"
            ) from None
        if key in by_id:
            raise RegionsError(f"{path}: image id {key!r} is listed twice")
        by_id[key] = (name, width, height)
    if len({name for name, _, _ in by_id.values()}) != len(by_id):
        raise RegionsError(f"{path}: a file_name is listed twice; regions join by file_name")
    regions: dict[Any, list[Region]] = {key: [] for key in by_id}
    for n, annotation in enumerate(data["annotations"]):
        where = f"{path}: annotation {annotation.get('id', f'#{n}')}"
        key = annotation.get("image_id")
        if key not in by_id:
            raise RegionsError(f"{where} refers to image_id {key!r}, which 'images' lacks")
        category = names.get(annotation.get("category_id"), "")
        if wanted is not None and category not in wanted:
            continue
        box = _box(annotation, where)
        if box is None and not annotation.get("segmentation"):
            raise RegionsError(f"{where} has neither a polygon nor a bbox")
        polygons = _polygons(annotation, box or (0.0, 0.0, 0.0, 0.0), where)
        regions[key].append(Region(tuple(polygons), box or _box_of(polygons), category))
    images = {
        name: ImageRegions(name, width, height, tuple(regions[key]))
        for key, (name, width, height) in by_id.items()
    }
    return RegionSet(images, path)


def image_size_on_disk(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, as the decoder will orient it.

    An EXIF rotation would make the decoded pixels differ from the annotated ones; such a
    file is refused rather than scored against misplaced regions.
    """
    if is_dicom(path):
        import pydicom  # only for DICOM inputs: slow to import

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.Columns), int(ds.Rows)
    try:
        with Image.open(path) as image:
            size, orientation = image.size, image.getexif().get(0x0112, 1)
    except OSError as error:
        raise RegionsError(f"{path}: cannot read the image header ({error})") from error
    if orientation not in (1, None):
        raise RegionsError(
            f"{path}: EXIF orientation {orientation}; regions are scored only on images "
            "stored upright. Re-save the image without the EXIF rotation."
        )
    return int(size[0]), int(size[1])


def match_regions(
    regions: RegionSet, paths: Sequence[str], positive: Sequence[bool] | None = None
) -> dict[str, ImageRegions]:
    """The dataset images (``paths``) that have regions, joined by file name.

    Call it once with every image of the dataset: it logs, once, how many annotated images
    the data lacks and (given ``positive``, the fractured flags) how many fractured images
    have no regions. A ``file_name`` with folders matches the end of a path; a bare name
    that several dataset files share is left out (named in the log) rather than guessed.
    Raises :class:`RegionsError` when a matched file's size differs from the COCO file's.
    """
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(Path(path).name, []).append(str(path))
    matched: dict[str, ImageRegions] = {}
    absent, ambiguous = 0, []
    for file_name, image in regions.items():
        candidates = by_name.get(Path(file_name).name, [])
        if "/" in file_name:
            candidates = [p for p in candidates if Path(p).as_posix().endswith(file_name)]
        if not candidates:
            absent += 1
        elif len(candidates) > 1:
            ambiguous.append(file_name)
        else:
            matched[candidates[0]] = image
    for path, image in matched.items():
        on_disk = image_size_on_disk(path)
        if on_disk != (image.width, image.height):
            raise RegionsError(
                f"{regions.source}: {image.file_name} is {image.width}x{image.height} there "
                f"but {on_disk[0]}x{on_disk[1]} on disk ({path}); the regions belong to "
                "another version of the image. Use the annotations made on these files."
            )
    unannotated = 0
    if positive is not None:
        unannotated = sum(
            1 for path, pos in zip(paths, positive, strict=True) if pos and path not in matched
        )
    log.info(
        "Regions from %s: %d of %d annotated images are in the data (%d not in it%s)%s.",
        regions.source,
        len(matched),
        len(regions),
        absent,
        f", {len(ambiguous)} ambiguous by name, e.g. {ambiguous[0]}" if ambiguous else "",
        f"; {unannotated} fractured images have no regions" if positive is not None else "",
    )
    return matched
