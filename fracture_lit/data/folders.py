"""Walking a dataset's folders: the helpers every indexer in :mod:`fracture_lit.data.datasets`
shares.

An indexer returns a :class:`~fracture_lit.data.samples.DatasetIndex`: absolute paths sorted
by path (so two runs on the same folder see the same order and the seeded splitter is
reproducible), the class names (index = label), and every file it did not index with the
reason, so a run can say what it left out instead of silently shrinking the dataset.
Folder names are matched loosely ('Not_Fractured' == 'not fractured'), archive junk is
ignored, and single-folder wrappers left by Kaggle and figshare zips are stepped into.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from fracture_lit.data.dataset_info import DatasetInfo, DatasetLayoutError
from fracture_lit.data.samples import IMAGE_SUFFIXES, DatasetIndex, Sample

__all__ = [
    "BINARY_CLASSES",
    "SPLIT_FOLDER_NAMES",
    "absolute",
    "child_dir",
    "finish_index",
    "has_any_dir",
    "has_dirs",
    "index_binary_splits",
    "is_split_parent",
    "locate_root",
    "norm",
    "pick_classes",
    "require_dir",
    "scan_class_dir",
    "sorted_names",
    "subdirs",
    "visible_children",
]

#: Split folder names we recognise (case-insensitive) and the split each one means.
SPLIT_FOLDER_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

# Folders that archive tools leave next to the data; never a class or a dataset root.
_JUNK_DIRS = {"__macosx", ".ipynb_checkpoints"}


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised, but symlinks kept: users often link data/ elsewhere."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def norm(name: str) -> str:
    """Folder-name key ignoring case, '_', '-' and spaces ('Not_Fractured' == 'not fractured')."""
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def sorted_names(names: Iterable[str]) -> list[str]:
    """Class names in the order labels are given: case-insensitive, ties by case."""
    return sorted(names, key=lambda n: (n.casefold(), n))


def visible_children(directory: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in directory.iterdir()
            if not p.name.startswith(".") and p.name.casefold() not in _JUNK_DIRS
        ),
        key=lambda p: p.name,
    )


def subdirs(directory: Path) -> list[Path]:
    return [p for p in visible_children(directory) if p.is_dir()]


def child_dir(directory: Path, name: str) -> Path | None:
    """The sub-folder whose name matches ``name`` loosely (see :func:`norm`), if any."""
    key = norm(name)
    for sub in subdirs(directory):
        if norm(sub.name) == key:
            return sub
    return None


def is_split_parent(directory: Path) -> bool:
    """Whether one of the folder's sub-folders is named like a split (train, Test, ...)."""
    return any(norm(s.name) in SPLIT_FOLDER_NAMES for s in subdirs(directory))


def locate_root(
    root: Path,
    looks_right: Callable[[Path], bool],
    partial: Callable[[Path], bool] | None = None,
    max_depth: int = 3,
) -> Path:
    """Step into single-folder wrappers until the layout appears.

    Kaggle and figshare zips wrap the data in one or two folders (``archive (6)/``,
    ``Bone_Fracture_Binary_Classification/Bone_Fracture_Binary_Classification/``,
    ``FracAtlas/``); accepting the download folder itself saves users a confusing error.
    When no level matches, the first level that matches ``partial`` is returned so the
    error names the folder that is actually incomplete.
    """
    current, fallback = root, None
    for _ in range(max_depth + 1):
        if looks_right(current):
            return current
        if fallback is None and partial is not None and partial(current):
            fallback = current
        subs = subdirs(current)
        if len(subs) != 1:
            break
        current = subs[0]
    return fallback or root


def has_dirs(required: tuple[str, ...]) -> Callable[[Path], bool]:
    """A layout check: every one of these sub-folders is there."""

    def check(p: Path) -> bool:
        return all(child_dir(p, name) is not None for name in required)

    return check


def has_any_dir(names: tuple[str, ...]) -> Callable[[Path], bool]:
    """A layout check: at least one of these sub-folders is there."""

    def check(p: Path) -> bool:
        return any(child_dir(p, name) is not None for name in names)

    return check


