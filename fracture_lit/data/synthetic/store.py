"""The synthetic dataset on disk: ``root/<class>/<index:05d>.png`` plus ``synthetic.json``.

Generation is deterministic: image ``i`` of class ``c`` is drawn from
``numpy.random.SeedSequence(seed, spawn_key=(c, i))`` (the ``i``-th child of the ``c``-th child
of ``SeedSequence(seed)``), so the files do not depend on generation order or parallelism.
A folder is described by its :class:`SyntheticParams`; its ``synthetic.json`` is written
last and says which parameters made it, so a folder made with others is refused, never
mixed.

Under a data root, datasets of different parameters live side by side, each in the
sub-folder :func:`dataset_key` names (``<root>/n1200-128px-seed0-v1.1-<hash>/``), as the
decode cache keys its files: any setting works after any other, and none is rendered twice.
:func:`synthetic_folder` picks that sub-folder, or the root itself when it is an older,
unkeyed dataset of exactly the requested parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fracture_lit.data.synthetic.render import GENERATOR_VERSION, render_radiograph

__all__ = [
    "GENERATOR_VERSION",
    "METADATA_FILE",
    "SyntheticParams",
    "dataset_key",
    "generate_synthetic_dataset",
    "synthetic_folder",
    "write_synthetic_dataset",
]

#: Written into the dataset root last; its presence means the folder is complete.
METADATA_FILE = "synthetic.json"
#: The generator named in every metadata file (kept when modules move: folders compare it).
GENERATOR_NAME = "fracture_lit.data.synthetic"


def _image_rng(seed: int, class_idx: int, index: int) -> np.random.Generator:
    """RNG for one image, equal to ``SeedSequence(seed).spawn(..)[class_idx].spawn(..)[index]``.

    Deriving it from the position alone (not from a running stream) makes every file
    independent of generation order, so a partial or parallel generation gives the same bytes.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(class_idx, index)))


@dataclass(frozen=True)
class SyntheticParams:
    """Everything the pixels of a synthetic folder depend on (hashable: a folder's key).

    ``class_names[0]`` holds intact and ``class_names[1]`` fractured images, ``n_per_class``
    each, rendered at ``size`` pixels from ``seed`` by generator ``version``.
    """

    n_per_class: int = 1000
    size: int = 128
    seed: int = 0
    class_names: tuple[str, str] = ("intact", "fractured")
    version: str = GENERATOR_VERSION

    def __post_init__(self) -> None:
        names = tuple(str(c) for c in self.class_names)
        if len(names) != 2 or len(set(names)) != 2:
            raise ValueError(f"class_names must be two distinct names, got {list(names)}")
        if self.n_per_class < 1:
            raise ValueError(f"n_per_class must be >= 1, got {self.n_per_class}")
        object.__setattr__(self, "class_names", names)

    def metadata(self) -> dict:
        """What ``synthetic.json`` records (and what an existing folder is compared by)."""
        return {
            "generator": GENERATOR_NAME,
            "version": self.version,
            "n_per_class": int(self.n_per_class),
            "size": int(self.size),
            "seed": int(self.seed),
            "class_names": list(self.class_names),
        }


#: What :func:`dataset_key` names look like (a data root may hold only these, hidden
#: entries, and an older unkeyed dataset).
_KEY_PATTERN = re.compile(r"n\d+-\d+px-seed-?\d+-v[\w.]+-[0-9a-f]{8}")
#: The entries of an older, unkeyed dataset written straight into the data root.
_UNKEYED_ENTRIES = {METADATA_FILE}


def dataset_key(params: SyntheticParams) -> str:
    """The sub-folder name of ``params``' dataset: the readable parameters plus a hash of the
    whole metadata (class names, generator), so two folders never share a name by accident."""
    metadata = json.dumps(params.metadata(), sort_keys=True).encode()
    digest = hashlib.sha256(metadata).hexdigest()[:8]
    return f"n{params.n_per_class}-{params.size}px-seed{params.seed}-v{params.version}-{digest}"


