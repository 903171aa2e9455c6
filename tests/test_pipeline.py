"""Paper C's two-stage pipeline (``python -m fracture_lit.pipeline``) and ``data.subset_file``.

The CLI run trains a tiny detector on the FracAtlas sample, scores the bone-break sample
with it and trains the subtype model on what passed (``threshold=0.0`` passes everything,
so the tiny run always has images to train on); the filter itself is checked on made-up
scores, and ``subset_file`` on a small generated image folder.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from fracture_lit.data.datasets.image_folder import ImageFolderDataModule
from fracture_lit.tasks.pipeline import (
    PipelineError,
    check_enough_passed,
    pass_counts,
    write_scores,
)
from tests.conftest import run_cli

FRACATLAS, BONE_BREAK = "FracAtlas", "bone-break-classification"
PAPER_C_CLASSES = ["Fracture Dislocation", "Comminuted fracture", "Pathological fracture"]


def _hydra_list(items: list[str]) -> str:
    """A Hydra list of quoted overrides: ``=`` is not allowed in unquoted list items."""
    return "[" + ",".join(json.dumps(item) for item in items) + "]"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- end to end


def test_pipeline_cli_trains_stage2_on_the_images_stage1_passed(
    shared_data: Path, tmp_path: Path
) -> None:
    for folder in (FRACATLAS, BONE_BREAK):
        if not (shared_data / folder).is_dir():
            pytest.skip(f"{shared_data / folder} not present (real dataset sample)")
    common = [
        f"paths.data_dir={shared_data}",  # FracAtlas/ and bone-break-classification/
        f"paths.cache_dir={tmp_path / 'cache'}",  # nothing written next to the samples
        # Small and quick; both presets' recipes know efficientnet_b0 (frozen backbone).
        "model=efficientnet_b0",
        "model.weights=none",
        "model.n_bootstrap=20",
        "data.image_size=64",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false",
        "~callbacks.rich_progress_bar",
        "~callbacks.model_summary",
    ]
    stage1 = ["experiment=fracatlas_inception_detector", "model.freeze=all"]
    result = run_cli(
        [
            "-m",
            "fracture_lit.pipeline",
            f"common={_hydra_list(common)}",
            f"stage1={_hydra_list(stage1)}",
            "threshold=0.0",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    run = runs[0]
    summary = json.loads((run / "pipeline.json").read_text())
    assert summary["status"] == "done", summary.get("error")
    assert summary["stage1"]["status"] == summary["stage2"]["status"] == "done"
    assert summary["threshold"] == {
        "used": 0.0,
        "source": "override",
        "youden_val": pytest.approx(
            json.loads((run / "stage1" / "metrics.json").read_text())["val"]["metrics"][
                "val/youden_threshold"
            ]
        ),
    }
    assert summary["stage2"]["classes"] == PAPER_C_CLASSES
    assert "two_stage_pipeline" in result.stdout and "end to end" in result.stdout

    # Pass counts per class: as the score file says, for exactly the three kept classes.
    scores = _rows(run / "stage1_scores_on_stage2.csv")
    passed = {r["path"] for r in scores if r["passed"] == "true"}
    counts = summary["detector_on_stage2"]
    assert counts["n"] == len(scores) and counts["passed"] == len(passed)
    assert list(counts["per_class"]) == PAPER_C_CLASSES
    total = Counter(r["class"] for r in scores)
    kept = Counter(r["class"] for r in scores if r["passed"] == "true")
    for name, entry in counts["per_class"].items():
        assert (entry["n"], entry["passed"]) == (total[name], kept[name])
    assert all(float(r["p_fractured"]) >= 0.0 for r in scores)

    # Stage 2 saw the passed images and nothing else.
    assert {r["path"] for r in _rows(run / "stage2_subset.csv")} == passed
    config = OmegaConf.load(run / "stage2" / "config.yaml")
    assert Path(config.data.subset_file) == run / "stage2_subset.csv"
    manifest = _rows(run / "stage2" / "split_manifest.csv")
    assert {r["path"] for r in manifest} == passed
    estimate = summary["end_to_end_accuracy_estimate"]
    assert estimate == pytest.approx(counts["pass_rate"] * summary["stage2"]["test_acc"])


# --------------------------------------------------------------------------- the filter


def test_filter_writes_scores_subset_and_counts(tmp_path: Path) -> None:
    paths = ["/d/a1.jpg", "/d/a2.jpg", "/d/b1.jpg", "/d/b2.jpg", "/d/b3.jpg"]
    classes = ["A", "A", "B", "B", "B"]
    scores = [0.9, 0.1, 0.5, float("nan"), 0.3]
    subset, passed = write_scores(tmp_path, paths, classes, scores, threshold=0.3)
    # p >= threshold passes; an undecodable image (NaN) never does.
    assert passed == [True, False, True, False, True]
    assert [r["path"] for r in _rows(subset)] == ["/d/a1.jpg", "/d/b1.jpg", "/d/b3.jpg"]
    counts = pass_counts(["A", "B", "C"], classes, passed)
    assert (counts["n"], counts["passed"]) == (5, 3)
    assert counts["per_class"]["A"] == {"n": 2, "passed": 1, "pass_rate": 0.5}
    assert counts["per_class"]["C"]["n"] == 0  # listed even when empty


def test_too_few_passed_images_stop_with_counts_and_a_threshold_to_try() -> None:
    classes = ["A"] * 4 + ["B"] * 4
    scores = [0.9, 0.8, 0.7, 0.6, 0.9, 0.05, 0.04, 0.03]
    passed = [s >= 0.5 for s in scores]
    counts = pass_counts(["A", "B"], classes, passed)
    with pytest.raises(PipelineError) as error:
        check_enough_passed(counts, classes, scores, threshold=0.5, minimum=3)
    message = str(error.value)
    assert "A: 4/4" in message and "B: 1/4" in message
    assert "threshold=0.04" in message  # keeps the 3 best of B (0.9, 0.05, 0.04)
    check_enough_passed(counts, classes, scores, threshold=0.5, minimum=1)  # enough


# --------------------------------------------------------------------------- subset_file


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """``root/<class>/*.png``: two classes of four small images."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("fractured", "intact"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 255, (16, 16), np.uint8))
    return root


def _module(root: Path, subset: Path) -> ImageFolderDataModule:
    return ImageFolderDataModule(
        root,
        group_duplicates=False,
        cache_dir=root.parent / "cache",
        subset_file=subset,
        val_fraction=0.3,
        test_fraction=0.0,
    )


def test_subset_file_keeps_only_listed_images(image_folder: Path, tmp_path: Path) -> None:
    keep = sorted(image_folder.glob("*/[012].png"))
    subset = tmp_path / "subset.csv"
    with subset.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "p_fractured"])
        writer.writerows([str(p), 1.0] for p in keep)
    samples = _module(image_folder, subset).prepare_split()
    assert sorted(Path(s.path) for s in samples) == keep
    assert all(s.split in ("train", "val") for s in samples)
    # A plain list works too; relative entries are relative to the dataset root.
    listing = tmp_path / "subset.txt"
    listing.write_text("# kept\nfractured/0.png\n\nintact/3.png\n")
    samples = _module(image_folder, listing).prepare_split()
    assert {Path(s.path).relative_to(image_folder).as_posix() for s in samples} == {
        "fractured/0.png",
        "intact/3.png",
    }


def test_subset_file_naming_an_unknown_image_is_an_error(
    image_folder: Path, tmp_path: Path
) -> None:
    subset = tmp_path / "subset.csv"
    subset.write_text(f"path\n{image_folder / 'fractured' / '0.png'}\n/elsewhere/ghost.png\n")
    with pytest.raises(ValueError, match="ghost.png"):
        _module(image_folder, subset).prepare_split()
    no_column = tmp_path / "bad.csv"
    no_column.write_text("file\nx.png\n")
    with pytest.raises(ValueError, match="'path' column"):
        _module(image_folder, no_column).prepare_split()
