"""Indexers for the fracture datasets on disk, and the registry that describes them.

Each indexer walks one dataset's own folder layout and returns a
:class:`~fracture_lit.data.samples.DatasetIndex`: absolute paths sorted by path (so two runs
on the same folder see the same order and the seeded splitter is reproducible), the class
names (index = label), and every file it did not index with the reason, so a run can say
what it left out instead of silently shrinking the dataset.

Labels always come from the folder a file sits in: that is what the dataset authors
publish as ground truth, and the one place FracAtlas' csv disagrees with a folder
(``IMG0003298.jpg``) the folder is right. Disagreements are kept as a note on the sample.

A missing or mis-shaped root raises :class:`DatasetLayoutError`, whose message names the
path, draws the expected tree and says how to download the data, because "0 images found"
three minutes into a run is the usual way this goes wrong.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fracture_lit.data.class_roles import binary_order
from fracture_lit.data.samples import IMAGE_SUFFIXES, DatasetIndex, Sample
from fracture_lit.errors import ConfigError, UserError

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetLayoutError",
    "SPLIT_NAMES",
    "find_dataset_root",
    "get_dataset",
    "index_bone_break",
    "index_dataset",
    "index_fracatlas",
    "index_image_folder",
    "index_multiregion",
    "index_xray_fracture",
]

#: Split folder names we recognise (case-insensitive) and the split each one means.
SPLIT_NAMES: dict[str, str] = {
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


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows about one public dataset: where it comes from and its shape.

    ``kaggle_slug`` or ``figshare_article`` tells :mod:`fracture_lit.data.download` how to
    fetch it; ``layout`` is the tree shown in error messages; ``default_dir`` is the folder
    name the download creates under the data directory.
    """

    name: str
    title: str
    source_url: str
    licence: str
    layout: str
    default_dir: str
    kaggle_slug: str | None = None
    figshare_article: int | None = None
    doi: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def download_command(self) -> str:
        return f"python -m fracture_lit.data.download {self.name}"

    @property
    def download_instructions(self) -> str:
        """Every way to get the data, most automatic first, for error messages and --help."""
        lines = [f"Download it with:  {self.download_command} [--dest DIR]"]
        if self.kaggle_slug:
            lines.append(
                f"  (needs `pip install kagglehub` or the `kaggle` CLI; or by hand: "
                f"kaggle datasets download -d {self.kaggle_slug} --unzip)"
            )
        if self.figshare_article:
            lines.append(
                f"  (fetches the zip from figshare article {self.figshare_article}"
                + (f", doi:{self.doi}" if self.doi else "")
                + ")"
            )
        lines.append(f"Source: {self.source_url}  (licence: {self.licence})")
        return "\n".join(lines)


