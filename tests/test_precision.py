"""One scoring precision (issue 22): whatever precision trains the weights, the training
run's validation and test scores, eval, predict and the ONNX model give one probability per
checkpoint and image (to 1e-5), and the same metrics.

Each cross-path comparison runs under both ``32-true`` and ``bf16-mixed`` explicitly: bf16
autocast runs on any CPU (emulated, only slower, where the CPU has no bf16), so the bf16
branch is exercised whatever machine the suite lands on.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from fracture_lit.errors import ConfigError
from fracture_lit.inference.pipeline import InputPipeline
from fracture_lit.models.loading import load_checkpoint
from fracture_lit.utils.precision import SCORE_PRECISION, choose_precision
from tests.conftest import TINY, compose_entry, compose_train, run_cli

PRECISIONS = ["32-true", "bf16-mixed"]
TOLERANCE = 1e-5
# Metrics of the test block at the validation threshold, and eval's names for them.
AT_THRESHOLD = ("acc", "recall", "specificity", "f1", "balanced_acc")


def _train(out: Path, data: Path, precision: str, *extra: str, accelerator: str = "cpu") -> dict:
    """A tiny run trained (and evaluated) under ``precision``, its review reusing the scores."""
    from fracture_lit.tasks.training import run

    overrides = [
        *[o for o in TINY if not o.startswith("trainer.accelerator=")],
        f"trainer.accelerator={accelerator}",
        f"data.root={data}",
        f"trainer.precision={precision}",
        "trainer.max_epochs=2",
        "callbacks.review.gradcam=false",
        *extra,
    ]
    try:
        results = run(compose_train(overrides, out))
    finally:
        GlobalHydra.instance().clear()
    assert results["status"] == "done"
    return {
        "precision": precision,
        "results": results,
        "out": out,
        "ckpt": Path(results["best_model_path"]),
        "data": data,
    }


@pytest.fixture(scope="module", params=PRECISIONS)
def trained(request: pytest.FixtureRequest, tmp_path_factory, synthetic_root: Path) -> dict:
    return _train(tmp_path_factory.mktemp(f"run-{request.param}"), synthetic_root, request.param)


def _probs(csv_path: Path) -> dict[str, float]:
    """``prob_fractured`` per resolved image path of a predictions CSV."""
    with csv_path.open(newline="") as stream:
        return {
            str(Path(r["path"]).resolve()): float(r["prob_fractured"])
            for r in csv.DictReader(stream)
        }


def _max_delta(want: dict[str, float], got: dict[str, float]) -> float:
    assert set(want) <= set(got), sorted(set(want) - set(got))[:3]
    return max(abs(want[p] - got[p]) for p in want)


def compare_paths(trained: dict, tmp_path: Path, device: str = "auto") -> dict[str, float]:
    """Assert the training run's test metrics and per-image probabilities are eval's,
    predict's and the ONNX model's (to 1e-5); return the largest |delta prob| per path."""
    from fracture_lit.tasks.evaluating import run as eval_run
    from fracture_lit.tasks.exporting import export
    from fracture_lit.tasks.predicting import predict

    ckpt, test = trained["ckpt"], trained["results"]["test"]
    train_probs = _probs(trained["out"] / "review" / "test" / "predictions.csv")
    assert len(train_probs) == test["n"] > 0
    deltas: dict[str, float] = {}
    run = [f"ckpt_path={ckpt}", f"device={device}"]
    try:
        # eval with no data arguments: the run's own data and test split.
        results = eval_run(
            compose_entry(
                "eval", [*run, "n_bootstrap=20", "gradcam.enabled=false"], tmp_path / "eval"
            )
        )
        written = predict(
            compose_entry("predict", [*run, f"input={trained['data']}"], tmp_path / "predict")
        )
        onnx_file = tmp_path / "model.onnx"
        export(compose_entry("export", [f"ckpt_path={ckpt}", f"output={onnx_file}"], tmp_path))
    finally:
        GlobalHydra.instance().clear()
    assert results["data_from"].startswith("the checkpoint's run")
    assert results["precision"] == {"train": trained["precision"], "score": SCORE_PRECISION}
    assert results["eval"]["n"] == test["n"]
    metrics, trained_metrics = results["eval"]["metrics"], test["metrics"]
    for key in AT_THRESHOLD:
        assert metrics[f"eval/{key}"] == pytest.approx(
            trained_metrics[f"test/{key}_at_thr"], abs=1e-6
        )
    for key in ("auroc", "ece", "brier"):
        assert metrics[f"eval/{key}"] == pytest.approx(
            trained_metrics[f"test/{key}"], abs=TOLERANCE
        )
    deltas["eval"] = _max_delta(
        train_probs, _probs(tmp_path / "eval" / "review" / "test" / "predictions.csv")
    )
    deltas["predict"] = _max_delta(train_probs, _probs(written))

    loaded = load_checkpoint(ckpt)
    pipeline = InputPipeline.from_checkpoint(loaded)
    paths = sorted(train_probs)
    batch = pipeline.to_tensor([pipeline.read(p)[0] for p in paths])
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (onnx_probs,) = session.run(["probs"], {"images": batch.numpy()})
    deltas["onnx"] = _max_delta(
        train_probs, dict(zip(paths, onnx_probs[:, 1].tolist(), strict=True))
    )
    print(f"max |delta prob| vs the training run ({trained['precision']}): {deltas}")
    assert max(deltas.values()) <= TOLERANCE, deltas
    return deltas


def test_metrics_json_and_checkpoint_record_both_precisions(trained: dict) -> None:
    written = json.loads((trained["out"] / "metrics.json").read_text())
    assert written["precision"] == {
        "train": trained["precision"],
        "score": SCORE_PRECISION,
        "chosen_by": f"trainer.precision={trained['precision']} as configured",
    }
    raw = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)
    assert raw["fracture_lit"]["precision"] == {
        "train": trained["precision"],
        "score": SCORE_PRECISION,
    }
    assert load_checkpoint(trained["ckpt"]).trained_precision == trained["precision"]


def test_training_scores_equal_eval_predict_and_onnx(trained: dict, tmp_path: Path) -> None:
    """The Done-when test of issue 22: the training run's test metrics and per-image
    probabilities are eval's, predict's and the ONNX model's for the same checkpoint."""
    compare_paths(trained, tmp_path)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_cuda_training_scores_equal_eval_predict_and_onnx(precision, synthetic_root, tmp_path):
    """The same on a CUDA GPU: trained (bf16 autocast or fp32) and evaluated on the GPU,
    TF32 off while scoring; predict and ONNX (CPU) agree with it."""
    trained = _train(tmp_path / "run", synthetic_root, precision, accelerator="gpu")
    compare_paths(trained, tmp_path / "paths", device="cuda")


