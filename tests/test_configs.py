"""Every config file composes, and every model config builds and takes a training step."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from fracture_lit.config import CONFIG_DIR
from tests.conftest import compose_train

GROUPS = [
    "data",
    "model",
    "optimizer",
    "scheduler",
    "callbacks",
    "logger",
    "trainer",
    "debug",
    "experiment",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def _all_choices() -> list[tuple[str, str]]:
    return [(g, o) for g in GROUPS if (CONFIG_DIR / g).is_dir() for o in _options(g)]


def test_config_dir_is_the_top_level_conf() -> None:
    assert Path(__file__).resolve().parents[1] / "conf" == CONFIG_DIR
    assert (CONFIG_DIR / "train.yaml").is_file()


@pytest.mark.parametrize(("group", "option"), _all_choices(), ids=lambda v: str(v))
def test_every_config_file_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    cfg = compose_train([f"{group}={option}"], tmp_path)
    # Resolving everything catches broken interpolations, not just YAML syntax.
    resolved = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    assert resolved["model"]["_target_"].endswith("FractureClassifier")
    assert resolved["data"]["_target_"].startswith("fracture_lit.data.")
    if group not in ("experiment", "debug"):
        assert HydraConfig.get().runtime.choices[group] == option


MODEL_INPUT = {"inception_v3": 96, "basic_cnn_52m": 64, "small_cnn_128": 64}


@pytest.mark.parametrize("option", _options("model"))
def test_every_model_config_takes_one_optimisation_step(option: str, tmp_path: Path) -> None:
    size = MODEL_INPUT.get(option, 64)
    cfg = compose_train(
        [f"model={option}", "model.weights=none", f"data.image_size={size}"], tmp_path
    )
    with open_dict(cfg):
        cfg.model.compile = False
    model = hydra.utils.instantiate(cfg.model, num_classes=2, class_names=["intact", "fractured"])
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()
    x = torch.randn(4, cfg.model.in_chans, size, size)
    y = torch.tensor([0, 1, 0, 1])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    loss = model.loss(model(x), y)
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert model(x).shape == (4, 2)
