"""Bone Break Classification (Kaggle): ``<Class name>/{Train,Test}/*.jpg``, 10 fracture types.

The files are Roboflow-augmented copies of fewer sources (``<source>_jpg.rf.<hash>.jpg``):
group them (:func:`fracture_lit.data.grouping.assign_groups`) before splitting. Every class
is a fracture type, so there is no intact class to map onto the shared binary task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fracture_lit.data import folders
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles, check_class_list
from fracture_lit.data.dataset_info import DatasetInfo, DatasetLayoutError
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex, Sample

__all__ = ["INFO", "BoneBreakDataModule", "index_bone_break", "looks_like_bone_break"]

INFO = DatasetInfo(
    name="bone_break",
    title="Bone Break Classification (10 fracture types)",
    source_url="https://www.kaggle.com/datasets/pkdarabi/bone-break-classification-image-dataset",
    licence="CC BY 4.0",
    kaggle_slug="pkdarabi/bone-break-classification-image-dataset",
    default_dir="bone-break-classification",
    aliases=("bone_break_classification", "bonebreak"),
    layout="""\
<root>/
├── Avulsion fracture/
│   ├── Train/              *.jpg
│   └── Test/               *.jpg
├── Comminuted fracture/
│   ├── Train/
│   └── Test/
└── ... (10 class folders: Fracture Dislocation, Greenstick fracture, Hairline Fracture,
         Impacted fracture, Longitudinal fracture, Oblique fracture, Pathological fracture,
         Spiral Fracture)
""",
    notes="Roboflow export: augmented copies of fewer sources ('<source>_jpg.rf.<hash>.jpg').",
)


def looks_like_bone_break(p: Path) -> bool:
    return sum(folders.is_split_parent(s) for s in folders.subdirs(p)) >= 2


def index_bone_break(
    root: str | os.PathLike[str], classes: list[str] | None = None
) -> DatasetIndex:
    """Index Bone Break Classification: ``<Class name>/{Train,Test}/*.jpg`` (10 fracture types).

    Class names are the folder names, sorted case-insensitively. ``classes`` picks a subset
    (matched case-insensitively, '_' = ' '), and its order then defines the labels, so a
    config that lists the classes also documents the label mapping; an unknown name raises
    ``ValueError`` listing the available ones. ``given_split`` is ``train``/``test`` from the
    ``Train``/``Test`` folder.
    """
    root = folders.absolute(root)
    folders.require_dir(root, INFO)

    root = folders.locate_root(root, looks_like_bone_break)
    class_dirs = {d.name: d for d in folders.subdirs(root) if folders.is_split_parent(d)}
    if not class_dirs:
        raise DatasetLayoutError(
            root, "no '<Class name>/Train/' or '<Class name>/Test/' folders.", INFO
        )
    available = folders.sorted_names(class_dirs)
    chosen = folders.pick_classes(available, classes, root, what="bone-break class")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"Duplicate class names in {classes}")

    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for name in available:
        if name not in chosen:
            skipped.append((str(class_dirs[name]), "class not selected"))
    for label, name in enumerate(chosen):
        for split_dir in folders.subdirs(class_dirs[name]):
            split = folders.SPLIT_FOLDER_NAMES.get(folders.norm(split_dir.name))
            if split is None:
                skipped.append((str(split_dir), "unknown split folder (expected Train/Test)"))
                continue
            folders.scan_class_dir(split_dir, label, split, samples, skipped)
        for entry in folders.visible_children(class_dirs[name]):
            if entry.is_file():
                skipped.append((str(entry), "file outside Train/ and Test/"))
    return folders.finish_index(samples, chosen, skipped, root, INFO)


@register_dataset("bone_break")
class BoneBreakDataModule(FractureDataModule):
    """Bone Break Classification: ``<Class>/{Train,Test}``, all 10 classes or a subset."""

    dataset_info = INFO
    class_roles = ClassRoles.multiclass(binary_labels=None)
    indexer = staticmethod(index_bone_break)
    layout_check = staticmethod(looks_like_bone_break)

    def __init__(
        self, root: str | Path, *, classes: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self.class_subset = list(classes) if classes else None

    @classmethod
    def check_config(cls, data: Mapping[str, Any], prefix: str = "data") -> None:
        check_class_list(data, prefix)

    def index_options(self) -> dict[str, Any]:
        return {"classes": self.class_subset}