class DatasetLayoutError(UserError, FileNotFoundError):
    """The dataset root is missing or its folders are not the layout the indexer expects.

    A ``FileNotFoundError`` so that code treating "no data" generically still catches it;
    the message is written for a person: path, what is wrong, the expected tree and how to
    download the dataset.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        problem: str,
        info: DatasetInfo | None = None,
        layout: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.info = info
        self.layout = layout
        title = f"Dataset '{info.name}' ({info.title})" if info else "Image dataset"
        parts = [f"{title}: {problem}", f"  path: {self.path}"]
        tree = layout if layout is not None else (info.layout if info else None)
        if tree:
            parts += ["Expected layout:", _indent(tree, "  ")]
        if info:
            parts.append(info.download_instructions)
        super().__init__("\n".join(parts))

    def one_line(self) -> str:
        """Title, problem and path; the layout tree only goes with the full message."""
        title = f"Dataset '{self.info.name}'" if self.info else "Image dataset"
        fix = (
            f" Point data.root at it, or download it: {self.info.download_command}."
            if self.info
            else " Point data.root at a folder with one sub-folder per class."
        )
        if "data." in self.problem:  # the problem already says what to change
            fix = ""
        return f"data.root={self.path}: {title}: {self.problem}{fix}"

    def __reduce__(self):  # keep it picklable (DataLoader workers, multiprocessing)
        return (DatasetLayoutError, (self.path, self.problem, self.info, self.layout))


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.strip("\n").splitlines())


# --------------------------------------------------------------------------- helpers


def _abs(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised, but symlinks kept: users often link data/ elsewhere."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _norm(name: str) -> str:
    """Folder-name key ignoring case, '_', '-' and spaces ('Not_Fractured' == 'not fractured')."""
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def _visible_children(directory: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in directory.iterdir()
            if not p.name.startswith(".") and p.name.casefold() not in _JUNK_DIRS
        ),
        key=lambda p: p.name,
    )


def _subdirs(directory: Path) -> list[Path]:
    return [p for p in _visible_children(directory) if p.is_dir()]


def _child_dir(directory: Path, name: str) -> Path | None:
    """The sub-folder whose name matches ``name`` loosely (see :func:`_norm`), if any."""
    key = _norm(name)
    for sub in _subdirs(directory):
        if _norm(sub.name) == key:
            return sub
    return None


def _locate_root(
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
        subs = _subdirs(current)
        if len(subs) != 1:
            break
        current = subs[0]
    return fallback or root


def _has_any_dir(names: tuple[str, ...]) -> Callable[[Path], bool]:
    def check(p: Path) -> bool:
        return any(_child_dir(p, name) is not None for name in names)

    return check


def _require_dir(root: Path, info: DatasetInfo | None, layout: str | None = None) -> None:
    if not root.exists():
        raise DatasetLayoutError(root, "the folder does not exist.", info, layout)
    if not root.is_dir():
        raise DatasetLayoutError(root, "this is a file, not a folder.", info, layout)


def _scan_class_dir(
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
    for entry in _visible_children(directory):
        if entry.is_dir():
            skipped.append((str(entry), "sub-folder inside a class folder (not indexed)"))
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            samples.append(Sample(path=str(entry), label=label, given_split=given_split))
        else:
            skipped.append((str(entry), f"not an image file (suffix {entry.suffix or 'none'!r})"))


def _finish(
    samples: list[Sample],
    classes: list[str],
    skipped: list[tuple[str, str]],
    root: Path,
    info: DatasetInfo | None,
    layout: str | None = None,
) -> DatasetIndex:
    if not samples:
        problem = "no image files found in the class folders."
        if skipped:
            problem += f" Skipped {len(skipped)} entries, e.g. {skipped[0][0]} ({skipped[0][1]})."
        raise DatasetLayoutError(root, problem, info, layout)
    samples.sort(key=lambda s: s.path)
    skipped.sort()
    return DatasetIndex(samples=samples, classes=classes, skipped=skipped)


# --------------------------------------------------------------------------- FracAtlas

_FRACATLAS_REGIONS = ("hand", "leg", "hip", "shoulder")
_FRACATLAS_VIEWS = ("frontal", "lateral", "oblique")


def _flag(row: dict[str, str], column: str) -> bool:
    return str(row.get(column, "0")).strip() in {"1", "1.0", "True", "true"}


def _fracatlas_meta(row: dict[str, str]) -> dict[str, object]:
    """Turn one dataset.csv row into readable metadata.

    The csv one-hot encodes region and view; ``mixed`` is set exactly when more than one
    region is (checked on the sample), so ``region`` is one word and ``regions`` keeps the
    detail. 59 of the 506 sampled rows flag two views; ``view`` joins them with '+'.
    """
    regions = [r for r in _FRACATLAS_REGIONS if _flag(row, r)]
    if _flag(row, "mixed") or len(regions) > 1:
        region: str | None = "mixed"
    else:
        region = regions[0] if regions else None
    views = [v for v in _FRACATLAS_VIEWS if _flag(row, v)]
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


def _fracatlas_ok(p: Path) -> bool:
    images = _child_dir(p, "images")
    return images is not None and _child_dir(images, "Fractured") is not None


def index_fracatlas(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index FracAtlas: ``images/Fractured``, ``images/Non_fractured`` and ``dataset.csv``.

    Classes are ``["non_fractured", "fractured"]``. Labels come from the folder; a csv row
    that disagrees leaves a note on the sample. csv metadata goes to ``meta`` (``region``,
    ``regions``, ``view``, ``hardware``, ``multiscan``, ``fracture_count``,
    ``csv_fractured``). csv rows without a file are listed in ``skipped``. FracAtlas ships
    no split, so ``given_split`` is ``None``.
    """
    info = DATASETS["fracatlas"]
    root = _abs(root)
    _require_dir(root, info)

    root = _locate_root(root, _fracatlas_ok, _has_any_dir(("images",)))
    images = _child_dir(root, "images")
    if images is None:
        raise DatasetLayoutError(root, "no 'images/' folder.", info)
    folders = {
        "non_fractured": _child_dir(images, "Non_fractured"),
        "fractured": _child_dir(images, "Fractured"),
    }
    for name, folder in folders.items():
        if folder is None:
            raise DatasetLayoutError(images, f"no '{name.capitalize()}/' folder in images/.", info)
    csv_path = next((p for p in root.iterdir() if p.name.casefold() == "dataset.csv"), None)
    if csv_path is None:
        raise DatasetLayoutError(root, "no 'dataset.csv' next to images/.", info)

    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        rows = {
            row["image_id"].strip(): row for row in csv.DictReader(handle) if row.get("image_id")
        }

    classes = ["non_fractured", "fractured"]
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        _scan_class_dir(folders[name], label, None, samples, skipped)  # type: ignore[arg-type]

    seen: set[str] = set()
    for sample in samples:
        row = rows.get(sample.name)
        seen.add(sample.name)
        if row is None:
            sample.notes = "not listed in dataset.csv"
            continue
        sample.meta = _fracatlas_meta(row)
        folder_says = folders[classes[sample.label]].name  # type: ignore[union-attr]
        if bool(sample.meta["csv_fractured"]) != bool(sample.label):
            sample.notes = (
                f"csv says fractured={int(bool(sample.meta['csv_fractured']))}, "
                f"folder says {folder_says}; label from folder"
            )
    for image_id in sorted(set(rows) - seen):
        skipped.append((f"{csv_path}:{image_id}", "listed in dataset.csv but no image file"))
    return _finish(samples, classes, skipped, root, info)


