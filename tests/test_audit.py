"""``python -m fracture_lit.audit``: the leakage audit as a user runs it, on real data.

The multi-region sample is the case the audit exists for: its given test split shares 19
byte-identical files with train, and many more rotated / renamed copies that only the
perceptual hash finds. The CLI must report both in the JSON it writes to the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from fracture_lit.config import CONFIG_DIR
from tests.conftest import run_cli

MULTIREGION = "bone-fracture-multi-region"


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hash / decode cache shared by the real-data tests of one session (hashing is the
    slow part of an audit; the files never change)."""
    path = tmp_path_factory.getbasetemp() / "real-data-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def multiregion_root(shared_data: Path) -> Path:
    root = shared_data / MULTIREGION
    if not root.is_dir():
        pytest.skip(f"{root} not present (real dataset sample)")
    return root


@pytest.fixture(scope="module")
def cli_audit(
    multiregion_root: Path, real_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path, str]:
    """One CLI run of the audit on the given multi-region split: (JSON, run folder, stdout)."""
    run_root = tmp_path_factory.mktemp("audit-cli")
    result = run_cli(
        [
            "-m",
            "fracture_lit.audit",
            "data=multiregion",
            f"data.root={multiregion_root}",
            f"data.cache_dir={real_cache}",
        ],
        cwd=run_root,
        env={"FRACTURE_LIT_ROOT": str(run_root)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = list((run_root / "outputs").glob("*/*/leakage_audit.json"))
    assert len(reports) == 1, f"expected one report under {run_root / 'outputs'}: {reports}"
    return json.loads(reports[0].read_text()), reports[0].parent, result.stdout


def _crossing_files(report: dict, kind: str, a: str, b: str) -> list[list[dict]]:
    """Groups of ``kind`` in the JSON with files on both sides of ``a``/``b``."""
    out = []
    for group in report["groups"][kind]:
        splits = {f["split"] for f in group["files"]}
        if a in splits and b in splits:
            out.append(group["files"])
    return out


def test_cli_finds_the_19_exact_train_test_copies(cli_audit: tuple[dict, Path, str]) -> None:
    report, run_dir, stdout = cli_audit
    assert report["dataset"] == "multiregion"
    assert report["split_mode"] == "given"
    # The dataset's own split, not the val we would carve from its train part.
    assert report["split_counts"] == {"train": 800, "test": 200}
    assert report["crossing"]["exact"]["train/test"] == 19
    exact = _crossing_files(report, "exact", "train", "test")
    assert len(exact) == 19
    for files in exact:  # byte-identical files, so necessarily the same label
        assert len({f["label"] for f in files}) == 1
    # Near-duplicates (rotated / re-encoded copies) leak beyond the byte-identical ones.
    assert report["crossing"]["near"]["train/test"] > 0
    twins = report["twins"]["test"]
    assert twins["n"] == 200 and twins["exact"] >= 19
    assert twins["visual"] > twins["exact"]
    assert twins["share_visual"] > twins["share_exact"] > 0
    # The run folder holds the table too, and the console says where the report is.
    text = (run_dir / "leakage_audit.txt").read_text()
    assert "train/test" in text and "test (200)" in text
    assert str(run_dir / "leakage_audit.json") in stdout
    assert "Duplicate groups" in stdout and "twin in train" in stdout


def _compose_audit(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose conf/audit.yaml like the CLI would, with the run folder at ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="audit", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def test_our_split_has_no_crossing_groups(
    cli_audit: tuple[dict, Path, str], multiregion_root: Path, real_cache: Path, tmp_path: Path
) -> None:
    """audit.split=ours audits the group-aware split a run would make instead."""
    from fracture_lit.tasks.auditing import audit

    cfg = _compose_audit(
        [
            "data=multiregion",
            f"data.root={multiregion_root}",
            f"data.cache_dir={real_cache}",  # hashed by the CLI run above
            "audit.split=ours",
        ],
        tmp_path,
    )
    try:
        result = audit(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert result["split_mode"] == "ours"
    assert set(result["split_counts"]) == {"train", "val", "test"}
    for kind in ("exact", "near", "name"):
        assert result["crossing"][kind]["train/test"] == 0
        assert result["crossing"][kind]["train/val"] == 0
    assert result["twins"]["test"]["any"] == 0
    on_disk = json.loads((tmp_path / "leakage_audit.json").read_text())
    assert on_disk["crossing"] == result["crossing"]


def test_unknown_split_mode_is_rejected(tmp_path: Path) -> None:
    from fracture_lit.tasks.auditing import audit

    cfg = _compose_audit(["audit.split=theirs", f"data.root={tmp_path}"], tmp_path)
    try:
        with pytest.raises(ValueError, match="audit.split='theirs'; use one of given, ours"):
            audit(cfg)
    finally:
        GlobalHydra.instance().clear()
