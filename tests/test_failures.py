"""Bad input fails fast with a message that names the problem and the way out."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import pytest

from fracture_lit.models.factory import (
    PretrainedWeightsUnavailableError,
    UnknownBackboneError,
    create_backbone,
)
from tests.conftest import TINY, compose_train, run_cli


def test_unknown_backbone_lists_close_timm_names() -> None:
    with pytest.raises(UnknownBackboneError) as info:
        create_backbone("resnet_18", num_classes=2)
    message = str(info.value)
    assert "'resnet_18'" in message and "resnet18" in message


def test_pretrained_without_network_fails_fast_with_the_way_out(monkeypatch) -> None:
    # This machine has no route to the hub; force the same on machines that have one.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-cache")
    started = time.monotonic()
    with pytest.raises(PretrainedWeightsUnavailableError) as info:
        create_backbone("resnet18", num_classes=2, pretrained=True)
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert "model.weights=none" in message and "model.weights=/path/to/" in message
    assert "\n" not in message  # one line: what failed and the fix (a local file)


def test_model_without_published_weights_says_so() -> None:
    with pytest.raises(PretrainedWeightsUnavailableError, match="no pretrained weights"):
        create_backbone("xray_cnn_5m", num_classes=2, pretrained=True)


def test_missing_weights_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(PretrainedWeightsUnavailableError, match="nope.pth"):
        create_backbone("resnet18", num_classes=2, pretrained_file=missing)


def test_missing_data_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dataset"
    cfg = compose_train(["data=image_folder", f"data.root={missing}"], tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        datamodule.setup("fit")
    assert str(missing) in str(info.value)


def test_unknown_override_key_is_rejected_by_name(tmp_path: Path) -> None:
    result = run_cli(
        ["-m", "fracture_lit.train", "trainer.max_epoch=1", *TINY],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode != 0
    assert "max_epoch" in result.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))


def test_unknown_model_config_lists_the_available_ones(tmp_path: Path) -> None:
    result = run_cli(
        ["-m", "fracture_lit.train", "model=resnet_18"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode != 0
    assert "resnet_18" in result.stderr and "resnet18" in result.stderr
