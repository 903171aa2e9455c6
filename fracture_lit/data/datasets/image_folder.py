"""Any folder-per-class dataset: ``root/<class>/*`` or ``root/<split>/<class>/*``.

Two classes are ordered ``[negative, positive]`` by their names (fractured, abnormal,
positive, yes... is positive) or by ``data.positive_class``, never by the alphabet, so the
``probability`` column, the threshold, sensitivity and specificity are about fractures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fracture_lit.data import folders
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import (
    ClassRoles,
    binary_order,
    check_class_list,
    check_positive_class,
)
from fracture_lit.data.dataset_info import DatasetLayoutError
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["LAYOUT", "ImageFolderDataModule", "index_image_folder"]

LAYOUT = """\
<root>/
├── <class A>/*.jpg|png
└── <class B>/*.jpg|png
or, with given splits:
<root>/
├── train/<class>/*.jpg
├── val/<class>/*.jpg    (optional)
└── test/<class>/*.jpg   (optional)
"""


def _split_folders(root: Path, top: list[Path], split_dirs: dict[str, str] | None) -> dict:
    """Folder -> split (``{root: None}`` for a flat layout)."""
    if split_dirs is not None:
        bad = {v for v in split_dirs.values() if v not in {"train", "val", "test"}}
        if bad:
            raise ValueError(f"split_dirs values must be train/val/test, got {sorted(bad)}")
        by_key = {folders.norm(d.name): d for d in top}
        split_map: dict[Path, str | None] = {}
        for folder, split in split_dirs.items():
            d = by_key.get(folders.norm(folder))
            if d is None:
                raise DatasetLayoutError(
                    root, f"no '{folder}/' folder (from split_dirs).", None, LAYOUT
                )
            split_map[d] = split
        return split_map
    if all(folders.norm(d.name) in folders.SPLIT_FOLDER_NAMES for d in top):
        return {d: folders.SPLIT_FOLDER_NAMES[folders.norm(d.name)] for d in top}
    return {root: None}


def index_image_folder(
    root: str | os.PathLike[str],
    classes: list[str] | None = None,
    split_dirs: dict[str, str] | None = None,
    positive_class: str | None = None,
) -> DatasetIndex:
    """Index any folder-per-class dataset: ``root/<class>/*`` or ``root/<split>/<class>/*``.

    The split form is used when every top-level folder is a split name (train, val, valid,
    validation, test; any case), or when ``split_dirs`` maps folder names to splits
    (e.g. ``{"Training": "train", "Testing": "test"}``). Class names are the class folder
    names (the union over splits) sorted case-insensitively; ``classes`` picks a subset in
    its own order (label = position), matched case-insensitively. Two classes are ordered
    ``[negative, positive]`` by name (fractured/abnormal/positive/yes... is positive) or by
    ``positive_class``, never by the alphabet; a class whose folders hold no image is refused.
    """
    root = folders.absolute(root)
    folders.require_dir(root, None, LAYOUT)
    top = folders.subdirs(root)
    if not top:
        raise DatasetLayoutError(root, "no sub-folders (one per class expected).", None, LAYOUT)
    split_map = _split_folders(root, top, split_dirs)

    class_dirs: dict[str, list[tuple[Path, str | None]]] = {}
    skipped: list[tuple[str, str]] = []
    for parent, split in split_map.items():
        for d in folders.subdirs(parent):
            class_dirs.setdefault(d.name, []).append((d, split))
        for entry in folders.visible_children(parent):
            if entry.is_file():
                skipped.append((str(entry), "file outside the class folders"))
    if split_dirs is not None:
        skipped.extend(
            (str(d), "folder not named in split_dirs") for d in top if d not in split_map
        )

    available = folders.sorted_names(class_dirs)
    if not available:
        raise DatasetLayoutError(root, "no class folders found.", None, LAYOUT)
    chosen = folders.pick_classes(available, classes, root)
    chosen = _binary_classes(chosen, positive_class, root, given=classes is not None)

    samples: list[Sample] = []
    for name in available:
        if name not in chosen:
            skipped.extend((str(d), "class not selected") for d, _ in class_dirs[name])
    for label, name in enumerate(chosen):
        for d, split in class_dirs[name]:
            folders.scan_class_dir(d, label, split, samples, skipped)
    found = {s.label for s in samples}
    empty = [name for label, name in enumerate(chosen) if label not in found]
    if empty:
        listed = ", ".join(str(d) for name in empty for d, _ in class_dirs[name])
        raise DatasetLayoutError(
            root,
            f"class folder {listed} holds no image: it would be a class with no examples. "
            "Remove it, or list the classes to use with data.classes=[...].",
            None,
            LAYOUT,
        )
    return folders.finish_index(samples, chosen, skipped, root, None, LAYOUT)


def _binary_classes(
    chosen: list[str], positive_class: str | None, root: Path, given: bool
) -> list[str]:
    """Two classes as ``[negative, positive]`` (chosen by name), logged; others unchanged."""
    if len(chosen) != 2:
        if positive_class is not None:
            raise ConfigError(
                "data.positive_class",
                positive_class,
                f"only applies to two classes; {root} has {len(chosen)}: {chosen}",
                "Set it to null, or pick two with data.classes=[...].",
            )
        return chosen
    ordered = binary_order(chosen, positive_class)
    if ordered is None and positive_class is not None:
        raise ConfigError(
            "data.positive_class", positive_class, f"is not one of the classes {chosen}"
        )
    if ordered is None and given:
        ordered = list(chosen)  # data.classes=[negative, positive] says it explicitly
    if ordered is None:
        raise ConfigError(
            "data.positive_class",
            None,
            f"cannot tell which of the class folders {chosen} under {root} is the positive "
            "(fractured) one from their names",
            f"Set data.positive_class={chosen[1]} (or {chosen[0]}).",
        )
    log.info(
        "Binary classes: positive (label 1, the 'probability' column) = %r, negative = %r",
        ordered[1],
        ordered[0],
    )
    return ordered


@register_dataset("image_folder")
class ImageFolderDataModule(FractureDataModule):
    """Any folder-per-class dataset, optionally with ``train/val/test`` on top."""

    class_roles = ClassRoles.from_folders()
    indexer = staticmethod(index_image_folder)

    def __init__(
        self,
        root: str | Path,
        *,
        classes: Sequence[str] | None = None,
        positive_class: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.class_subset = list(classes) if classes else None
        self.positive_class = positive_class

    @classmethod
    def check_config(cls, data: Mapping[str, Any], prefix: str = "data") -> None:
        check_class_list(data, prefix)
        check_positive_class(data, prefix)

    def index_options(self) -> dict[str, Any]:
        return {"classes": self.class_subset, "positive_class": self.positive_class}
