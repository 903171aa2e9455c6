"""Tests for the procedural radiograph generator and the on-disk synthetic dataset."""

from __future__ import annotations

import json
import multiprocessing as mp
from multiprocessing.synchronize import Barrier
from pathlib import Path

import cv2
import numpy as np
import pytest

from fracture_lit.data.datasets.synthetic import SyntheticDataModule
from fracture_lit.data.synthetic.render import GENERATOR_VERSION, render_radiograph
from fracture_lit.data.synthetic.store import (
    METADATA_FILE,
    SyntheticParams,
    dataset_key,
    generate_synthetic_dataset,
    synthetic_folder,
    write_synthetic_dataset,
)
from fracture_lit.errors import UserError

SIZE = 48


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png"))


# --------------------------------------------------------------------------------------------
# render_radiograph
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("fractured", [False, True])
def test_render_shape_dtype_range(size: int, fractured: bool) -> None:
    img = render_radiograph(np.random.default_rng(3), fractured, size=size)
    assert img.shape == (size, size)
    assert img.dtype == np.uint8
    # A radiograph, not a blank or saturated frame: dark background and bright bone.
    assert img.min() < 60
    assert img.max() > 150
    assert img.std() > 15


def test_render_same_seed_identical_different_seed_differs() -> None:
    a = render_radiograph(np.random.default_rng(7), True, size=64)
    b = render_radiograph(np.random.default_rng(7), True, size=64)
    c = render_radiograph(np.random.default_rng(8), True, size=64)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_render_rejects_tiny_size() -> None:
    with pytest.raises(ValueError):
        render_radiograph(np.random.default_rng(0), False, size=4)


def test_fracture_changes_the_same_limb() -> None:
    """The same rng state gives the same limb; the fractured version differs visibly from the
    intact one but stays far closer to it than an unrelated image is."""
    same_limb, unrelated, visible = [], [], 0
    for seed in range(20):
        intact = render_radiograph(np.random.default_rng(seed), False, size=64).astype(float)
        broken = render_radiograph(np.random.default_rng(seed), True, size=64).astype(float)
        other = render_radiograph(np.random.default_rng(seed + 1000), False, size=64)
        visible += int(np.abs(intact - broken).max() > 25)
        same_limb.append(np.corrcoef(intact.ravel(), broken.ravel())[0, 1])
        unrelated.append(np.corrcoef(intact.ravel(), other.astype(float).ravel())[0, 1])
    assert visible >= 18
    assert np.median(same_limb) > 0.9 > np.median(unrelated)
    assert min(same_limb) < 0.999  # never identical: the fracture is always drawn


# --------------------------------------------------------------------------------------------
# generate_synthetic_dataset
# --------------------------------------------------------------------------------------------


def test_generate_layout_balanced_and_metadata(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(tmp_path / "syn", n_per_class=5, size=SIZE, seed=1)
    assert root == (tmp_path / "syn").absolute()
    for name in ("intact", "fractured"):
        files = sorted((root / name).glob("*.png"))
        assert [f.name for f in files] == [f"{i:05d}.png" for i in range(5)]
        img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE) and img.dtype == np.uint8
    meta = json.loads((root / METADATA_FILE).read_text())
    assert meta["version"] == GENERATOR_VERSION
    assert meta["n_per_class"] == 5 and meta["size"] == SIZE and meta["seed"] == 1
    assert meta["class_names"] == ["intact", "fractured"]
    # No temporary folders left next to the dataset.
    assert [p.name for p in tmp_path.iterdir()] == ["syn"]


def test_generate_custom_class_names(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(
        tmp_path / "d", n_per_class=2, size=SIZE, class_names=("neg", "pos")
    )
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["neg", "pos"]
    with pytest.raises(ValueError):
        generate_synthetic_dataset(tmp_path / "e", n_per_class=2, size=SIZE, class_names=("a",))


def test_generate_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    a = generate_synthetic_dataset(tmp_path / "a", n_per_class=4, size=SIZE, seed=5)
    b = generate_synthetic_dataset(tmp_path / "b", n_per_class=4, size=SIZE, seed=5)
    c = generate_synthetic_dataset(tmp_path / "c", n_per_class=4, size=SIZE, seed=6)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert [p.relative_to(a) for p in fa] == [p.relative_to(b) for p in fb]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb, strict=True))
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(fa, fc, strict=True))
    # Intact and fractured images are not pairs of the same limb.
    assert (a / "intact/00000.png").read_bytes() != (a / "fractured/00000.png").read_bytes()


def test_generate_independent_of_count(tmp_path: Path) -> None:
    """Image i depends on (seed, class, i) only, so a bigger set extends a smaller one."""
    small = generate_synthetic_dataset(tmp_path / "s", n_per_class=2, size=SIZE, seed=9)
    big = generate_synthetic_dataset(tmp_path / "b", n_per_class=4, size=SIZE, seed=9)
    for p in _files(small):
        assert p.read_bytes() == (big / p.relative_to(small)).read_bytes()