def require_dir(root: Path, info: DatasetInfo | None, layout: str | None = None) -> None:
    if not root.exists():
        raise DatasetLayoutError(root, "the folder does not exist.", info, layout)
    if not root.is_dir():
        raise DatasetLayoutError(root, "this is a file, not a folder.", info, layout)


def pick_classes(
    available: list[str], classes: list[str] | None, root: Path, what: str = "class"
) -> list[str]:
    """``classes`` matched loosely against ``available`` (their order = the labels), or all.

    An unknown name raises ``ValueError`` listing the available ones.
    """
    if classes is None:
        return available
    by_key = {norm(n): n for n in available}
    unknown = [c for c in classes if norm(c) not in by_key]
    if unknown:
        raise ValueError(f"Unknown {what}(es) {unknown}; available in {root}: {available}")
    return [by_key[norm(c)] for c in classes]


def scan_class_dir(
    directory: Path,
    label: int,
    given_split: str | None,
    samples: list[Sample],
    skipped: list[tuple[str, str]],
) -> None:
    """Index the image files directly inside ``directory``; record everything else as skipped.

    Suffixes decide what is an image (decoding 10k files just to list them would be slow);
    undecodable images are a loader policy, not an indexing one.
    """
    for entry in visible_children(directory):
        if entry.is_dir():
            skipped.append((str(entry), "sub-folder inside a class folder (not indexed)"))
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            samples.append(Sample(path=str(entry), label=label, given_split=given_split))
        else:
            skipped.append((str(entry), f"not an image file (suffix {entry.suffix or 'none'!r})"))


def finish_index(
    samples: list[Sample],
    classes: list[str],
    skipped: list[tuple[str, str]],
    root: Path,
    info: DatasetInfo | None,
    layout: str | None = None,
) -> DatasetIndex:
    """The index, sorted; no image at all is a layout error naming what was skipped."""
    if not samples:
        problem = "no image files found in the class folders."
        if skipped:
            problem += f" Skipped {len(skipped)} entries, e.g. {skipped[0][0]} ({skipped[0][1]})."
        raise DatasetLayoutError(root, problem, info, layout)
    samples.sort(key=lambda s: s.path)
    skipped.sort()
    return DatasetIndex(samples=samples, classes=classes, skipped=skipped)


# --------------------------------------------------------------------------- binary split layouts

#: Fixed, not alphabetical, so that label 1 means fractured in every such dataset.
BINARY_CLASSES = ("not_fractured", "fractured")
_BINARY_FOLDERS = {
    norm("not fractured"): 0,
    norm("not_fractured"): 0,
    norm("non fractured"): 0,
    norm("fractured"): 1,
}


def index_binary_splits(
    root: str | os.PathLike[str],
    info: DatasetInfo,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> DatasetIndex:
    """Walk ``<split>/{fractured,not fractured}`` datasets; classes :data:`BINARY_CLASSES`."""
    root = absolute(root)
    require_dir(root, info)

    root = locate_root(root, has_dirs(required), has_any_dir((*required, *optional)))
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for split in (*required, *optional):
        split_dir = child_dir(root, split)
        if split_dir is None:
            if split in required:
                present = ", ".join(p.name + "/" for p in subdirs(root)) or "nothing"
                raise DatasetLayoutError(root, f"no '{split}/' folder (found: {present}).", info)
            continue
        found = False
        for class_dir in subdirs(split_dir):
            label = _BINARY_FOLDERS.get(norm(class_dir.name))
            if label is None:
                skipped.append(
                    (
                        str(class_dir),
                        "unknown class folder (expected 'fractured' or 'not fractured')",
                    )
                )
                continue
            found = True
            scan_class_dir(class_dir, label, SPLIT_FOLDER_NAMES[split], samples, skipped)
        if not found:
            raise DatasetLayoutError(
                split_dir, "no 'fractured/' or 'not fractured/' folder inside.", info
            )
        for entry in visible_children(split_dir):
            if entry.is_file():
                skipped.append((str(entry), "file outside the class folders"))
    return finish_index(samples, list(BINARY_CLASSES), skipped, root, info)