# --------------------------------------------------------------------------- binary split layouts

_BINARY_CLASSES = ["not_fractured", "fractured"]
_BINARY_FOLDERS = {
    _norm("not fractured"): 0,
    _norm("not_fractured"): 0,
    _norm("non fractured"): 0,
    _norm("fractured"): 1,
}


def _has_dirs(required: tuple[str, ...]) -> Callable[[Path], bool]:
    def check(p: Path) -> bool:
        return all(_child_dir(p, name) is not None for name in required)

    return check


def _index_binary_splits(
    root: str | os.PathLike[str],
    info: DatasetInfo,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> DatasetIndex:
    """Shared walker for ``<split>/{fractured,not fractured}`` datasets."""
    root = _abs(root)
    _require_dir(root, info)

    root = _locate_root(root, _has_dirs(required), _has_any_dir((*required, *optional)))
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for split in (*required, *optional):
        split_dir = _child_dir(root, split)
        if split_dir is None:
            if split in required:
                present = ", ".join(p.name + "/" for p in _subdirs(root)) or "nothing"
                raise DatasetLayoutError(root, f"no '{split}/' folder (found: {present}).", info)
            continue
        found = False
        for class_dir in _subdirs(split_dir):
            label = _BINARY_FOLDERS.get(_norm(class_dir.name))
            if label is None:
                skipped.append(
                    (
                        str(class_dir),
                        "unknown class folder (expected 'fractured' or 'not fractured')",
                    )
                )
                continue
            found = True
            _scan_class_dir(class_dir, label, SPLIT_NAMES[split], samples, skipped)
        if not found:
            raise DatasetLayoutError(
                split_dir, "no 'fractured/' or 'not fractured/' folder inside.", info
            )
        for entry in _visible_children(split_dir):
            if entry.is_file():
                skipped.append((str(entry), "file outside the class folders"))
    return _finish(samples, list(_BINARY_CLASSES), skipped, root, info)


def index_multiregion(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index Bone Fracture Multi-Region X-ray Data: ``{train,val,test}/{fractured,not fractured}``.

    Classes are ``["not_fractured", "fractured"]`` (fixed, not alphabetical, so that label
    1 means fractured in every dataset). ``given_split`` comes from the folder; ``val/`` and
    ``test/`` may be missing (the splitter carves them from train). Beware: the given test
    split shares byte-identical images with train (see :mod:`fracture_lit.data.leakage`).
    """
    return _index_binary_splits(root, DATASETS["multiregion"], ("train",), ("val", "test"))


def index_xray_fracture(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index "Bone Fracture Detection using X-rays" (paper B).

    Layout ``{train,val}/{fractured,not fractured}``; classes ``["not_fractured",
    "fractured"]``. ``train`` maps to train and ``val`` to val; the dataset has no test
    split, so use a ``test_fraction`` (carved from train) or report on val. A ``test/``
    folder, if a later release adds one, is indexed as test.
    """
    return _index_binary_splits(root, DATASETS["xray_fracture"], ("train", "val"), ("test",))


# --------------------------------------------------------------------------- bone break


def _sorted_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (n.casefold(), n))


def _is_split_parent(p: Path) -> bool:
    return any(_norm(s.name) in SPLIT_NAMES for s in _subdirs(p))


def _bone_break_ok(p: Path) -> bool:
    return sum(_is_split_parent(s) for s in _subdirs(p)) >= 2


def index_bone_break(
    root: str | os.PathLike[str], classes: list[str] | None = None
) -> DatasetIndex:
    """Index Bone Break Classification: ``<Class name>/{Train,Test}/*.jpg`` (10 fracture types).

    Class names are the folder names, sorted case-insensitively. ``classes`` picks a subset
    (matched case-insensitively, '_' = ' '), and its order then defines the labels, so a
    config that lists the classes also documents the label mapping; an unknown name raises
    ``ValueError`` listing the available ones. ``given_split`` is ``train``/``test`` from the
    ``Train``/``Test`` folder. The files are Roboflow-augmented copies of fewer sources:
    group them (:func:`fracture_lit.data.grouping.assign_groups`) before splitting.
    """
    info = DATASETS["bone_break"]
    root = _abs(root)
    _require_dir(root, info)

    root = _locate_root(root, _bone_break_ok)
    class_dirs = {d.name: d for d in _subdirs(root) if _is_split_parent(d)}
    if not class_dirs:
        raise DatasetLayoutError(
            root, "no '<Class name>/Train/' or '<Class name>/Test/' folders.", info
        )
    available = _sorted_names(class_dirs)
    if classes is None:
        chosen = available
    else:
        by_key = {_norm(n): n for n in available}
        unknown = [c for c in classes if _norm(c) not in by_key]
        if unknown:
            raise ValueError(
                f"Unknown bone-break class(es) {unknown}; available in {root}: {available}"
            )
        chosen = [by_key[_norm(c)] for c in classes]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"Duplicate class names in {classes}")

    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for name in available:
        if name not in chosen:
            skipped.append((str(class_dirs[name]), "class not selected"))
    for label, name in enumerate(chosen):
        for split_dir in _subdirs(class_dirs[name]):
            split = SPLIT_NAMES.get(_norm(split_dir.name))
            if split is None:
                skipped.append((str(split_dir), "unknown split folder (expected Train/Test)"))
                continue
            _scan_class_dir(split_dir, label, split, samples, skipped)
        for entry in _visible_children(class_dirs[name]):
            if entry.is_file():
                skipped.append((str(entry), "file outside Train/ and Test/"))
    return _finish(samples, chosen, skipped, root, info)


