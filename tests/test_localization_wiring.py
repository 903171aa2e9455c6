"""Localization everywhere results go: a tiny training run on the FracAtlas sample reports
it (metrics.json, console, HTML report, W&B offline), eval with ``data.regions=`` and
predict with ``regions=`` score the same way, the settings are checked before anything
runs (the synthetic default computes and shows nothing: tests/test_train.py)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from fracture_lit.errors import ConfigError, UserError
from fracture_lit.layout import ReviewLayout, RunLayout
from fracture_lit.localization.files import load_per_image
from fracture_lit.localization.regions import default_regions_file
from fracture_lit.results.console import print_summary
from fracture_lit.tasks import evaluating
from fracture_lit.tasks.predicting import predict
from fracture_lit.tasks.training import run as train_run
from fracture_lit.validation import validate_train
from fracture_lit.validation.localization import validate_localization
from tests.conftest import REAL_SMALL, compose_entry
from tests.localization_data import fracatlas_with_regions, single_thread
from tests.wandb_records import read_offline_run

SPLITS = ("val", "test")
TINY_REAL = [
    *REAL_SMALL,
    "data.image_size=64",
    "data.batch_size=32",
    "+trainer.limit_train_batches=2",
    "callbacks.review.gradcam=false",  # the review's own panels: not under test here
    "localization.n_bootstrap=200",
    "localization.n_panels=2",
]


# ----------------------------------------------------------------- settings, checked early
@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("data.regions=/no/such/regions.json", UserError, "data.regions=/no/such/regions.json"),
        ("localization.threshold=1.5", ConfigError, "localization.threshold"),
        ("localization.tolerance_px=-1", ConfigError, "localization.tolerance_px"),
        ("localization.enabled=maybe", ConfigError, "localization.enabled"),
        ("localization.enabled=true", ConfigError, "Set data.regions=<COCO JSON file>"),
        ("localization.n_panels=-2", ConfigError, "localization.n_panels"),
    ],
)
def test_bad_settings_are_one_clear_error(tiny_cfg, override, error, message) -> None:
    with pytest.raises(error, match=message.replace(".", r"\.").replace("[", r"\[")):
        validate_train(tiny_cfg(override))


def test_a_malformed_regions_file_fails_before_training(tiny_cfg, tmp_path: Path) -> None:
    bad = tmp_path / "regions.json"
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(UserError, match="lacks an id, file_name, width or height"):
        validate_train(tiny_cfg(f"data.regions={bad}"))


def test_predict_names_its_own_key(tmp_path: Path) -> None:
    cfg = compose_entry(
        "predict", ["ckpt_path=x.ckpt", f"input={tmp_path}", "regions=/no/regions.json"], tmp_path
    )
    with pytest.raises(UserError, match=r"regions=/no/regions\.json: no such file"):
        validate_localization(cfg, regions_key="regions", root_key=None)


# ----------------------------------------------------------------- the FracAtlas sample
@pytest.fixture(scope="module")
def fracatlas(shared_data: Path) -> Path:
    return fracatlas_with_regions(shared_data)


@pytest.fixture(scope="module")
def trained(fracatlas: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One tiny run (two training batches, 64 px) with the W&B logger offline."""
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    overrides = ["data=fracatlas", f"data.root={fracatlas}", f"data.cache_dir={cache}"]
    with pytest.MonkeyPatch.context() as env, single_thread():
        for key, value in {"WANDB_API_KEY": "", "NETRC": str(out / "no-netrc")}.items():
            env.setenv(key, value)
        env.delenv("WANDB_MODE", raising=False)
        cfg = compose_entry("train", [*overrides, *TINY_REAL, "logger=wandb"], out)
        results = train_run(cfg)
    assert results["status"] == "done"
    yield {"results": results, "folder": out, "cache": cache, "overrides": overrides}


def _fractured_with_regions(folder: Path, split: str, coco_file: Path) -> set[str]:
    """From the run's split manifest and the COCO file alone: what must have been scored."""
    annotated = {im["file_name"] for im in json.loads(coco_file.read_text())["images"]}
    with RunLayout(folder).split_manifest.open() as stream:
        rows = list(csv.DictReader(stream))
    return {
        Path(r["path"]).name
        for r in rows
        if r["split"] == split and r["class"] == "fractured" and Path(r["path"]).name in annotated
    }


