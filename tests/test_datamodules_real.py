"""The datamodules on the real dataset samples, through the real config tree.

Each datamodule is composed from ``conf/`` (``compose_train`` + ``instantiate(cfg.data)``),
so a broken data config fails here, then set up end to end: index, grouping, split,
manifest, decode-once cache and bad-file policy. Sizes are small (64 px) and the hash /
decode cache is shared by the session, so the default suite stays fast; the CLI training
runs on multi-region and bone-break are marked slow.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fracture_lit.data.bad_files import TooManyBadImagesError
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.dataset_info import DatasetLayoutError
from tests.conftest import REAL_SMALL, compose_train, run_cli

FRACATLAS, MULTIREGION, BONE_BREAK = (
    "FracAtlas",
    "bone-fracture-multi-region",
    "bone-break-classification",
)
TRUNCATED = ("IMG0004028.jpg", "IMG0004154.jpg", "IMG0004259.jpg")
PAPER_C_CLASSES = ["Fracture Dislocation", "Comminuted fracture", "Pathological fracture"]
# TINY's trainer and callback settings (conftest), for real data instead of synthetic.
SMALL_RUN = [
    *REAL_SMALL,
    "+trainer.limit_train_batches=3",  # not in conf/trainer: appended
    "data.image_size=64",
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hash / decode cache shared by the real-data tests of one session: hashing and
    decoding the samples is most of their cost, and the files never change."""
    path = tmp_path_factory.getbasetemp() / "real-data-cache"
    path.mkdir(exist_ok=True)
    return path


def _root(shared_data: Path, folder: str) -> Path:
    path = shared_data / folder
    if not path.is_dir():
        pytest.skip(f"{path} not present (real dataset sample)")
    return path


def _datamodule(data: str, root: Path, out: Path, cache: Path, *extra: str) -> FractureDataModule:
    """``data=<name>`` composed like ``python -m fracture_lit.train`` and instantiated."""
    cfg = compose_train(
        [
            f"data={data}",
            f"data.root={root}",
            "data.image_size=64",
            f"data.cache_dir={cache}",
            *extra,
        ],
        out,
    )
    try:
        return hydra.utils.instantiate(cfg.data)
    finally:
        GlobalHydra.instance().clear()


