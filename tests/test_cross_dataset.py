"""Across datasets: the merged dataset, cross-source duplicates and leave-one-dataset-out.

The real samples are the case: FracAtlas and bone-fracture-multi-region share three images
byte for byte (under FracAtlas names), so a merged split or a held-out source leaks unless
duplicates are grouped across them. Every count and figure the product reports is checked
against an independent recomputation here: ``hashlib`` digests and ``imagehash`` perceptual
hashes computed in this file (not the product's grouping code), scikit-learn's
``roc_auc_score``, a plain numpy bootstrap and DeLong's structural components written out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import imagehash
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image, ImageFile
from rich.console import Console
from sklearn.metrics import roc_auc_score

from fracture_lit.config import source_names
from fracture_lit.data.datasets.merged import MergedDataModule
from fracture_lit.data.grouping import assign_groups
from fracture_lit.data.hashing import FINE_MAX_HAMMING, NEAR_MAX_HAMMING
from fracture_lit.data.merging import parse_sources
from fracture_lit.data.samples import Sample
from fracture_lit.data.splits import assign_splits
from fracture_lit.errors import ConfigError
from fracture_lit.tasks.auditing import audit
from fracture_lit.tasks.training import run
from tests.conftest import REAL_SMALL, compose_entry, compose_train, run_cli

FRACATLAS, MULTIREGION = "FracAtlas", "bone-fracture-multi-region"
SOURCES = {"fracatlas": FRACATLAS, "multiregion": MULTIREGION}
# The same radiographs under FracAtlas names in both samples (data/README.md).
SHARED_IMAGES = {"IMG0000185.jpg", "IMG0000208.jpg", "IMG0002490.jpg"}
EXPECTED_MAPPING = [
    ("fracatlas", "non_fractured", "intact", 350),
    ("fracatlas", "fractured", "fractured", 156),
    ("multiregion", "not_fractured", "intact", 500),
    ("multiregion", "fractured", "fractured", 500),
]
SMALL_RUN = [*REAL_SMALL, "+trainer.limit_train_batches=2", "data.image_size=64"]


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hash / decode cache the real-data tests of a session share."""
    path = tmp_path_factory.getbasetemp() / "real-data-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def samples_root(shared_data: Path) -> Path:
    for folder in SOURCES.values():
        if not (shared_data / folder).is_dir():
            pytest.skip(f"{shared_data / folder} not present (real dataset sample)")
    return shared_data


# --------------------------------------------------------------------------- independent hashing