def test_eval_of_a_checkpoint_outside_its_run_asks_for_the_data(trained, tmp_path) -> None:
    from fracture_lit.tasks.evaluating import evaluate

    loose = tmp_path / "copied.ckpt"
    loose.write_bytes(trained["ckpt"].read_bytes())
    cfg = compose_entry("eval", [f"ckpt_path={loose}", "gradcam.enabled=false"], tmp_path / "e")
    try:
        with pytest.raises(ConfigError, match=r"no data was given .* data=<dataset> data.root="):
            evaluate(cfg)
    finally:
        GlobalHydra.instance().clear()


def test_half_precision_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    from fracture_lit.validation import validate_train

    cfg = compose_train([*TINY, "trainer.precision=bf16-true"], tmp_path)
    with pytest.raises(ConfigError, match=r"^trainer.precision=bf16-true: .* Use bf16-mixed"):
        validate_train(cfg)
    GlobalHydra.instance().clear()


def test_fp32_scoring_turns_autocast_off_and_restores_the_settings() -> None:
    from fracture_lit.utils.precision import fp32_scoring

    a, b = torch.randn(8, 8), torch.randn(8, 8)
    before = torch.get_float32_matmul_precision()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        with fp32_scoring("cpu"):
            assert (a @ b).dtype == torch.float32
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cudnn.allow_tf32
        assert (a @ b).dtype == torch.bfloat16
    assert torch.get_float32_matmul_precision() == before