def _manifest(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def _paths(dm: FractureDataModule, split: str) -> list[str]:
    """The files of ``split`` in dataset order (``dm.datasets[split]`` item i is file i)."""
    return [s.path for s in dm.samples if s.split == split]


def _assert_no_group_straddles(rows: dict[str, dict[str, str]]) -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for row in rows.values():
        where[row["group"]].add(row["split"])
    straddling = {g: s for g, s in where.items() if len(s) > 1}
    assert not straddling, f"groups across splits: {straddling}"


# --------------------------------------------------------------------------- FracAtlas


@pytest.fixture(scope="module")
def fracatlas(
    shared_data: Path, real_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FractureDataModule, Path]:
    """A set-up FracAtlas datamodule and the manifest it wrote (``manifest_out``)."""
    out = tmp_path_factory.mktemp("fracatlas-run")
    dm = _datamodule("fracatlas", _root(shared_data, FRACATLAS), out, real_cache)
    dm.setup("fit")
    return dm, out / "split_manifest.csv"


def test_fracatlas_decodes_the_truncated_jpegs(
    fracatlas: tuple[FractureDataModule, Path],
) -> None:
    dm, manifest = fracatlas
    rows = _manifest(manifest)
    by_name = {Path(p).name: row for p, row in rows.items()}
    kept = {Path(s.path).name: s for s in dm.samples}
    for name in TRUNCATED:
        assert name in kept, f"{name} was dropped instead of decoded"
        assert "truncated JPEG" in by_name[name]["notes"]
        assert "unreadable" not in by_name[name]["notes"]
        # Decoded into the cache: what was there, not a zero row.
        split = kept[name].split
        dataset = dm.datasets[split]
        position = _paths(dm, split).index(kept[name].path)
        assert dataset.array[dataset.rows[position]].std() > 5
    truncated = [p for p, row in rows.items() if "truncated" in row["notes"]]
    assert sorted(Path(p).name for p in truncated) == sorted(TRUNCATED)


def test_fracatlas_split_is_grouped_and_complete(
    fracatlas: tuple[FractureDataModule, Path],
) -> None:
    dm, manifest = fracatlas
    rows = _manifest(manifest)
    assert len(rows) == len(dm.samples) == 506
    _assert_no_group_straddles(rows)
    # The sample's three byte-identical groups are whole, in one split each.
    sizes = defaultdict(int)
    for row in rows.values():
        sizes[row["group"]] += 1
    assert sum(n > 1 for n in sizes.values()) >= 3
    assert dm.classes == ["non_fractured", "fractured"]
    counts = {split: dm.class_counts(split) for split in ("train", "val", "test")}
    assert sum(map(sum, counts.values())) == 506
    assert [sum(c[i] for c in counts.values()) for i in range(2)] == [350, 156]
    assert {split: len(dm.datasets[split]) for split in counts} == {
        split: sum(c) for split, c in counts.items()
    }
    # Stratified 70/15/15 (groups make it approximate).
    assert 0.12 < sum(counts["test"]) / 506 < 0.18 and 0.12 < sum(counts["val"]) / 506 < 0.18
    for split in ("val", "test"):
        assert 0.2 < counts[split][1] / sum(counts[split]) < 0.42  # 31% fractured overall
    # The folder is the label (IMG0003298.jpg: csv says 0, folder says fractured).
    odd = next(row for p, row in rows.items() if p.endswith("IMG0003298.jpg"))
    assert odd["label"] == "1" and odd["class"] == "fractured"
    assert json.loads(odd["meta"])["csv_fractured"] is False


def test_fracatlas_manifest_reproduces_the_split(
    fracatlas: tuple[FractureDataModule, Path],
    shared_data: Path,
    real_cache: Path,
    tmp_path: Path,
) -> None:
    dm, manifest = fracatlas
    root = _root(shared_data, FRACATLAS)
    # Another seed splits differently on its own...
    other = _datamodule("fracatlas", root, tmp_path / "other", real_cache, "seed=7")
    other_split = {s.path: s.split for s in other.prepare_split()}
    original = {s.path: (s.split, s.group) for s in dm.samples}
    assert any(other_split[p] != split for p, (split, _) in original.items())
    # ...but not when it is handed the manifest.
    again = _datamodule(
        "fracatlas", root, tmp_path / "again", real_cache, "seed=7", f"data.manifest={manifest}"
    )
    again.setup("fit")
    assert {s.path: (s.split, s.group) for s in again.samples} == original
    for split in ("train", "val", "test"):
        assert len(again.datasets[split]) == len(dm.datasets[split])
    rewritten = _manifest(tmp_path / "again" / "split_manifest.csv")
    assert {p: r["split"] for p, r in rewritten.items()} == {
        p: r["split"] for p, r in _manifest(manifest).items()
    }


def test_fracatlas_loader_batches(fracatlas: tuple[FractureDataModule, Path]) -> None:
    """Train batches leave the loader as uint8 at size and are normalised on the device."""
    dm, _ = fracatlas
    raw, labels = next(iter(dm.train_dataloader()))
    assert raw.shape == (32, 1, 64, 64) and raw.dtype == torch.uint8
    images, labels = dm.on_after_batch_transfer([raw, labels], 0)
    # greyscale from scratch trains on 1 channel (model.in_chans resolves to 1)
    assert dm.in_chans == 1
    assert images.shape == (32, dm.in_chans, 64, 64) and images.dtype.is_floating_point
    assert labels.dtype == torch.int64
    assert set(labels.tolist()) <= {0, 1}
    assert -3 < float(images.mean()) < 3 and float(images.std()) > 0.1


# --------------------------------------------------------------------------- multi-region


def test_multiregion_keeps_given_test_and_carves_val(
    shared_data: Path, real_cache: Path, tmp_path: Path
) -> None:
    dm = _datamodule("multiregion", _root(shared_data, MULTIREGION), tmp_path, real_cache)
    dm.setup("fit")
    by_split = defaultdict(list)
    for s in dm.samples:
        by_split[s.split].append(s)
    assert len(by_split["test"]) == 200
    assert all(s.given_split == "test" for s in by_split["test"])
    assert all(s.given_split == "train" for s in by_split["train"] + by_split["val"])
    assert len(by_split["train"]) + len(by_split["val"]) == 800
    assert 100 <= len(by_split["val"]) <= 140  # val_fraction 0.15 of the given train
    assert len(dm.datasets["test"]) == 200
    # The carved val is group-aware: no group spans our train and val.
    groups = defaultdict(set)
    for s in by_split["train"] + by_split["val"]:
        groups[s.group].add(s.split)
    assert all(len(v) == 1 for v in groups.values())


# --------------------------------------------------------------------------- bone break


def test_bone_break_paper_c_three_classes(
    shared_data: Path, real_cache: Path, tmp_path: Path
) -> None:
    classes = "[" + ",".join(f"'{c}'" for c in PAPER_C_CLASSES) + "]"
    dm = _datamodule(
        "bone_break",
        _root(shared_data, BONE_BREAK),
        tmp_path,
        real_cache,
        f"data.classes={classes}",
    )
    dm.setup("fit")
    assert dm.num_classes == 3 and dm.classes == PAPER_C_CLASSES
    assert {s.label for s in dm.samples} == {0, 1, 2}
    for s in dm.samples:
        assert Path(s.path).parents[1].name == PAPER_C_CLASSES[s.label]
    assert all(s.split == "test" for s in dm.samples if s.given_split == "test")
    assert {"train", "val", "test"} <= set(dm.datasets)
    assert sum(why == "class not selected" for _, why in dm.index.skipped) == 7


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def folder_with_bad_files(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """image_folder layout with real radiographs, one corrupt .jpg and a notes.txt."""
    source = _root(shared_data, FRACATLAS) / "images"
    root = tmp_path / "xrays"
    for cls, folder in (("fractured", "Fractured"), ("intact", "Non_fractured")):
        (root / cls).mkdir(parents=True)
        for path in sorted((source / folder).glob("*.jpg"))[40:48]:
            shutil.copy(path, root / cls / path.name)
    corrupt = root / "fractured" / "corrupt.jpg"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "intact" / "notes.txt").write_text("not an image\n")
    return root, corrupt


def test_corrupt_file_is_skipped_and_listed(
    folder_with_bad_files: tuple[Path, Path], tmp_path: Path
) -> None:
    root, corrupt = folder_with_bad_files
    dm = _datamodule(
        "image_folder",
        root,
        tmp_path / "run",
        tmp_path / "cache",
        "data.max_bad_fraction=0.2",
        "data.val_fraction=0.25",
        "data.test_fraction=0.25",
    )
    dm.setup("fit")
    assert dm.classes == ["intact", "fractured"]  # the positive class is label 1
    kept = {s.path for s in dm.samples}
    assert str(corrupt) not in kept and len(kept) == 16
    assert sum(len(d) for d in dm.datasets.values()) == 16
    rows = _manifest(tmp_path / "run" / "split_manifest.csv")
    assert "unreadable: skipped" in rows[str(corrupt)]["notes"]
    skipped = dict(dm.index.skipped)
    assert str(root / "intact" / "notes.txt") in skipped
    assert "not an image file" in skipped[str(root / "intact" / "notes.txt")]


def test_no_bad_files_allowed_names_the_corrupt_file(
    folder_with_bad_files: tuple[Path, Path], tmp_path: Path
) -> None:
    root, corrupt = folder_with_bad_files
    dm = _datamodule(
        "image_folder", root, tmp_path / "run", tmp_path / "cache", "data.max_bad_fraction=0"
    )
    with pytest.raises(TooManyBadImagesError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(corrupt) in message and "data.max_bad_fraction" in message


def test_wrong_layout_shows_expected_tree_and_download(tmp_path: Path) -> None:
    root = tmp_path / "not-fracatlas"
    (root / "train" / "fractured").mkdir(parents=True)
    (root / "train" / "fractured" / "a.jpg").write_bytes(b"x")
    dm = _datamodule("fracatlas", root, tmp_path / "run", tmp_path / "cache")
    with pytest.raises(DatasetLayoutError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(root) in message
    assert "Expected layout:" in message and "Non_fractured/" in message
    assert "python -m fracture_lit.data.download fracatlas" in message


# --------------------------------------------------------------------------- CLI training


def _train_cli(data: str, root: Path, cache: Path, tmp_path: Path, *extra: str) -> dict:
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            f"data={data}",
            f"data.root={root}",
            f"data.cache_dir={cache}",
            *SMALL_RUN,
            *extra,
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*/metrics.json"))
    assert len(runs) == 1, runs
    summary = json.loads(runs[0].read_text())
    assert summary["status"] == "done"
    assert (runs[0].parent / "split_manifest.csv").is_file()
    return summary


def test_cli_trains_on_fracatlas(shared_data: Path, real_cache: Path, tmp_path: Path) -> None:
    summary = _train_cli("fracatlas", _root(shared_data, FRACATLAS), real_cache, tmp_path)
    assert summary["classes"] == ["non_fractured", "fractured"]
    assert 60 <= summary["test"]["n"] <= 90  # 15% of 506, grouped
    assert 0.0 <= summary["test"]["metrics"]["test/auroc"] <= 1.0
    # Every run is scored per subgroup where FracAtlas' csv records it.
    [run_dir] = [p.parent for p in (tmp_path / "outputs").glob("*/*/metrics.json")]
    groups = json.loads((run_dir / "review" / "test" / "subgroups.json").read_text())
    assert set(groups) == {"region", "view", "hardware"} and set(groups["hardware"]) == {
        "yes",
        "no",
    }
    assert sum(g["n"] for g in groups["hardware"].values()) == summary["test"]["n"]
    for attribute in groups.values():
        for block in attribute.values():
            assert ("ci95" in block) == (block["n"] >= 10 and 0 < block["n_positive"] < block["n"])
    page = (run_dir / "report.html").read_text()
    assert "Per region — test (95% CI)" in page and "Per hardware — val (95% CI)" in page


@pytest.mark.slow
def test_cli_trains_on_multiregion(shared_data: Path, real_cache: Path, tmp_path: Path) -> None:
    summary = _train_cli("multiregion", _root(shared_data, MULTIREGION), real_cache, tmp_path)
    assert summary["classes"] == ["not_fractured", "fractured"]
    assert summary["test"]["n"] == 200


@pytest.mark.slow
def test_cli_trains_on_bone_break_paper_c(
    shared_data: Path, real_cache: Path, tmp_path: Path
) -> None:
    classes = "[" + ",".join(f"'{c}'" for c in PAPER_C_CLASSES) + "]"
    summary = _train_cli(
        "bone_break",
        _root(shared_data, BONE_BREAK),
        real_cache,
        tmp_path,
        f"data.classes={classes}",
    )
    assert summary["classes"] == PAPER_C_CLASSES
    assert len(summary["test"]["confusion_matrix"]) == 3
