"""Bone Fracture Multi-Region X-ray Data (Kaggle): ``{train,val,test}/{fractured,not fractured}``.

Beware: its given test split shares byte-identical images with train (see
:mod:`fracture_lit.data.leakage`); ``data.use_given_split=false`` makes a clean split.
"""

from __future__ import annotations

import os

from fracture_lit.data import folders
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetInfo
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex

__all__ = ["INFO", "MultiRegionDataModule", "index_multiregion"]

INFO = DatasetInfo(
    name="multiregion",
    title="Bone Fracture Multi-Region X-ray Data",
    source_url=(
        "https://www.kaggle.com/datasets/bmadushanirodrigo/fracture-multi-region-x-ray-data"
    ),
    licence="ODC-By 1.0",
    kaggle_slug="bmadushanirodrigo/fracture-multi-region-x-ray-data",
    default_dir="bone-fracture-multi-region",
    aliases=("multi_region", "bone_fracture_multi_region", "fracture_multi_region"),
    layout="""\
<root>/
├── train/
│   ├── fractured/          *.jpg|png
│   └── not fractured/
├── val/                    (optional: carved from train when absent)
│   ├── fractured/
│   └── not fractured/
└── test/
    ├── fractured/
    └── not fractured/
""",
    notes="Given test split is almost entirely byte-identical to train images.",
)


def index_multiregion(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index Bone Fracture Multi-Region X-ray Data: ``{train,val,test}/{fractured,not fractured}``.

    Classes are ``["not_fractured", "fractured"]`` (fixed, not alphabetical, so that label
    1 means fractured in every dataset). ``given_split`` comes from the folder; ``val/`` and
    ``test/`` may be missing (the splitter carves them from train).
    """
    return folders.index_binary_splits(root, INFO, ("train",), ("val", "test"))


@register_dataset("multiregion")
class MultiRegionDataModule(FractureDataModule):
    """Bone Fracture Multi-Region X-ray Data: ``{train,val,test}/{fractured,not fractured}``."""

    dataset_info = INFO
    class_roles = ClassRoles.binary(*folders.BINARY_CLASSES)
    indexer = staticmethod(index_multiregion)
    layout_check = staticmethod(folders.has_dirs(("train",)))
