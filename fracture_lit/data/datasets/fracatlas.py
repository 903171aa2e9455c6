"""FracAtlas (Abedeen et al., Scientific Data 2023): ``images/{Fractured,Non_fractured}`` +
``dataset.csv`` with each image's region, view and hardware.

Labels come from the folder a file sits in: that is what the dataset authors publish as
ground truth, and the one place the csv disagrees with a folder (``IMG0003298.jpg``) the
folder is right. Disagreements are kept as a note on the sample.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from fracture_lit.data import folders
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetInfo, DatasetLayoutError
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex, Sample

__all__ = ["INFO", "FracAtlasDataModule", "index_fracatlas", "looks_like_fracatlas"]

INFO = DatasetInfo(
    name="fracatlas",
    title="FracAtlas (Abedeen et al., Scientific Data 2023)",
    source_url="https://figshare.com/articles/dataset/The_dataset/22363012",
    licence="CC BY 4.0",
    doi="10.6084/m9.figshare.22363012",
    figshare_article=22363012,
    default_dir="FracAtlas",
    layout="""\
<root>/                     (FracAtlas/)
├── dataset.csv             image_id, hand, leg, hip, shoulder, mixed, hardware, ...
└── images/
    ├── Fractured/          *.jpg   (717 images)
    └── Non_fractured/      *.jpg   (3,366 images)
""",
    notes="4,083 radiographs; byte-identical images under different names; 79 truncated JPEGs.",
)

CLASSES = ["non_fractured", "fractured"]
_REGIONS = ("hand", "leg", "hip", "shoulder")
_VIEWS = ("frontal", "lateral", "oblique")


def _flag(row: dict[str, str], column: str) -> bool:
    return str(row.get(column, "0")).strip() in {"1", "1.0", "True", "true"}


def _meta(row: dict[str, str]) -> dict[str, object]:
    """Turn one dataset.csv row into readable metadata.

    The csv one-hot encodes region and view; ``mixed`` is set exactly when more than one
    region is (checked on the sample), so ``region`` is one word and ``regions`` keeps the
    detail. 59 of the 506 sampled rows flag two views; ``view`` joins them with '+'.
    """
    regions = [r for r in _REGIONS if _flag(row, r)]
    if _flag(row, "mixed") or len(regions) > 1:
        region: str | None = "mixed"
    else:
        region = regions[0] if regions else None
    views = [v for v in _VIEWS if _flag(row, v)]
    try:
        fracture_count: int | None = int(float(row.get("fracture_count", "") or "nan"))
    except ValueError:
        fracture_count = None
    return {
        "region": region,
        "regions": regions,
        "view": "+".join(views) if views else None,
        "hardware": _flag(row, "hardware"),
        "multiscan": _flag(row, "multiscan"),
        "fracture_count": fracture_count,
        "csv_fractured": _flag(row, "fractured"),
    }


def looks_like_fracatlas(p: Path) -> bool:
    images = folders.child_dir(p, "images")
    return images is not None and folders.child_dir(images, "Fractured") is not None


def index_fracatlas(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index FracAtlas: ``images/Fractured``, ``images/Non_fractured`` and ``dataset.csv``.

    Classes are ``["non_fractured", "fractured"]``. Labels come from the folder; a csv row
    that disagrees leaves a note on the sample. csv metadata goes to ``meta`` (``region``,
    ``regions``, ``view``, ``hardware``, ``multiscan``, ``fracture_count``,
    ``csv_fractured``). csv rows without a file are listed in ``skipped``. FracAtlas ships
    no split, so ``given_split`` is ``None``.
    """
    root = folders.absolute(root)
    folders.require_dir(root, INFO)

    root = folders.locate_root(root, looks_like_fracatlas, folders.has_any_dir(("images",)))
    images = folders.child_dir(root, "images")
    if images is None:
        raise DatasetLayoutError(root, "no 'images/' folder.", INFO)
    class_dirs = {
        "non_fractured": folders.child_dir(images, "Non_fractured"),
        "fractured": folders.child_dir(images, "Fractured"),
    }
    for name, folder in class_dirs.items():
        if folder is None:
            raise DatasetLayoutError(images, f"no '{name.capitalize()}/' folder in images/.", INFO)
    csv_path = next((p for p in root.iterdir() if p.name.casefold() == "dataset.csv"), None)
    if csv_path is None:
        raise DatasetLayoutError(root, "no 'dataset.csv' next to images/.", INFO)

    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        rows = {
            row["image_id"].strip(): row for row in csv.DictReader(handle) if row.get("image_id")
        }

    classes = list(CLASSES)
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        folders.scan_class_dir(class_dirs[name], label, None, samples, skipped)  # type: ignore[arg-type]

    seen: set[str] = set()
    for sample in samples:
        row = rows.get(sample.name)
        seen.add(sample.name)
        if row is None:
            sample.notes = "not listed in dataset.csv"
            continue
        sample.meta = _meta(row)
        folder_says = class_dirs[classes[sample.label]].name  # type: ignore[union-attr]
        if bool(sample.meta["csv_fractured"]) != bool(sample.label):
            sample.notes = (
                f"csv says fractured={int(bool(sample.meta['csv_fractured']))}, "
                f"folder says {folder_says}; label from folder"
            )
    for image_id in sorted(set(rows) - seen):
        skipped.append((f"{csv_path}:{image_id}", "listed in dataset.csv but no image file"))
    return folders.finish_index(samples, classes, skipped, root, INFO)


@register_dataset("fracatlas")
class FracAtlasDataModule(FractureDataModule):
    """FracAtlas: ``images/{Fractured,Non_fractured}`` + ``dataset.csv`` (region metadata)."""

    dataset_info = INFO
    class_roles = ClassRoles.binary(negative="non_fractured", positive="fractured")
    subgroup_attributes = ("region", "view", "hardware")
    indexer = staticmethod(index_fracatlas)
    layout_check = staticmethod(looks_like_fracatlas)
