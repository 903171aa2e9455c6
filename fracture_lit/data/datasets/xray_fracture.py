"""Bone Fracture Detection using X-rays (Kaggle; paper B): ``{train,val}/{fractured,not fractured}``."""

from __future__ import annotations

import os

from fracture_lit.data import folders
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetInfo
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex

__all__ = ["INFO", "XrayFractureDataModule", "index_xray_fracture"]

INFO = DatasetInfo(
    name="xray_fracture",
    title="Bone Fracture Detection using X-rays",
    source_url=(
        "https://www.kaggle.com/datasets/vuppalaadithyasairam/bone-fracture-detection-using-xrays"
    ),
    licence="not stated on the Kaggle page; check before redistributing",
    kaggle_slug="vuppalaadithyasairam/bone-fracture-detection-using-xrays",
    default_dir="bone-fracture-detection-using-xrays",
    aliases=("bone_fracture_detection_using_xrays", "xray"),
    layout="""\
<root>/                     (the zip wraps it in 'archive (6)/'; either works)
├── train/
│   ├── fractured/          *.jpg
│   └── not fractured/
└── val/
    ├── fractured/
    └── not fractured/
""",
)


def index_xray_fracture(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index "Bone Fracture Detection using X-rays" (paper B).

    Layout ``{train,val}/{fractured,not fractured}``; classes ``["not_fractured",
    "fractured"]``. ``train`` maps to train and ``val`` to val; the dataset has no test
    split, so use a ``test_fraction`` (carved from train) or report on val. A ``test/``
    folder, if a later release adds one, is indexed as test.
    """
    return folders.index_binary_splits(root, INFO, ("train", "val"), ("test",))


@register_dataset("xray_fracture")
class XrayFractureDataModule(FractureDataModule):
    """Paper B's "Fracture Detection Using X-ray Images": ``{train,val}/{fractured,...}``."""

    dataset_info = INFO
    class_roles = ClassRoles.binary(*folders.BINARY_CLASSES)
    indexer = staticmethod(index_xray_fracture)
    layout_check = staticmethod(folders.has_dirs(("train", "val")))