def synthetic_folder(root: str | Path, params: SyntheticParams) -> Path:
    """Where the dataset ``params`` describes lives under the data root ``root``.

    ``root`` itself when it is an unkeyed dataset made with exactly these parameters (the
    layout before keyed sub-folders: such folders keep working), else ``root/<dataset_key>``,
    beside the datasets of other parameters. A root holding anything else (another
    dataset's images, a user's files) raises ``ValueError``: rendering into it would mix
    synthetic images with them.
    """
    root = Path(root).expanduser().absolute()
    found = _read_params(root)
    if found == params.metadata():
        return root
    if found is not None and "error" in found:
        raise ValueError(
            f"data.root={root}: its {METADATA_FILE} is unreadable, so the dataset there cannot "
            "be checked. Delete the folder or choose another data.root."
        )
    if root.is_dir():
        unkeyed = set(found.get("class_names", ())) | _UNKEYED_ENTRIES if found else set()
        foreign = sorted(
            entry.name
            for entry in root.iterdir()
            if not entry.name.startswith(".")
            and entry.name not in unkeyed
            and not (entry.is_dir() and _KEY_PATTERN.fullmatch(entry.name))
        )
        if foreign:
            raise ValueError(
                f"data.root={root} holds {', '.join(foreign[:3])}"
                f"{' ...' if len(foreign) > 3 else ''}, which is not a synthetic dataset. "
                "Synthetic datasets go into sub-folders named by their parameters: point "
                "data.root at an empty folder or one that holds synthetic datasets only."
            )
    return root / dataset_key(params)


def _read_params(root: Path) -> dict | None:
    try:
        return json.loads((root / METADATA_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": "unreadable metadata"}


def _check_existing(root: Path, params: dict) -> bool:
    """True if ``root`` already holds this exact dataset; raise if it holds something else."""
    found = _read_params(root)
    if found is None:
        if root.is_dir() and any(root.iterdir()):
            raise ValueError(
                f"{root} exists and is not empty, but has no {METADATA_FILE}: it is not a "
                "(complete) synthetic dataset. Delete the folder or choose another data.root."
            )
        return False
    if found != params:
        raise ValueError(
            f"Synthetic dataset folder {root} was generated with different parameters "
            f"({found}) than requested ({params}). Delete the folder or choose another "
            "data.root."
        )
    return True


def _write_images(tmp: Path, params: SyntheticParams) -> None:
    # Class index 1 is the fractured class (label order = class_names order).
    for c, name in enumerate(params.class_names):
        folder = tmp / name
        folder.mkdir(parents=True)
        for i in range(params.n_per_class):
            rng = _image_rng(params.seed, c, i)
            img = render_radiograph(rng, fractured=(c == 1), size=params.size)
            if not cv2.imwrite(str(folder / f"{i:05d}.png"), img):
                raise OSError(f"could not write {folder / f'{i:05d}.png'}")


def generate_synthetic_dataset(
    root: str | Path,
    n_per_class: int = 1000,
    size: int = 128,
    seed: int = 0,
    class_names: Sequence[str] = ("intact", "fractured"),
) -> Path:
    """Write ``root/<class_name>/<index:05d>.png`` once and return ``root``
    (:func:`write_synthetic_dataset` with these :class:`SyntheticParams`)."""
    params = SyntheticParams(n_per_class, size, seed, tuple(class_names))  # type: ignore[arg-type]
    return write_synthetic_dataset(root, params)


def write_synthetic_dataset(root: str | Path, params: SyntheticParams) -> Path:
    """Write the dataset ``params`` describes into ``root`` once and return ``root``.

    A ``synthetic.json`` with the parameters is written last, so its presence marks a
    complete folder: a second call with the same parameters returns immediately, a call with
    different ones raises ``ValueError`` rather than silently mixing two datasets.

    The images are rendered into a hidden sibling folder and renamed into place, so an
    interrupted run never leaves a half-written ``root`` and concurrent runs (e.g. DDP ranks or
    parallel sweep jobs) cannot corrupt each other: the first rename wins, the others check
    the winner's metadata and discard their copy.
    """
    root = Path(root).expanduser().absolute()
    metadata = params.metadata()
    if _check_existing(root, metadata):
        return root

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _write_images(tmp, params)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        try:
            # Atomic on POSIX; also replaces an *empty* root directory there.
            os.rename(tmp, root)
        except OSError:
            # Someone else finished first (root now non-empty) or root is in the way.
            if not _check_existing(root, metadata):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