def _fake_split(labels: list[int]) -> object:
    class Sample:
        def __init__(self, i: int, label: int) -> None:
            self.path, self.label, self.split, self.meta = f"img{i}.png", label, "val", {"i": i}

    class Data:
        samples = [Sample(i, label) for i, label in enumerate(labels)]

    return Data()


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_kept_scores_gathered_rank_after_rank_come_back_in_dataset_order(world_size) -> None:
    from fracture_lit.evaluation.predictions import SplitPredictions
    from fracture_lit.inference.split import with_split_images

    labels = [0, 0, 1, 1, 1, 0, 1]
    probs = np.linspace(0.05, 0.95, len(labels))  # image i's probability
    # UnrepeatedDistributedSampler: rank r scores images r, r + W, ...; gathered by rank.
    gathered = [i for rank in range(world_size) for i in range(rank, len(labels), world_size)]
    kept = SplitPredictions.from_scores(
        "val", ["intact", "fractured"], probs[gathered], np.array(labels)[gathered], 0.4
    )
    pred = with_split_images(kept, _fake_split(labels), "val", world_size)
    np.testing.assert_array_equal(pred.probs[:, 1], probs)
    assert pred.paths == [f"img{i}.png" for i in range(len(labels))]
    assert [m["i"] for m in pred.meta] == list(range(len(labels))) and pred.threshold == 0.4
    with pytest.raises(ValueError, match="kept scores for the 8 val images"):
        with_split_images(kept, _fake_split([*labels, 1]), "val", world_size)
    if world_size > 1:  # read in the wrong order, the labels give it away
        with pytest.raises(ValueError, match="not the val images'"):
            with_split_images(kept, _fake_split(labels), "val", 1)


AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})


@pytest.mark.parametrize(
    ("flags", "train", "why"),
    [
        (AVX2, "32-true", "neither amx_bf16 nor avx512_bf16"),
        (AVX2 | {"avx512f", "avx512_bf16"}, "bf16-mixed", "avx512_bf16"),
        (AVX2 | {"avx512_bf16", "amx_bf16", "amx_tile"}, "bf16-mixed", "amx_bf16 and avx512_bf16"),
    ],
    ids=["avx2", "zen4", "sapphire-rapids"],
)
def test_auto_says_what_it_chose_and_why(flags, train, why, caplog) -> None:
    """Flags injected: the choice ``auto`` makes on each kind of CPU, and the line it logs."""
    from fracture_lit.tasks.training import training_precision

    choice = choose_precision("auto", accelerator="cpu", flags=flags)
    assert (choice.train, choice.score) == (train, SCORE_PRECISION) and why in choice.chosen_by

    class Trainer:  # what training_precision reads of the Trainer that runs
        precision, is_global_zero = train, True

    cfg = OmegaConf.create({"trainer": {"precision": train, "accelerator": "cpu"}})
    with caplog.at_level(logging.INFO, logger="fracture_lit.train"):
        record = training_precision(cfg, Trainer())
    assert record == {
        "train": train,
        "score": SCORE_PRECISION,
        "chosen_by": f"trainer.precision={train} as configured",
    }
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Precision:")]
    assert f"training in {train}" in line and "scored in fp32" in line


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_review_puts_the_gathered_scores_back_in_image_order(tmp_path, synthetic_root):
    """2-process DDP (gloo) under bf16 autocast: the review writes the evaluation's own
    scores, gathered rank after rank, in image order; single-process eval agrees to 1e-5."""
    from fracture_lit.tasks.evaluating import run as eval_run

    run_dir = tmp_path / "ddp"
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            f"data.root={synthetic_root}",
            *TINY,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=bf16-mixed",
            "callbacks.review.gradcam=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = (run_dir / "train.log").read_text()
    for split in ("val", "test"):
        assert f"Review of {split}: the evaluation's" in log and "from 2 rank(s)" in log
    ckpt = json.loads((run_dir / "metrics.json").read_text())["best_model_path"]
    for split in ("val", "test"):
        out = tmp_path / f"eval-{split}"
        try:
            eval_run(
                compose_entry(
                    "eval",
                    [
                        f"ckpt_path={ckpt}",
                        f"split={split}",
                        "n_bootstrap=0",
                        "gradcam.enabled=false",
                    ],
                    out,
                )
            )
        finally:
            GlobalHydra.instance().clear()
        trained = _probs(run_dir / "review" / split / "predictions.csv")
        evaluated = _probs(out / "review" / split / "predictions.csv")
        assert list(trained) == list(evaluated)  # the same images, in the same order
        assert _max_delta(trained, evaluated) <= TOLERANCE