def _grey(path: Path) -> Image.Image:
    """A reduced greyscale decode (JPEG draft), as a perceptual hash of 10k files needs."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # three FracAtlas JPEGs are truncated
    try:
        with Image.open(path) as image:
            image.draft("L", (128, 128))
            grey = image.convert("L")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    if max(grey.size) > 256:
        grey.thumbnail((256, 256))
    return grey


def _independent_links(paths: list[str]) -> tuple[list[str], list[tuple[int, int, str]]]:
    """sha1 per file, and every pair (i, j, "exact" | "near") of copies: same bytes, or a
    64-bit phash within NEAR_MAX_HAMMING bits confirmed by a 256-bit one."""
    digests = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]
    coarse, fine = [], []
    for p in paths:
        grey = _grey(Path(p))
        coarse.append(imagehash.phash(grey))
        fine.append(imagehash.phash(grey, hash_size=16))
    bits = np.array([h.hash.flatten() for h in coarse])  # (n, 64) booleans
    distance = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    links = []
    for i, j in zip(*np.nonzero(np.triu(distance <= NEAR_MAX_HAMMING, k=1)), strict=True):
        if digests[i] == digests[j]:
            links.append((int(i), int(j), "exact"))
        elif fine[i] - fine[j] <= FINE_MAX_HAMMING:
            links.append((int(i), int(j), "near"))
    return digests, links  # same bytes give the same hashes: every exact pair is listed


def _cross_source_counts(sources: list[str], links: list[tuple[int, int, str]]) -> dict:
    """Per ordered pair (A, B): images of A with a twin in B, exact ones first."""
    exact: dict[int, set[str]] = defaultdict(set)
    near: dict[int, set[str]] = defaultdict(set)
    for i, j, kind in links:
        (exact if kind == "exact" else near)[i].add(sources[j])
        (exact if kind == "exact" else near)[j].add(sources[i])
    out = {}
    for a in sorted(set(sources)):
        for b in sorted(set(sources)):
            if a == b:
                continue
            mine = [i for i, s in enumerate(sources) if s == a]
            n_exact = sum(b in exact[i] for i in mine)
            n_near = sum(b not in exact[i] and b in near[i] for i in mine)
            out[f"{a}/{b}"] = {
                "of": len(mine),
                "images": n_exact + n_near,
                "exact": n_exact,
                "near": n_near,
            }
    return out


# --------------------------------------------------------------------------- fast checks


def test_sources_in_every_form(tmp_path: Path) -> None:
    short = parse_sources(["fracatlas", "multi_region"], tmp_path)
    assert [(s.name, s.root.name) for s in short] == [
        ("fracatlas", "FracAtlas"),
        ("multiregion", "bone-fracture-multi-region"),
    ]
    entries = parse_sources(
        OmegaConf.create(["fracatlas", {"name": "multiregion", "root": str(tmp_path / "mr")}]),
        "/data",
    )
    assert entries[1].root == tmp_path / "mr" and entries[0].root == Path("/data/FracAtlas")
    keyed = parse_sources({"multiregion": {"root": "/x"}, "fracatlas": None}, "/data")
    assert [s.name for s in keyed] == ["multiregion", "fracatlas"]
    assert keyed[1].where == "data.sources.fracatlas"
    with pytest.raises(ConfigError, match=r"data.sources\[1\]=mura: is not a dataset.*fracatlas"):
        parse_sources(["fracatlas", "mura"], tmp_path)
    with pytest.raises(ConfigError, match="listed twice"):
        parse_sources(["fracatlas", "FracAtlas"], tmp_path)
    with pytest.raises(ConfigError, match=r"data.sources\[0\].classes=.*not an option"):
        parse_sources([{"name": "fracatlas", "classes": ["a", "b"]}], tmp_path)
    with pytest.raises(ConfigError, match=r"data.sources\[1\].root=null.*image_folder"):
        parse_sources(["fracatlas", "image_folder"], tmp_path)
    assert source_names(OmegaConf.create(["fracatlas", {"name": "multiregion"}])) == (
        "fracatlas,multiregion"
    )
    assert source_names(OmegaConf.create({"fracatlas": None, "bone_break": {}})) == (
        "fracatlas,bone_break"
    )


def test_held_out_must_be_one_of_several_grouped_sources(tmp_path: Path) -> None:
    data = {"sources": ["fracatlas", "multiregion"], "data_dir": str(tmp_path)}
    MergedDataModule.check_config({**data, "held_out": "multiregion"})
    with pytest.raises(ConfigError, match="data.held_out=mura: is not one of data.sources"):
        MergedDataModule.check_config({**data, "held_out": "mura"})
    with pytest.raises(ConfigError, match="leaves no source to train on"):
        MergedDataModule.check_config({**data, "sources": ["fracatlas"], "held_out": "fracatlas"})
    with pytest.raises(ConfigError, match="data.group_duplicates=false"):
        MergedDataModule.check_config({**data, "held_out": "fracatlas", "group_duplicates": False})


def test_split_keeps_each_source_in_proportion() -> None:
    """A merged split is stratified by (source, label): every split holds each source."""
    samples = [
        Sample(
            path=f"/{source}/{i}.png", label=i % 2, meta={"source": source}, group=f"{source}{i}"
        )
        for source, n in (("a", 400), ("b", 60))
        for i in range(n)
    ]
    assign_splits(
        samples,
        use_given_split=False,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=1,
        stratum=lambda s: (s.meta["source"], s.label),
    )
    for split in ("train", "val", "test"):
        members = [s for s in samples if s.split == split]
        share_b = sum(s.meta["source"] == "b" for s in members) / len(members)
        assert abs(share_b - 60 / 460) < 0.02, (split, share_b)


def test_bone_break_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        ["-m", "fracture_lit.train", "data=merged", "data.sources=[fracatlas,bone_break]"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: data.sources[1]=bone_break: its classes cannot be mapped")
    assert "none is intact" in lines[0] and "Drop it from data.sources" in lines[0]
    [record] = tmp_path.glob("outputs/*/*/metrics.json")  # the failure is recorded...
    assert json.loads(record.read_text())["status"] == "failed"
    assert not (record.parent / "split_manifest.csv").exists(), "...before any data is read"


def test_near_duplicates_are_confirmed_on_real_pairs(samples_root: Path) -> None:
    """The pairs the threshold was chosen on: look-alike knees are not one image, a
    brightness-shifted copy under another name is."""
    fa = samples_root / FRACATLAS / "images"
    mr = samples_root / MULTIREGION / "train" / "not fractured"
    cases = [  # (a, b, same radiograph?)
        (fa / "Non_fractured/IMG0000992.jpg", fa / "Non_fractured/IMG0003318.jpg", False),
        (fa / "Fractured/IMG0003308.jpg", fa / "Non_fractured/IMG0002629.jpg", False),
        (mr / "3-rotated2 (2).jpg", mr / "69-rotated2 (1).jpg", True),
    ]
    for a, b, same in cases:
        pair = [Sample(path=str(a), label=0), Sample(path=str(b), label=0)]
        assign_groups(pair, by_name=False)
        assert (pair[0].group == pair[1].group) is same, (a.name, b.name)
        coarse_only = [Sample(path=str(a), label=0), Sample(path=str(b), label=0)]
        assign_groups(coarse_only, by_name=False, max_hamming=4, fine_max_hamming=None)
        assert coarse_only[0].group == coarse_only[1].group, "the 64-bit hash alone merges it"


# --------------------------------------------------------------------------- a merged run


def test_merged_run_on_the_samples(samples_root: Path, real_cache: Path, tmp_path: Path) -> None:
    """FracAtlas + multi-region as one task: mapping, source subgroups, no split leaks,
    and the audit's cross-source counts against an independent recomputation."""
    data = [
        "data=merged",
        f"data.data_dir={samples_root}",
        f"data.cache_dir={real_cache}",
    ]
    cfg = compose_train([*data, *SMALL_RUN, "callbacks.review.gradcam=false"], tmp_path)
    results = run(cfg)
    assert results["status"] == "done"
    assert results["classes"] == ["intact", "fractured"]

    # The label mapping: logged, and in label_mapping.json and the manifest's columns.
    mapping = json.loads((tmp_path / "label_mapping.json").read_text())
    assert mapping["classes"] == ["intact", "fractured"]
    assert [
        (r["source"], r["source_class"], r["shared_class"], r["n"]) for r in mapping["mapping"]
    ] == EXPECTED_MAPPING
    shared = {(s, c): target for s, c, target, _ in EXPECTED_MAPPING}
    rows = list(csv.DictReader((tmp_path / "split_manifest.csv").open()))
    assert len(rows) == 1506
    for row in rows:
        assert row["class"] == shared[(row["source"], row["source_class"])]

    # Sources with counts and licences, for the model card.
    summary = json.loads((tmp_path / "metrics.json").read_text())
    sources = {s["name"]: s for s in summary["data"]["sources"]}
    assert (sources["fracatlas"]["n"], sources["fracatlas"]["n_positive"]) == (506, 156)
    assert (sources["multiregion"]["n"], sources["multiregion"]["n_positive"]) == (1000, 500)
    assert sources["fracatlas"]["licence"] == "CC BY 4.0"
    assert sources["multiregion"]["licence"] == "ODC-By 1.0"

    # `source` is a subgroup of every block, the run page and the review.
    for stage in ("val", "test"):
        by_source = summary[stage]["subgroups"]["source"]
        assert set(by_source) == {"fracatlas", "multiregion"}
        assert sum(b["n"] for b in by_source.values()) == summary[stage]["n"]
        for name, block in by_source.items():
            expected = sum(r["split"] == stage and r["source"] == name for r in rows)
            assert block["n"] == expected and "ci95" in block
    review = json.loads((tmp_path / "review" / "test" / "subgroups.json").read_text())
    assert set(review["source"]) == {"fracatlas", "multiregion"}
    page = (tmp_path / "report.html").read_text()
    assert "Per source — test (95% CI)" in page and "Per source — val (95% CI)" in page

    # No duplicate group (exact or near, found independently) spans two splits.
    paths = [r["path"] for r in rows]
    split_of = [r["split"] for r in rows]
    source_of = [r["source"] for r in rows]
    _, links = _independent_links(paths)
    crossing = [(paths[i], paths[j], kind) for i, j, kind in links if split_of[i] != split_of[j]]
    assert crossing == []
    cross_exact = {
        Path(paths[i]).name
        for i, j, kind in links
        if kind == "exact" and source_of[i] != source_of[j]
    }
    assert cross_exact == SHARED_IMAGES

    # The audit: cross-source counts as recomputed here, in the run folder and on the CLI.
    expected = _cross_source_counts(source_of, links)
    assert expected["fracatlas/multiregion"]["exact"] == 3
    assert summary["data"]["leakage"]["cross_source"] == expected
    audit_dir = tmp_path / "audit"
    audit_cfg = compose_entry("audit", [*data, "audit.split=ours"], audit_dir)
    stream = io.StringIO()
    result = audit(audit_cfg, console=Console(file=stream, width=200))
    assert result["cross_source"] == expected
    assert json.loads((audit_dir / "leakage_audit.json").read_text())["cross_source"] == expected
    fa_in_mr = expected["fracatlas/multiregion"]
    sentence = (
        f"{fa_in_mr['images']} of 506 images of fracatlas also appear in multiregion "
        f"({fa_in_mr['exact']} exact, {fa_in_mr['near']} near)"
    )
    assert sentence in stream.getvalue()


