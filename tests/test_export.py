"""``python -m fracture_lit.export``: a tiny trained checkpoint to ONNX, checked with ORT.

The exported graph must compute what the checkpoint's PyTorch model computes, for batch
sizes it was not traced with, and carry the metadata a deployment needs without the
checkpoint. Bad input must fail with a message that names it, not a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from fracture_lit.config import CONFIG_DIR
from fracture_lit.models.loading import load_checkpoint
from fracture_lit.tasks.exporting import export
from fracture_lit.tasks.onnx_model import ExportError, read_metadata
from tests.conftest import TINY, compose_train, run_cli

ATOL = 1e-4


def _train(root: Path, synthetic_root: Path, *extra: str) -> Path:
    """Train a tiny checkpoint in ``root`` and return its best checkpoint."""
    from fracture_lit.tasks.training import run

    cfg = compose_train([*TINY, f"data.root={synthetic_root}", "test=false", *extra], root)
    try:
        results = run(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert results["status"] == "done"
    return Path(results["best_model_path"])


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One tiny resnet18 checkpoint (32 px, intact/fractured) for the module's tests."""
    return _train(tmp_path_factory.mktemp("export-train"), synthetic_root, "model.in_chans=3")


@pytest.fixture(scope="module")
def cli_export(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export folder of one CLI run, as a user runs it from another directory."""
    tmp = tmp_path_factory.mktemp("export-cli")
    run_dir = tmp / "run"
    result = run_cli(
        ["-m", "fracture_lit.export", f"ckpt_path={tiny_ckpt}", f"hydra.run.dir={run_dir}"],
        cwd=tmp,
        env={"FRACTURE_LIT_ROOT": str(tmp)},
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "max abs diff" in result.stdout + result.stderr
    return run_dir


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(session: ort.InferenceSession, ckpt: Path, batch: int) -> None:
    """ORT's probs/logits on a random batch equal the PyTorch model's to ATOL."""
    loaded = load_checkpoint(ckpt)
    size, chans = loaded.image_size, loaded.in_chans
    images = torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(5))
    probs, logits = session.run(["probs", "logits"], {"images": images.numpy()})
    with torch.inference_mode():
        want = loaded.model(images).float()
    assert probs.shape == logits.shape == (batch, len(loaded.class_names))
    np.testing.assert_allclose(logits, want.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(probs, torch.softmax(want, 1).numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def _compose_export(*overrides: str) -> DictConfig:
    """conf/export.yaml as the CLI composes it (with output= set: no Hydra run folder)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return compose(config_name="export", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def test_cli_export_matches_pytorch_on_new_batch_sizes(cli_export: Path, tiny_ckpt: Path) -> None:
    model_path = cli_export / "model.onnx"
    onnx.checker.check_model(onnx.load(str(model_path)))
    session = _session(model_path)
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["probs", "logits"]
    # The CLI traced 3 rows and checked 2; 1 and 5 prove the batch axis is really dynamic.
    for batch in (3, 1, 5):
        _compare(session, tiny_ckpt, batch)


def test_metadata_lets_a_deployment_work_without_the_checkpoint(
    cli_export: Path, tiny_ckpt: Path
) -> None:
    loaded = load_checkpoint(tiny_ckpt)
    raw = {p.key: p.value for p in onnx.load(str(cli_export / "model.onnx")).metadata_props}
    meta = {key: json.loads(value) for key, value in raw.items()}  # every value is JSON
    assert meta == read_metadata(cli_export / "model.onnx")
    assert meta["class_names"] == ["intact", "fractured"] == loaded.class_names
    assert meta["decision_threshold"] == pytest.approx(loaded.threshold)
    assert 0.0 <= meta["decision_threshold"] <= 1.0
    assert meta["positive_class"] == "fractured"
    assert meta["image_size"] == 32
    assert meta["resize_mode"] == "resize"
    assert meta["normalize"] == "imagenet"
    assert meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert meta["in_chans"] == 3
    assert meta["backbone"] == "resnet18"
    assert Path(meta["source_checkpoint"]) == tiny_ckpt.resolve()

    report = json.loads((cli_export / "export.json").read_text())
    assert report["status"] == "done"
    assert report["format"] == "onnx"
    assert Path(report["path"]) == (cli_export / "model.onnx").resolve()
    assert report["opset"] == 18
    assert 0.0 <= report["max_abs_diff"] <= report["atol"] == ATOL
    assert report["inputs"] == {"images": ["batch", 3, 32, 32]}
    assert report["outputs"] == {"probs": ["batch", 2], "logits": ["batch", 2]}
    assert report["metadata"] == meta


def test_unknown_format_names_it_and_the_supported_ones(tmp_path: Path, tiny_ckpt: Path) -> None:
    result = run_cli(
        ["-m", "fracture_lit.export", f"ckpt_path={tiny_ckpt}", "format=tflite"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "format='tflite' is not supported" in output and "onnx" in output
    assert "Traceback" not in output
    assert not list(tmp_path.rglob("*.onnx"))


def test_a_file_that_is_no_checkpoint_fails_with_a_clear_message(tmp_path: Path) -> None:
    bogus = tmp_path / "x.ckpt"
    bogus.write_bytes(np.random.default_rng(0).bytes(512))
    result = run_cli(
        ["-m", "fracture_lit.export", f"ckpt_path={bogus}"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors and "x.ckpt: not a checkpoint that loads with weights_only=True" in errors[0]
    assert "Traceback" not in output
    assert not list(tmp_path.rglob("*.onnx"))
    reports = list((tmp_path / "outputs" / "export").rglob("export.json"))
    assert len(reports) == 1  # export folders are apart from training runs
    assert json.loads(reports[0].read_text())["status"] == "failed"


def test_custom_greyscale_cnn_exports_with_the_legacy_exporter(
    tmp_path: Path, synthetic_root: Path
) -> None:
    # small_cnn_128 flattens a fixed spatial size into its dense layer: only the batch may
    # vary. One channel means one mean/std value in the metadata.
    ckpt = _train(tmp_path / "train", synthetic_root, "model=small_cnn_128", "model.in_chans=1")
    output = tmp_path / "deploy" / "cnn.onnx"
    report = export(_compose_export(f"ckpt_path={ckpt}", f"output={output}", "dynamo=false"))
    assert report["status"] == "done" and report["exporter"].startswith("TorchScript")
    assert report["max_abs_diff"] <= ATOL
    assert report["inputs"] == {"images": ["batch", 1, 32, 32]}
    meta = read_metadata(output)
    assert meta["backbone"] == "small_cnn_128" and meta["in_chans"] == 1
    assert meta["mean"] == pytest.approx([np.mean([0.485, 0.456, 0.406])])
    assert (output.parent / "export.json").is_file()
    _compare(_session(output), ckpt, 4)

    # A check that cannot pass fails loudly and says so in export.json.
    with pytest.raises(ExportError, match="differ by up to"):
        export(_compose_export(f"ckpt_path={ckpt}", f"output={output}", "atol=-1"))
    assert json.loads((output.parent / "export.json").read_text())["status"] == "failed"
