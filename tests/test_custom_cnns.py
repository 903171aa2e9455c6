"""Tests for the custom paper CNNs registered as timm models (fracture_lit.models.custom_cnns).

They check the contract the rest of the framework relies on: timm creation and listing, the
parameter budgets the papers report, forward shapes for grayscale/RGB input and binary/multi-class
heads, the timm head/feature API and a working training step.
"""

from __future__ import annotations

import pytest
import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn

from fracture_lit.models import custom_cnns

NAMES = ["xray_cnn_5m", "basic_cnn_52m", "small_cnn_128"]
INPUT_HW = {"xray_cnn_5m": (224, 224), "basic_cnn_52m": (224, 224), "small_cnn_128": (128, 128)}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _create(name: str, **kwargs) -> nn.Module:
    return timm.create_model(name, pretrained=False, **kwargs)


def test_registered_and_listed() -> None:
    assert set(timm.list_models("*_cnn_*")) >= set(NAMES)
    assert set(timm.list_models(module="custom_cnns")) == set(NAMES)
    for name in NAMES:
        assert timm.is_model(name)
        assert name in custom_cnns.__all__


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("xray_cnn_5m", 5.5e6, 5.7e6),
        ("basic_cnn_52m", 51.0e6, 52.2e6),
        # Paper E gives no count; ours (32/64/128 filters, dense 128, 128x128) is 4,288,386.
        ("small_cnn_128", 4.2e6, 4.4e6),
    ],
)
def test_parameter_counts(name: str, low: float, high: float) -> None:
    model = _create(name, num_classes=2, in_chans=3)
    n = _n_params(model)
    assert low <= n <= high, f"{name}: {n:,} parameters"


def test_xray_cnn_count_is_input_size_independent() -> None:
    a = _create("xray_cnn_5m", num_classes=2)
    b = _create("xray_cnn_5m", num_classes=2, img_size=320)
    assert _n_params(a) == _n_params(b)
    b.eval()
    assert b(torch.rand(1, 3, 320, 320)).shape == (1, 2)


def test_flatten_models_follow_img_size() -> None:
    model = _create("basic_cnn_52m", num_classes=2, img_size=128)
    assert _n_params(model) < 20e6  # 128*16*16 -> 512 instead of 128*28*28 -> 512
    assert resolve_model_data_config(model)["input_size"] == (3, 128, 128)
    model.eval()
    assert model(torch.rand(1, 3, 128, 128)).shape == (1, 2)
    with pytest.raises(ValueError, match="img_size"):
        model(torch.rand(1, 3, 224, 224))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_forward_shapes(name: str, in_chans: int, num_classes: int) -> None:
    model = _create(name, num_classes=num_classes, in_chans=in_chans, drop_rate=0.1).eval()
    x = torch.rand(2, in_chans, *INPUT_HW[name])
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
        pre = model.forward_head(feats, pre_logits=True)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    assert feats.shape[:2] == (2, model.num_features)
    assert pre.shape == (2, model.head_hidden_size)
    assert model.num_classes == num_classes
    assert model.drop_rate == pytest.approx(0.1)
    assert model.head_drop.p == pytest.approx(0.1)


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_raises_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match=r"no pretrained weights.*model\.weights=none"):
        timm.create_model(name, pretrained=True, num_classes=2)


@pytest.mark.parametrize("name", NAMES)
def test_timm_kwargs_accepted(name: str) -> None:
    # Kwargs timm or timm-style configs pass along must not break construction.
    model = timm.create_model(
        name,
        pretrained=False,
        num_classes=2,
        pretrained_cfg=None,
        pretrained_cfg_overlay=dict(crop_pct=0.95),
        drop_path_rate=0.1,
        cache_dir=None,
    )
    assert model.pretrained_cfg["crop_pct"] == pytest.approx(0.95)
    with pytest.warns(UserWarning, match="not_a_real_kwarg"):
        timm.create_model(name, num_classes=2, not_a_real_kwarg=1)


@pytest.mark.parametrize("name", NAMES)
def test_features_only(name: str) -> None:
    model = timm.create_model(name, features_only=True, in_chans=1).eval()
    x = torch.rand(1, 1, *INPUT_HW[name])
    with torch.no_grad():
        feats = model(x)
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    assert [INPUT_HW[name][0] // f.shape[-1] for f in feats] == model.feature_info.reduction()


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier(name: str) -> None:
    model = _create(name, num_classes=2).eval()
    x = torch.rand(1, 3, *INPUT_HW[name])
    model.reset_classifier(5)
    assert model.num_classes == 5
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().out_features == 5
    assert model(x).shape == (1, 5)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity)
    assert model(x).shape == (1, model.head_hidden_size)
    # The classifier named in the cfg is the one reset_classifier swaps.
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is model.get_classifier()


def test_reset_classifier_global_pool() -> None:
    pooled = _create("xray_cnn_5m", num_classes=2)
    pooled.reset_classifier(3, global_pool="max")
    assert pooled.eval()(torch.rand(1, 3, 96, 96)).shape == (1, 3)
    flat = _create("basic_cnn_52m", num_classes=2)
    with pytest.raises(ValueError, match="flatten"):
        flat.reset_classifier(3, global_pool="avg")


@pytest.mark.parametrize("name", NAMES)
def test_feature_info_and_cfg_modules_exist(name: str) -> None:
    model = _create(name, in_chans=1)
    info = model.feature_info
    assert [d["module"] for d in info] == [f"stages.{i}" for i in range(len(info))]
    for d in info:
        assert set(d) >= {"num_chs", "reduction", "module"}
        assert isinstance(model.get_submodule(d["module"]), nn.Module)
    assert info[-1]["num_chs"] == model.num_features
    first = model.get_submodule(model.pretrained_cfg["first_conv"])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 1
    assert model.default_cfg is model.pretrained_cfg


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_resolve_model_data_config(name: str, in_chans: int) -> None:
    model = _create(name, in_chans=in_chans)
    cfg = resolve_model_data_config(model)
    assert cfg["input_size"] == (in_chans, *INPUT_HW[name])
    # Trained from scratch on [0, 1]-scaled images: normalisation is the identity.
    assert cfg["mean"] == (0.0,) * in_chans
    assert cfg["std"] == (1.0,) * in_chans


@pytest.mark.parametrize("name", NAMES)
def test_one_optimisation_step(name: str) -> None:
    torch.manual_seed(0)
    model = _create(name, num_classes=2, in_chans=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(4, 1, *INPUT_HW[name])
    y = torch.tensor([0, 1, 0, 1])
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loss = nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = model.state_dict()
    for key in (model.pretrained_cfg["first_conv"] + ".weight", "fc.weight"):
        assert not torch.equal(before[key], after[key]), key
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