def test_training_reports_the_block_in_metrics_json(trained: dict, fracatlas: Path) -> None:
    folder = trained["folder"]
    summary = json.loads(RunLayout(folder).metrics.read_text())
    assert set(summary["localization"]) == set(SPLITS)
    for split in SPLITS:
        block = summary["localization"][split]
        expected = _fractured_with_regions(folder, split, default_regions_file(fracatlas))
        saved = load_per_image(ReviewLayout(folder / "review").localization(split), "pointing")
        assert {Path(p).name for p in saved} == expected and block["n_images"] == len(expected)
        assert block["target_layer"] == "layer4" and block["image_size"] == 64
        assert block["settings"]["tolerance_px"] == 15.0 and block["settings"]["threshold"] == 0.15
        assert block["regions_file"] == str(default_regions_file(fracatlas))
        assert block["decision_threshold"] == pytest.approx(
            summary["val"]["metrics"]["val/youden_threshold"]
        )
        everything = block["groups"]["all"]
        for method in ("gradcam", "random", "centre"):  # the model and both baselines
            for score in ("pointing", "energy", "iou"):
                entry = everything[method][score]
                assert entry["low"] <= entry["value"] <= entry["high"], (method, score)
        gradcam_pointing = sum(saved.values()) / len(saved)
        assert everything["gradcam"]["pointing"]["value"] == pytest.approx(gradcam_pointing)
        assert 1 <= len(block["panels"]) <= 4
        for panel in block["panels"]:
            assert (folder / "review" / panel["file"]).is_file()


def test_training_shows_it_on_the_console_and_in_the_report(trained: dict) -> None:
    stream = io.StringIO()
    print_summary(trained["results"], "run", Console(file=stream, width=100))
    text = stream.getvalue()
    assert text.index("Localization, validation") < text.index("Localization, test")
    assert "random heatmap" in text and "centre prior" in text
    page = RunLayout(trained["folder"]).report.read_text()
    assert "Localization: where does the model look?" in page
    for row in ("Grad-CAM", "random heatmap", "centre prior"):
        assert page.count(f"<td>{row}</td>") == 2  # validation and test
    assert "Best hits" in page and "outlined in green" in page


def test_training_logs_it_to_wandb_offline(trained: dict) -> None:
    [run_dir] = trained["folder"].glob("**/wandb/offline-run-*")
    keys = read_offline_run(run_dir).history_keys
    for split in SPLITS:
        assert f"{split}/localization/_type" in keys  # the table
        assert f"{split}/localization_panels/_type" in keys  # the outlined panels


def test_eval_with_regions_writes_the_same_block(
    trained: dict, fracatlas: Path, tmp_path: Path
) -> None:
    """An external annotated set is scored like training's test split: same images, same
    checkpoint and threshold, so the same numbers."""
    coco = default_regions_file(fracatlas)
    out = tmp_path / "eval"
    cfg = compose_entry(
        "eval",
        [
            f"ckpt_path={trained['results']['best_model_path']}",
            *trained["overrides"],
            f"data.regions={coco}",
            "n_bootstrap=50",
            "gradcam.enabled=false",
            "localization.n_bootstrap=200",
            "localization.n_panels=1",
        ],
        out,
    )
    with single_thread():
        results = evaluating.run(cfg)
    block = json.loads(RunLayout(out).metrics.read_text())["localization"]["test"]
    trained_block = trained["results"]["localization"]["test"]
    assert block["n_images"] == trained_block["n_images"]
    assert block["groups"] == trained_block["groups"]
    assert results["localization"]["test"]["regions_file"] == str(coco)
    assert ReviewLayout(out / "review").localization("test").is_file()
    assert "Localization, test" in RunLayout(out).report.read_text()


def test_predict_with_regions_scores_the_annotated_inputs(
    trained: dict, fracatlas: Path, tmp_path: Path
) -> None:
    coco = default_regions_file(fracatlas)
    annotated = sorted(im["file_name"] for im in json.loads(coco.read_text())["images"])[:3]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in annotated:
        shutil.copy(fracatlas / "images" / "Fractured" / name, inputs / name)
    plain = sorted((fracatlas / "images" / "Non_fractured").iterdir())[0]
    shutil.copy(plain, inputs / plain.name)
    out = tmp_path / "predict"
    cfg = compose_entry(
        "predict",
        [
            f"ckpt_path={trained['results']['best_model_path']}",
            f"input={inputs}",
            f"regions={coco}",
            "localization.n_bootstrap=0",
        ],
        out,
    )
    with single_thread():
        csv_path = predict(cfg)
    with csv_path.open() as stream:
        assert len(list(csv.DictReader(stream))) == 4  # every input is still predicted
    review = ReviewLayout(out / "review")
    block = json.loads(review.localization_block("predict").read_text())
    assert block["n_images"] == 3 and block["split"] == "predict"
    assert {Path(p).name for p in load_per_image(review.localization("predict"), "iou")} == set(
        annotated
    )
    assert block["groups"]["all"]["centre"]["pointing"]["value"] is not None