# --------------------------------------------------------------------------- leave one out


def _bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, rng, n: int = 2000) -> tuple:
    values = []
    while len(values) < n:
        rows = rng.integers(0, labels.size, labels.size)
        if 0 < labels[rows].sum() < labels.size:
            values.append(roc_auc_score(labels[rows], scores[rows]))
    return np.quantile(values, [0.025, 0.975])


def _bootstrap_difference(a: tuple, b: tuple, rng, n: int = 2000) -> tuple:
    values = []
    while len(values) < n:
        ra, rb = rng.integers(0, a[1].size, a[1].size), rng.integers(0, b[1].size, b[1].size)
        if 0 < a[1][ra].sum() < a[1].size and 0 < b[1][rb].sum() < b[1].size:
            values.append(roc_auc_score(a[1][ra], a[0][ra]) - roc_auc_score(b[1][rb], b[0][rb]))
    return np.quantile(values, [0.025, 0.975])


def _delong_p(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
    """DeLong's test from the O(m n) structural components (DeLong et al. 1988)."""
    from scipy.stats import norm

    def components(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = scores[labels == 1], scores[labels == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(axis=1), psi.mean(axis=0)

    (v10a, v01a), (v10b, v01b) = components(a), components(b)
    m, n = v10a.size, v01a.size
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    z = (v10a.mean() - v10b.mean()) / np.sqrt(var)
    return float(2 * norm.sf(abs(z)))


def _read_scored(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows = list(csv.DictReader(path.open()))
    return (
        np.array([float(r["prob_fractured"]) for r in rows]),
        np.array([r["label"] == "fractured" for r in rows], dtype=int),
        [r["path"] for r in rows],
    )


def _ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    index = np.minimum((p * bins).astype(int), bins)
    total = 0.0
    for b in np.unique(index):
        members = index == b
        total += members.sum() * abs(y[members].mean() - p[members].mean())
    return total / p.size


@pytest.mark.slow
@pytest.mark.timeout(1800)  # four trainings and external scoring: 650 s on a loaded 2-core machine
def test_leave_one_dataset_out_preset(samples_root: Path, real_cache: Path, tmp_path: Path) -> None:
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            "experiment=leave_one_dataset_out",
            "data.sources=[fracatlas,multiregion]",
            f"data.data_dir={samples_root}",
            f"data.cache_dir={real_cache}",
            "model=resnet18,small_cnn_128",
            *SMALL_RUN[1:],
            "~callbacks.review",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = [p.parent for p in tmp_path.glob("multirun_outputs/*/*/results.md")]
    jobs = {}
    for folder in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        summary = json.loads((folder / "metrics.json").read_text())
        assert summary["status"] == "done", summary.get("error")
        held_out = summary["data"]["held_out"]
        # Its copies among the training sources left training; none of its images trained.
        removed = summary["data"]["removed_from_training"]
        assert {Path(r["path"]).name for r in removed} == SHARED_IMAGES
        manifest = list(csv.DictReader((folder / "split_manifest.csv").open()))
        assert {r["split"] for r in manifest if r["source"] == held_out} == {"external"}
        assert {r["split"] for r in manifest if r["source"] != held_out} == {
            "train",
            "val",
            "test",
            "excluded",
        }
        # The threshold of the external block is the training sources' validation one.
        assert summary["external"]["metrics"]["external/threshold"] == pytest.approx(
            summary["val"]["metrics"]["val/youden_threshold"], abs=1e-6
        )
        model = (
            "resnet18"
            if "model=resnet18" in (folder / ".hydra/overrides.yaml").read_text()
            else "small"
        )
        jobs[(model, held_out)] = (folder, summary)
    assert len(jobs) == 4

    report = json.loads((sweep / "cross_dataset.json").read_text())
    rng = np.random.default_rng(7)
    pooled_parts: dict[str, list] = defaultdict(list)
    for row in report["rows"]:
        model = "resnet18" if "resnet18" in row["config"] else "small"
        if row["held_out"] == "pooled":
            continue
        folder, summary = jobs[(model, row["held_out"])]
        internal = _read_scored(folder / "scored" / "test.csv")
        external = _read_scored(folder / "scored" / "external.csv")
        pooled_parts[model].append((internal, external))
        for key, (scores, labels, _) in (
            ("internal_auroc", internal),
            ("external_auroc", external),
        ):
            point, low, high = row[key]
            assert point == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
            ref_low, ref_high = _bootstrap_auroc(scores, labels, rng)
            assert low == pytest.approx(ref_low, abs=0.04) and high == pytest.approx(
                ref_high, abs=0.04
            )
        # The report's figures are those the jobs recorded.
        assert row["external_auroc"][0] == pytest.approx(
            summary["external"]["metrics"]["external/auroc"], abs=2e-3
        )
        assert row["internal_auroc"][0] == pytest.approx(
            summary["test"]["metrics"]["test/auroc"], abs=2e-3
        )
        delta, low, high = row["difference"]
        assert delta == pytest.approx(row["external_auroc"][0] - row["internal_auroc"][0])
        ref_low, ref_high = _bootstrap_difference(external[:2], internal[:2], rng)
        assert low == pytest.approx(ref_low, abs=0.05) and high == pytest.approx(ref_high, abs=0.05)
        p, y = external[0], external[1]
        assert row["external_brier"][0] == pytest.approx(np.mean((p - y) ** 2), abs=1e-6)
        assert row["external_ece"][0] == pytest.approx(_ece(p, y), abs=1e-5)
        assert row["n_external"] == y.size and row["n_internal"] == internal[1].size
    # The pooled rows: every job's internal (external) images as one set.
    pooled = {
        ("resnet18" if "resnet18" in r["config"] else "small"): r
        for r in report["rows"]
        if r["held_out"] == "pooled"
    }
    assert set(pooled) == {"resnet18", "small"}
    for model, parts in pooled_parts.items():
        for key, which in (("internal_auroc", 0), ("external_auroc", 1)):
            scores = np.concatenate([part[which][0] for part in parts])
            labels = np.concatenate([part[which][1] for part in parts])
            assert pooled[model][key][0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    # The paired test: both models on the same held-out source, on the same images.
    assert {p["held_out"] for p in report["paired"]} == {"fracatlas", "multiregion"}
    for pair in report["paired"]:
        a = _read_scored(jobs[("resnet18", pair["held_out"])][0] / "scored" / "external.csv")
        b = _read_scored(jobs[("small", pair["held_out"])][0] / "scored" / "external.csv")
        assert a[2] == b[2], "the same external images, in the same order"
        assert pair["a"]["config"] == "model=resnet18"
        assert pair["n"] == a[1].size
        assert pair["p"] == pytest.approx(_delong_p(a[0], b[0], a[1]), rel=1e-6, abs=1e-12)
        assert pair["delta"][0] == pytest.approx(
            roc_auc_score(a[1], a[0]) - roc_auc_score(b[1], b[0]), abs=1e-9
        )
    # The tables: results.md and the HTML page.
    markdown = (sweep / "results.md").read_text()
    assert "## Leave-one-dataset-out: internal vs external" in markdown
    for source in ("fracatlas", "multiregion", "pooled"):
        assert f"| model=resnet18 | {source} |" in markdown
    assert "Leave-one-dataset-out: models on the same held-out source (paired)" in markdown
    page = (sweep / "report.html").read_text()
    assert "Leave-one-dataset-out: internal vs external" in page and "DeLong p" in page
