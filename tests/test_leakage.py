"""The leakage audit: exact / near / name duplicates across splits, on real and toy data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fracture_lit.data.datasets.bone_break import index_bone_break
from fracture_lit.data.datasets.fracatlas import index_fracatlas
from fracture_lit.data.datasets.multiregion import index_multiregion
from fracture_lit.data.grouping import HashCache, assign_groups
from fracture_lit.data.leakage import DuplicateGroup, audit_leakage
from fracture_lit.data.samples import Sample
from fracture_lit.data.splits import assign_splits


def _dataset(shared_data: Path, folder: str) -> Path:
    path = shared_data / folder
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def test_multiregion_given_split_leaks(shared_data: Path) -> None:
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    report = audit_leakage(index.samples)  # no split assigned: audits the given split
    assert report.split_counts == {"train": 800, "test": 200}
    assert report.crossing["exact"]["train/test"] == 19
    assert report.crossing["exact"]["train/val"] == 0 and report.crossing["exact"]["val/test"] == 0
    assert len(report.crossing_groups("exact", "train", "test")) == 19
    # near-duplicates add leaks that byte comparison misses (rotated / re-encoded copies)
    assert report.crossing["near"]["train/test"] > 0
    twins = report.twins["test"]
    assert twins["n"] == 200
    assert twins["exact"] >= 19
    assert twins["exact"] < twins["visual"] <= twins["any"]
    assert report.twin_share("test", "any") > 0.5
    table = report.format_table()
    assert "train/test" in table and "exact" in table and "test (200)" in table
    assert "\x1b" not in table and "[bold" not in table  # plain text, no rich markup
    json.dumps(report.to_dict())


def test_own_grouped_split_has_no_leaks(shared_data: Path) -> None:
    """Grouping + splitting with the audit's own thresholds leaves nothing to find."""
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    assign_groups(index.samples, max_hamming=4)
    assign_splits(
        index.samples, use_given_split=False, val_fraction=0.15, test_fraction=0.15, seed=0
    )
    report = audit_leakage(index.samples, max_hamming=4)
    for kind in ("exact", "near", "name"):
        assert report.crossing[kind]["train/test"] == 0
        assert report.crossing[kind]["train/val"] == 0
        assert report.crossing[kind]["val/test"] == 0
    assert report.twins["test"]["any"] == 0 and report.twins["val"]["any"] == 0


def test_fracatlas_exact_groups(shared_data: Path) -> None:
    index = index_fracatlas(_dataset(shared_data, "FracAtlas"))
    report = audit_leakage(index.samples)
    assert len(report.exact_groups) == 3
    assert report.split_counts == {"none": 506}
    assert report.crossing["exact"]["within"] == 3
    assert report.unreadable == [], "truncated JPEGs still get a perceptual hash"


def test_bone_break_sources_cross_train_test(shared_data: Path) -> None:
    index = index_bone_break(_dataset(shared_data, "bone-break-classification"))
    report = audit_leakage(index.samples)
    # "a few sources appear in both Train and Test" (README); found as visual near-copies
    assert report.crossing["near"]["train/test"] >= 1
    assert report.twins["test"]["visual"] >= 1
    # the same radiograph filed under two fracture types
    assert any(g.mixed_labels for g in report.near_groups)


# --------------------------------------------------------------------------- toy images


def _xray(seed: int, size: int = 96) -> Image.Image:
    """A random smooth greyscale image: distinct seeds give distant perceptual hashes."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)


def test_toy_exact_near_and_name(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    _xray(1).save(a)
    a_copy = tmp_path / "a_copy_bytes.png"
    a_copy.write_bytes(a.read_bytes())
    a_near = tmp_path / "near.jpg"
    _xray(1).save(a_near, quality=90)  # same picture, different bytes
    b = tmp_path / "b.png"
    _xray(2).save(b)
    b_variant = tmp_path / "b - Copy.png"
    _xray(3).save(b_variant)  # different pixels, same source name
    samples = [
        Sample(path=str(a), label=0, split="train"),
        Sample(path=str(a_copy), label=0, split="test"),
        Sample(path=str(a_near), label=0, split="val"),
        Sample(path=str(b), label=1, split="train"),
        Sample(path=str(b_variant), label=1, split="test"),
    ]
    report = audit_leakage(samples, cache=HashCache(tmp_path / "hashes.json"))
    assert (tmp_path / "hashes.json").is_file()
    assert [sorted(Path(p).name for p in g.paths) for g in report.exact_groups] == [
        ["a.png", "a_copy_bytes.png"]
    ]
    assert report.crossing["exact"] == {"train/test": 1, "train/val": 0, "val/test": 0, "within": 0}
    # near: a/a_copy is one node, near.jpg another: crossing counts only distinct files
    assert len(report.near_groups) == 1
    assert report.crossing["near"]["train/val"] == 1 and report.crossing["near"]["val/test"] == 1
    assert report.crossing["near"]["train/test"] == 0, "that pair is already an exact copy"
    assert report.crossing["name"]["train/test"] == 1
    assert report.twins["test"] == {"n": 2, "exact": 1, "visual": 1, "any": 2}
    assert report.twins["val"] == {"n": 1, "exact": 0, "visual": 1, "any": 1}

    assign_groups(samples, cache=HashCache(tmp_path / "hashes.json"))
    assert len({s.group for s in samples}) == 2


def test_duplicate_group_crossing_rules() -> None:
    near = DuplicateGroup(
        kind="near",
        paths=["x", "y", "z"],
        splits=["train", "test", "test"],
        labels=[0, 0, 0],
        nodes=[0, 0, 1],
    )
    assert near.crosses("train", "test")  # x (node 0, train) vs z (node 1, test)
    only_exact = DuplicateGroup(
        kind="near",
        paths=["x", "y", "z"],
        splits=["train", "test", "train"],
        labels=[0, 0, 1],
        nodes=[0, 0, 1],
    )
    assert only_exact.crosses("train", "test")  # z (node 1, train) vs y (node 0, test)
    same_node = DuplicateGroup(
        kind="near",
        paths=["x", "y", "z"],
        splits=["train", "test", "val"],
        labels=[0, 0, 0],
        nodes=[0, 0, 1],
    )
    assert not same_node.crosses("train", "test")
    assert same_node.crosses("train", "val") and not same_node.mixed_labels