# --------------------------------------------------------------------------- generic

_IMAGE_FOLDER_LAYOUT = """\
<root>/
├── <class A>/*.jpg|png
└── <class B>/*.jpg|png
or, with given splits:
<root>/
├── train/<class>/*.jpg
├── val/<class>/*.jpg    (optional)
└── test/<class>/*.jpg   (optional)
"""


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
    root = _abs(root)
    _require_dir(root, None, _IMAGE_FOLDER_LAYOUT)
    top = _subdirs(root)
    if not top:
        raise DatasetLayoutError(
            root, "no sub-folders (one per class expected).", None, _IMAGE_FOLDER_LAYOUT
        )
    if split_dirs is not None:
        bad = {v for v in split_dirs.values() if v not in {"train", "val", "test"}}
        if bad:
            raise ValueError(f"split_dirs values must be train/val/test, got {sorted(bad)}")
        by_key = {_norm(d.name): d for d in top}
        split_map: dict[Path, str] = {}
        for folder, split in split_dirs.items():
            d = by_key.get(_norm(folder))
            if d is None:
                raise DatasetLayoutError(
                    root, f"no '{folder}/' folder (from split_dirs).", None, _IMAGE_FOLDER_LAYOUT
                )
            split_map[d] = split
    elif all(_norm(d.name) in SPLIT_NAMES for d in top):
        split_map = {d: SPLIT_NAMES[_norm(d.name)] for d in top}
    else:
        split_map = {root: None}  # type: ignore[dict-item]

    class_dirs: dict[str, list[tuple[Path, str | None]]] = {}
    skipped: list[tuple[str, str]] = []
    for parent, split in split_map.items():
        for d in _subdirs(parent):
            class_dirs.setdefault(d.name, []).append((d, split))
        for entry in _visible_children(parent):
            if entry.is_file():
                skipped.append((str(entry), "file outside the class folders"))
    if split_dirs is not None:
        skipped.extend(
            (str(d), "folder not named in split_dirs") for d in top if d not in split_map
        )

    available = _sorted_names(class_dirs)
    if not available:
        raise DatasetLayoutError(root, "no class folders found.", None, _IMAGE_FOLDER_LAYOUT)
    if classes is None:
        chosen = available
    else:
        by_key = {_norm(n): n for n in available}
        unknown = [c for c in classes if _norm(c) not in by_key]
        if unknown:
            raise ValueError(f"Unknown class(es) {unknown}; available in {root}: {available}")
        chosen = [by_key[_norm(c)] for c in classes]
    chosen = _binary_classes(chosen, positive_class, root, given=classes is not None)

    samples: list[Sample] = []
    for name in available:
        if name not in chosen:
            skipped.extend((str(d), "class not selected") for d, _ in class_dirs[name])
    for label, name in enumerate(chosen):
        for d, split in class_dirs[name]:
            _scan_class_dir(d, label, split, samples, skipped)
    found = {s.label for s in samples}
    empty = [name for label, name in enumerate(chosen) if label not in found]
    if empty:
        folders = ", ".join(str(d) for name in empty for d, _ in class_dirs[name])
        raise DatasetLayoutError(
            root,
            f"class folder {folders} holds no image: it would be a class with no examples. "
            "Remove it, or list the classes to use with data.classes=[...].",
            None,
            _IMAGE_FOLDER_LAYOUT,
        )
    return _finish(samples, chosen, skipped, root, None, _IMAGE_FOLDER_LAYOUT)


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


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, DatasetInfo] = {
    "fracatlas": DatasetInfo(
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
    ),
    "multiregion": DatasetInfo(
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
    ),
    "xray_fracture": DatasetInfo(
        name="xray_fracture",
        title="Bone Fracture Detection using X-rays",
        source_url=(
            "https://www.kaggle.com/datasets/vuppalaadithyasairam/"
            "bone-fracture-detection-using-xrays"
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
    ),
    "bone_break": DatasetInfo(
        name="bone_break",
        title="Bone Break Classification (10 fracture types)",
        source_url=(
            "https://www.kaggle.com/datasets/pkdarabi/bone-break-classification-image-dataset"
        ),
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
    ),
}

_INDEXERS: dict[str, Callable[..., DatasetIndex]] = {
    "fracatlas": index_fracatlas,
    "multiregion": index_multiregion,
    "xray_fracture": index_xray_fracture,
    "bone_break": index_bone_break,
    "image_folder": index_image_folder,
}


def get_dataset(name: str) -> DatasetInfo:
    """Look a dataset up by name or alias ('-', '_' and case are ignored)."""
    key = name.strip().casefold().replace("-", "_").replace(" ", "_")
    for info in DATASETS.values():
        candidates = {info.name, info.default_dir.casefold().replace("-", "_"), *info.aliases}
        if key in candidates:
            return info
    known = ", ".join(sorted(DATASETS))
    raise KeyError(f"Unknown dataset {name!r}; known datasets: {known}")


_LAYOUT_CHECKS: dict[str, Callable[[Path], bool]] = {
    "fracatlas": _fracatlas_ok,
    "multiregion": _has_dirs(("train",)),
    "xray_fracture": _has_dirs(("train", "val")),
    "bone_break": _bone_break_ok,
}


def find_dataset_root(name: str, path: str | os.PathLike[str]) -> Path:
    """The folder under ``path`` (through single-folder wrappers) that holds dataset ``name``.

    What the indexers accept as root; useful to print after a download unpacked
    ``data/FracAtlas/FracAtlas/...``. Returns ``path`` itself when nothing matches.
    """
    return _locate_root(_abs(path), _LAYOUT_CHECKS[get_dataset(name).name])


def index_dataset(name: str, root: str | os.PathLike[str], **kwargs: object) -> DatasetIndex:
    """Dispatch to the indexer for ``name`` (a registry name, an alias or ``image_folder``)."""
    if name.strip().casefold().replace("-", "_") == "image_folder":
        return index_image_folder(root, **kwargs)  # type: ignore[arg-type]
    return _INDEXERS[get_dataset(name).name](root, **kwargs)
