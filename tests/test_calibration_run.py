"""Calibration in a real training run: ECE/Brier with intervals, reliability diagrams, and a
temperature fitted on validation, stored in the checkpoint and applied by eval, predict and
export."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fracture_lit.inference.pipeline import InputPipeline
from fracture_lit.models.loading import load_checkpoint
from fracture_lit.stats.calibration import calibration_metrics
from tests.conftest import TINY, compose_entry, compose_train


@pytest.fixture(scope="module")
def calibrated_runs(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Callable:
    """A tiny run with model.calibrate=temperature, review on (no Grad-CAM: not tested),
    once per precision asked for."""
    from fracture_lit.tasks.training import run

    made: dict[str, dict] = {}

    def trained(precision: str) -> dict:
        if precision in made:
            return made[precision]
        out = tmp_path_factory.mktemp(f"calibrated_{precision}")
        cfg = compose_train(
            [
                *TINY,
                f"data.root={synthetic_root}",
                "model.calibrate=temperature",
                "trainer.max_epochs=2",
                "callbacks.review.gradcam=false",
                f"trainer.precision={precision}",
            ],
            out,
        )
        try:
            results = run(cfg)
        finally:
            GlobalHydra.instance().clear()
        assert results["status"] == "done"
        made[precision] = {"results": results, "out": out, "ckpt": Path(results["best_model_path"])}
        return made[precision]

    return trained


@pytest.fixture(scope="module")
def calibrated_run(calibrated_runs: Callable) -> dict:
    return calibrated_runs("32-true")


# Comparisons of the training run's numbers with another path's: trained in fp32 and
# under bf16 autocast (on any CPU), scored in fp32 either way.
both_precisions = pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])


def test_temperature_is_fitted_on_validation_without_raising_its_nll(calibrated_run) -> None:
    val = calibrated_run["results"]["val"]
    fit = val["temperature_fit"]
    assert fit["nll_after"] <= fit["nll_before"]
    assert fit["temperature"] > 0 and fit["temperature"] != 1.0
    assert val["metrics"]["val/temperature"] == fit["temperature"]


def test_temperature_is_stored_in_the_checkpoint(calibrated_run) -> None:
    fit = calibrated_run["results"]["val"]["temperature_fit"]["temperature"]
    raw = torch.load(calibrated_run["ckpt"], map_location="cpu", weights_only=True)
    assert raw["fracture_lit"]["temperature"] == pytest.approx(fit)
    assert float(raw["state_dict"]["temperature"]) == pytest.approx(fit)
    loaded = load_checkpoint(calibrated_run["ckpt"])
    assert loaded.temperature == pytest.approx(fit)
    assert float(loaded.model.temperature) == pytest.approx(fit)


def test_checkpoints_without_a_temperature_load_with_one(calibrated_run, tmp_path) -> None:
    raw = torch.load(calibrated_run["ckpt"], map_location="cpu", weights_only=True)
    del raw["fracture_lit"]["temperature"], raw["state_dict"]["temperature"]
    old = tmp_path / "old.ckpt"
    torch.save(raw, old)
    assert load_checkpoint(old).temperature == 1.0


@both_precisions
def test_every_evaluation_reports_ece_and_brier_with_intervals(calibrated_runs, precision) -> None:
    calibrated_run = calibrated_runs(precision)
    results = calibrated_run["results"]
    for stage in ("val", "test"):
        block = results[stage]
        for key in ("ece", "brier"):
            point, low, high = block["ci95"][key]
            assert point == pytest.approx(block["metrics"][f"{stage}/{key}"])
            assert low <= point <= high
        # The diagram of the probabilities those numbers come from.
        folder = calibrated_run["out"] / "review" / stage
        image = cv2.imread(str(folder / "reliability.png"))
        assert image is not None and image.shape[0] > 300
        with (folder / "predictions.csv").open() as stream:
            rows = list(csv.DictReader(stream))
        probs = torch.tensor([float(r["prob_fractured"]) for r in rows])
        labels = torch.tensor([int(r["label"] == "fractured") for r in rows])
        assert calibration_metrics(probs, labels)["brier"] == pytest.approx(
            block["metrics"][f"{stage}/brier"], abs=1e-5
        )


def test_predict_applies_the_temperature(calibrated_run, synthetic_root: Path, tmp_path) -> None:
    from fracture_lit.tasks.predicting import predict

    images = sorted(synthetic_root.rglob("*.png"))[:6]
    cfg = compose_entry(
        "predict", [f"ckpt_path={calibrated_run['ckpt']}", f"input={images[0].parent}"], tmp_path
    )
    try:
        written = predict(cfg)
    finally:
        GlobalHydra.instance().clear()
    with written.open() as stream:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(stream)}
    loaded = load_checkpoint(calibrated_run["ckpt"])
    pipeline = InputPipeline.from_checkpoint(loaded)
    batch = pipeline.to_tensor([pipeline.read(p)[0] for p in images])
    with torch.inference_mode():
        logits = loaded.model.net(batch).float()
    scaled = torch.softmax(logits / loaded.temperature, 1)[:, 1].numpy()
    unscaled = torch.softmax(logits, 1)[:, 1].numpy()
    got = np.array([float(rows[p.name]["prob_fractured"]) for p in images])
    np.testing.assert_allclose(got, scaled, atol=1e-5)
    assert np.abs(got - unscaled).max() > 1e-4  # the temperature made a difference


@both_precisions
def test_eval_scores_the_calibrated_probabilities(
    calibrated_runs, precision, synthetic_root: Path, tmp_path
):
    from fracture_lit.tasks.evaluating import run as eval_run

    calibrated_run = calibrated_runs(precision)
    cfg = compose_entry(
        "eval",
        [
            f"ckpt_path={calibrated_run['ckpt']}",
            "data=synthetic",
            f"data.root={synthetic_root}",
            "n_bootstrap=50",
            "gradcam.enabled=false",
            *[o for o in TINY if o.startswith("data.")],
        ],
        tmp_path,
    )
    try:
        results = eval_run(cfg)
    finally:
        GlobalHydra.instance().clear()
    test = calibrated_run["results"]["test"]["metrics"]
    assert results["temperature"] == pytest.approx(
        load_checkpoint(calibrated_run["ckpt"]).temperature
    )
    assert results["eval"]["n"] == calibrated_run["results"]["test"]["n"]
    for key in ("ece", "brier"):
        assert results["eval"]["metrics"][f"eval/{key}"] == pytest.approx(
            test[f"test/{key}"], abs=1e-5
        )


def test_export_puts_the_temperature_in_the_graph(calibrated_run, tmp_path) -> None:
    import onnxruntime as ort
    from hydra import compose, initialize_config_dir

    from fracture_lit.config import CONFIG_DIR
    from fracture_lit.tasks.exporting import export
    from fracture_lit.tasks.onnx_model import read_metadata

    output = tmp_path / "model.onnx"
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose("export", [f"ckpt_path={calibrated_run['ckpt']}", f"output={output}"])
        report = export(cfg)
    finally:
        GlobalHydra.instance().clear()
    loaded = load_checkpoint(calibrated_run["ckpt"])
    assert report["status"] == "done" and report["max_abs_diff"] <= report["atol"]
    assert read_metadata(output)["temperature"] == pytest.approx(loaded.temperature)
    shape = (4, loaded.in_chans, loaded.image_size, loaded.image_size)
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    probs, logits = session.run(["probs", "logits"], {"images": images.numpy()})
    want = torch.softmax(torch.from_numpy(logits) / loaded.temperature, 1).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-5)
