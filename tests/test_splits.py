"""Grouping (names, hashes) and the group-aware, stratified splitter; manifest round-trips."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fracture_lit.data.datasets.bone_break import index_bone_break
from fracture_lit.data.datasets.fracatlas import index_fracatlas
from fracture_lit.data.datasets.multiregion import index_multiregion
from fracture_lit.data.grouping import (
    assign_groups,
    file_digest,
    near_duplicate_pairs,
    perceptual_hash,
    stem_key,
)
from fracture_lit.data.manifest import (
    ManifestMismatchError,
    apply_manifest,
    read_manifest,
    write_manifest,
)
from fracture_lit.data.samples import Sample
from fracture_lit.data.splits import assign_splits, greedy_group_split, split_summary


def _dataset(shared_data: Path, folder: str) -> Path:
    path = shared_data / folder
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def _straddling(samples: list[Sample]) -> dict[str, set[str]]:
    where: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        where[s.group].add(s.split)
    return {g: splits for g, splits in where.items() if len(splits) > 1}


# --------------------------------------------------------------------------- stem_key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("1-rotated1.jpg", "1"),
        ("1-rotated1-rotated2-rotated1 - Copy.jpg", "1"),
        ("3-rotated3-rotated3 - Copy (1).jpg", "3"),
        ("94 (1).jpg", "94"),
        ("10(1).jpg", "10"),
        ("5 (2).jpg", "5"),
        (
            "2d59fd50936098df8ddf49c912e70b_gallery (2).jpg",
            "2d59fd50936098df8ddf49c912e70b_gallery",
        ),
        ("scan copy.png", "scan"),
        ("image10_jpeg.rf.b566b1f5626a3292fe805699e784a175.jpg", "image10"),
        ("F1-large2_jpg.rf.c2d3078f808a8a85ce1563a8b857820d.jpg", "f1-large2"),
        ("000002_png.rf.c3e00ebc2db78bc94e644c3f6605dad0.jpg", "000002"),
        ("0-_jumbo_jpeg.rf.7925062f37e327162df7d528ab8d245f.jpg", "0-_jumbo"),
        # mangled Roboflow names seen in the bone-break sample
        ("Greenstick-300x265_jpg.rf86c08d814d3a4fb36e5.jpg", "greenstick-300x265"),
        ("Segond-Fx-label-2_png.rbecbcb0ff8e7e06cb974569469.jpg", "segond-fx-label-2"),
        ("jfmk-07-00030-g001_png.1e8d6666777.jpg", "jfmk-07-00030-g001"),
        ("T1511F02_Fig01_j92ae5d2f4a590bcbc55.jpg", "t1511f02_fig01"),
        # plain names stay themselves (lower-cased)
        ("IMG0003298.jpg", "img0003298"),
        ("13018_2014_Article_96_Fig1_HTML (1).jpg", "13018_2014_article_96_fig1_html"),
        ("rotated.jpg", "rotated"),
    ],
)
def test_stem_key(name: str, key: str) -> None:
    assert stem_key(name) == key


def test_stem_key_variants_agree() -> None:
    variants = ["7.jpg", "7-rotated2.jpg", "7 - Copy.jpg", "7-rotated1-rotated3 - Copy (1).jpg"]
    assert {stem_key(v) for v in variants} == {"7"}
    assert stem_key("17.jpg") != stem_key("7.jpg")


# --------------------------------------------------------------------------- hashing helpers


def test_near_duplicate_pairs_matches_brute_force() -> None:
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(60)]
    hashes = base + [h ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for h in base[:20]]
    hashes += base[:5]  # identical hashes
    for threshold in (0, 2, 4, 10):
        expected = sorted(
            (i, j)
            for i in range(len(hashes))
            for j in range(i + 1, len(hashes))
            if bin(hashes[i] ^ hashes[j]).count("1") <= threshold
        )
        got = near_duplicate_pairs(hashes, threshold, chunk_elems=50)  # force several blocks
        # identical hashes are chained, not all-pairs: compare the induced partitions
        assert _partition(got, len(hashes)) == _partition(expected, len(hashes))


def _partition(pairs: list[tuple[int, int]], n: int) -> set[frozenset[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = defaultdict(set)
    for i in range(n):
        groups[find(i)].add(i)
    return {frozenset(g) for g in groups.values()}


def test_truncated_jpeg_hashes_without_global_side_effect(shared_data: Path) -> None:
    from PIL import ImageFile

    path = _dataset(shared_data, "FracAtlas") / "images"
    truncated = next(path.rglob("IMG0004028.jpg"))
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    h = perceptual_hash(truncated)
    assert 0 <= h < 2**64
    assert ImageFile.LOAD_TRUNCATED_IMAGES is before, "truncation must be allowed only locally"
    assert len(file_digest(truncated)) == 40


# --------------------------------------------------------------------------- grouping on real data


def test_fracatlas_identical_files_grouped(shared_data: Path) -> None:
    index = index_fracatlas(_dataset(shared_data, "FracAtlas"))
    assign_groups(index.samples, near_duplicates=False, by_name=False)
    by_digest: dict[str, list[Sample]] = defaultdict(list)
    for s in index.samples:
        by_digest[file_digest(s.path)].append(s)
    dupes = [members for members in by_digest.values() if len(members) > 1]
    assert len(dupes) == 3, "the README promises three byte-identical groups in this sample"
    assert all(len({s.group for s in members}) == 1 for members in by_digest.values())
    n_groups = len({s.group for s in index.samples})
    assert n_groups == len(by_digest), "bytes only: one group per distinct file content"
    assert all(s.group for s in index.samples)


def test_multiregion_variants_grouped(shared_data: Path) -> None:
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    assign_groups(index.samples)
    by_key: dict[tuple[int, str], set[str]] = defaultdict(set)
    for s in index.samples:
        by_key[(s.label, stem_key(s.name))].add(s.group)
    assert all(len(groups) == 1 for groups in by_key.values())
    n_groups = len({s.group for s in index.samples})
    assert n_groups < 300, "1,000 files are copies of far fewer sources"


# --------------------------------------------------------------------------- splitter (synthetic)


def _synthetic(n_groups: int = 300, seed: int = 0, n_labels: int = 3) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    for g in range(n_groups):
        label = rng.randrange(n_labels)
        for k in range(rng.choice([1, 1, 1, 2, 3, 8])):
            samples.append(Sample(path=f"/d/{g}_{k}.png", label=label, group=f"g{g}"))
    return samples


def test_own_split_is_stratified_group_aware_and_seeded() -> None:
    samples = _synthetic()
    assign_splits(samples, use_given_split=False, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert not _straddling(samples)
    summary = split_summary(samples)
    n = len(samples)
    assert abs(summary["train"]["n"] / n - 0.6) < 0.03
    assert abs(summary["val"]["n"] / n - 0.2) < 0.03
    totals = Counter(s.label for s in samples)
    for split, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        for label, total in totals.items():
            assert abs(summary[split]["labels"][label] - frac * total) <= 8  # one big group
    first = [s.split for s in samples]
    again = _synthetic()
    assign_splits(again, use_given_split=False, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert [s.split for s in again] == first
    assign_splits(again, use_given_split=False, val_fraction=0.2, test_fraction=0.2, seed=4)
    assert [s.split for s in again] != first


def test_kfold_covers_every_sample_once() -> None:
    samples = _synthetic(seed=1)
    val_of: dict[str, int] = {}
    tests: list[set[str]] = []
    for fold in range(5):
        assign_splits(
            samples,
            use_given_split=False,
            val_fraction=0.0,
            test_fraction=0.1,
            seed=0,
            n_folds=5,
            fold=fold,
        )
        assert not _straddling(samples)
        tests.append({s.path for s in samples if s.split == "test"})
        for s in samples:
            if s.split == "val":
                assert s.path not in val_of
                val_of[s.path] = fold
    assert all(t == tests[0] for t in tests), "test is held out before the folds"
    assert len(val_of) + len(tests[0]) == len(samples)
    with pytest.raises(ValueError, match="together"):
        assign_splits(
            samples, use_given_split=False, val_fraction=0.1, test_fraction=0.1, seed=0, n_folds=5
        )


def test_given_split_kept_and_val_carved_from_train() -> None:
    samples = _synthetic(seed=2)
    rng = random.Random(0)
    group_split = {s.group: ("test" if rng.random() < 0.2 else "train") for s in samples}
    for s in samples:
        s.given_split = group_split[s.group]
    leaky = samples[0]
    samples.append(
        Sample(
            path="/d/leak.png",
            label=leaky.label,
            group=leaky.group,
            given_split="test" if leaky.given_split == "train" else "train",
        )
    )
    report = assign_splits(
        samples, use_given_split=True, val_fraction=0.15, test_fraction=0.2, seed=0
    )
    assert report.mode == "given" and report.carved == ["val"]
    for s in samples:
        if s.given_split == "test":
            assert s.split == "test"
        else:
            assert s.split in {"train", "val"}
    assert report.crossing_groups == {"train/test": [leaky.group]}
    assert any("train/test" in w for w in report.warnings)
    pool = [s for s in samples if s.given_split == "train"]
    assert not _straddling(pool)
    share = sum(s.split == "val" for s in pool) / len(pool)
    assert abs(share - 0.15) < 0.03


def test_bad_fractions_rejected() -> None:
    with pytest.raises(ValueError, match="room for train"):
        assign_splits(
            _synthetic(), use_given_split=False, val_fraction=0.5, test_fraction=0.5, seed=0
        )


def test_greedy_split_ignores_zero_fraction_bins() -> None:
    samples = _synthetic(n_groups=50)
    out = greedy_group_split(samples, {"train": 0.8, "val": 0.0, "test": 0.2}, seed=0)
    assert set(out.values()) == {"train", "test"}


# --------------------------------------------------------------------------- real data


def test_multiregion_own_split_never_straddles(shared_data: Path) -> None:
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    assign_groups(index.samples)
    assign_splits(
        index.samples, use_given_split=False, val_fraction=0.15, test_fraction=0.15, seed=0
    )
    assert not _straddling(index.samples)
    summary = split_summary(index.samples)
    assert set(summary) == {"train", "val", "test"}
    for split in ("val", "test"):
        assert 120 <= summary[split]["n"] <= 180
        labels = summary[split]["labels"]
        assert abs(labels[0] - labels[1]) <= 0.1 * summary[split]["n"]


def test_multiregion_given_split_reports_leaks(shared_data: Path) -> None:
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    assign_groups(index.samples)
    report = assign_splits(
        index.samples, use_given_split=True, val_fraction=0.15, test_fraction=0.15, seed=0
    )
    assert Counter(s.split for s in index.samples if s.given_split == "test") == {"test": 200}
    assert report.carved == ["val"]
    assert len(report.crossing_groups["train/test"]) >= 19


def test_bone_break_own_split_keeps_every_class(shared_data: Path) -> None:
    index = index_bone_break(_dataset(shared_data, "bone-break-classification"))
    assign_groups(index.samples)
    assign_splits(
        index.samples, use_given_split=False, val_fraction=0.15, test_fraction=0.15, seed=0
    )
    assert not _straddling(index.samples)
    summary = split_summary(index.samples)
    for split in ("train", "val", "test"):
        assert set(summary[split]["labels"]) == set(range(10))


# --------------------------------------------------------------------------- manifest


def test_manifest_round_trip_reproduces_split(shared_data: Path, tmp_path: Path) -> None:
    root = _dataset(shared_data, "bone-break-classification")
    index = index_bone_break(root)
    assign_groups(index.samples)
    assign_splits(index.samples, use_given_split=False, val_fraction=0.2, test_fraction=0.2, seed=7)
    manifest = write_manifest(index.samples, tmp_path / "split.csv", classes=index.classes)
    header = manifest.read_text().splitlines()[0]
    assert header == "path,label,class,split,given_split,group,notes,meta"

    fresh = index_bone_break(root)  # no groups, no splits
    apply_manifest(fresh.samples, read_manifest(manifest))
    assert [(s.path, s.split, s.group) for s in fresh.samples] == [
        (s.path, s.split, s.group) for s in index.samples
    ]
    # relative paths: the same manifest applies to the dataset moved elsewhere
    rel = write_manifest(index.samples, tmp_path / "rel.csv", root=root)
    assert not rel.read_text().splitlines()[1].startswith("/")
    again = read_manifest(rel, root=root)
    assert [s.path for s in again] == [s.path for s in index.samples]


def test_manifest_meta_round_trip(shared_data: Path, tmp_path: Path) -> None:
    index = index_fracatlas(_dataset(shared_data, "FracAtlas"))
    write_manifest(index.samples, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    assert [(s.meta, s.notes, s.label) for s in back] == [
        (s.meta, s.notes, s.label) for s in index.samples
    ]


def test_manifest_mismatch_lists_files(tmp_path: Path) -> None:
    samples = [
        Sample(path=f"/d/{i}.png", label=i % 2, split="train", group=str(i)) for i in range(5)
    ]
    write_manifest(samples, tmp_path / "m.csv")
    manifest = read_manifest(tmp_path / "m.csv")
    current = samples[1:] + [Sample(path="/d/new.png", label=0)]
    current[0].label = 0  # /d/1.png changed class
    with pytest.raises(ManifestMismatchError) as err:
        apply_manifest(current, manifest)
    message = str(err.value)
    assert "/d/0.png" in message and "in the manifest but not among the indexed files" in message
    assert "/d/new.png" in message and "indexed but not in the manifest" in message
    assert "/d/1.png (manifest 1, now 0)" in message
    assert all(s.split is None for s in current[1:] if s.path == "/d/new.png")