def test_regenerate_same_params_does_no_work(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(tmp_path / "syn", n_per_class=3, size=SIZE, seed=2)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = generate_synthetic_dataset(str(tmp_path / "syn"), n_per_class=3, size=SIZE, seed=2)
    assert again == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert [p.name for p in tmp_path.iterdir()] == ["syn"]


@pytest.mark.parametrize(
    "change", [{"seed": 3}, {"n_per_class": 4}, {"size": SIZE + 8}, {"class_names": ("a", "b")}]
)
def test_mismatched_params_raise(tmp_path: Path, change: dict) -> None:
    root = generate_synthetic_dataset(tmp_path / "syn", n_per_class=3, size=SIZE, seed=2)
    kwargs = {"n_per_class": 3, "size": SIZE, "seed": 2, **change}
    with pytest.raises(ValueError, match="syn") as err:
        generate_synthetic_dataset(root, **kwargs)
    assert "data.root" in str(err.value)
    assert len(_files(root)) == 6  # untouched


def test_foreign_non_empty_folder_raises(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("not a dataset")
    with pytest.raises(ValueError, match="mine"):
        generate_synthetic_dataset(root, n_per_class=2, size=SIZE)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


def test_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    generate_synthetic_dataset(root, n_per_class=2, size=SIZE)
    assert len(_files(root)) == 4 and (root / METADATA_FILE).is_file()


def _worker(root: str, barrier: Barrier, n: int) -> None:
    """Start both generations at the same moment so that they really overlap."""
    barrier.wait()
    generate_synthetic_dataset(root, n_per_class=n, size=SIZE, seed=4)


def test_concurrent_generation_same_root(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    n = 100  # long enough for the two processes to overlap
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(str(root), barrier, n)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    for name in ("intact", "fractured"):
        assert len(list((root / name).glob("*.png"))) == n
    assert sorted(p.name for p in root.iterdir()) == ["fractured", "intact", METADATA_FILE]
    meta = json.loads((root / METADATA_FILE).read_text())
    assert meta["n_per_class"] == n and meta["seed"] == 4
    # Both temporary folders are gone, and the result equals a single-process generation.
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]
    ref = generate_synthetic_dataset(tmp_path / "ref", n_per_class=n, size=SIZE, seed=4)
    for p in _files(root):
        assert p.read_bytes() == (ref / p.relative_to(root)).read_bytes()


# --------------------------------------------------------------------------------------------
# Datasets of different parameters side by side under one data root
# --------------------------------------------------------------------------------------------


def _params(**change: object) -> SyntheticParams:
    return SyntheticParams(**{"n_per_class": 3, "size": SIZE, "seed": 2, **change})


def test_folders_are_keyed_by_every_parameter(tmp_path: Path) -> None:
    base = _params()
    keys = {dataset_key(base)}
    for change in (
        {"seed": 3},
        {"n_per_class": 4},
        {"size": SIZE + 8},
        {"class_names": ("a", "b")},
    ):
        keys.add(dataset_key(_params(**change)))
    assert len(keys) == 5
    assert synthetic_folder(tmp_path / "data", base) == (tmp_path / "data" / dataset_key(base))
    assert dataset_key(base).startswith(f"n3-{SIZE}px-seed2-v{GENERATOR_VERSION}-")


def test_unkeyed_folder_of_the_same_parameters_is_reused(tmp_path: Path) -> None:
    """A dataset written straight into the root (the layout before keys) keeps working; one
    of other parameters goes beside its class folders, leaving it untouched."""
    root = generate_synthetic_dataset(tmp_path / "syn", n_per_class=3, size=SIZE, seed=2)
    assert synthetic_folder(root, _params()) == root
    other = synthetic_folder(root, _params(seed=3))
    assert other == root / dataset_key(_params(seed=3))
    write_synthetic_dataset(other, _params(seed=3))
    assert synthetic_folder(root, _params()) == root
    assert synthetic_folder(root, _params(seed=3)) == other
    assert len(list((root / "intact").glob("*.png"))) == 3


def test_root_with_foreign_files_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "scans").mkdir(parents=True)
    (root / "notes.txt").write_text("not a dataset")
    with pytest.raises(ValueError, match=r"data.root=.*mine holds notes.txt, scans"):
        synthetic_folder(root, _params())
    (root / METADATA_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        synthetic_folder(root, _params())


def _datamodule(root: Path, **params: int) -> SyntheticDataModule:
    return SyntheticDataModule(
        root, render_size=SIZE, image_size=32, batch_size=4, cache=False, **params
    )


def test_two_settings_one_after_the_other_in_one_data_root(tmp_path: Path) -> None:
    """Issue 26: after the defaults rendered their data, another setting in the same data
    root works too, and neither renders (or touches) the other's folder."""
    data = tmp_path / "data"
    first = _datamodule(data, n_per_class=6, generator_seed=0)
    first.setup("fit")
    before = {p: p.stat().st_mtime_ns for p in first.root.rglob("*")}
    second = _datamodule(data, n_per_class=8, generator_seed=1)
    second.setup("fit")
    again = _datamodule(data, n_per_class=6, generator_seed=0)
    again.setup("fit")
    assert first.root != second.root and first.root.parent == second.root.parent == data
    assert {p: p.stat().st_mtime_ns for p in first.root.rglob("*")} == before
    assert len(_files(first.root)) == 12 and len(_files(second.root)) == 16
    assert sum(len(second.datasets[s]) for s in second.datasets) == 16
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == sorted(
        [first.root.name, second.root.name]
    )


def test_datamodule_names_a_foreign_data_root(tmp_path: Path) -> None:
    (tmp_path / "xrays" / "fractured").mkdir(parents=True)
    with pytest.raises(UserError, match=r"data.root=.*xrays holds fractured"):
        _datamodule(tmp_path / "xrays", n_per_class=2)
