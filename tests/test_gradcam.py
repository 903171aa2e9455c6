"""Grad-CAM for any timm backbone: target layer found (CNN stages, ViT tokens), panels written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fracture_lit.data.input_settings import InputSettings
from fracture_lit.data.synthetic.render import render_radiograph
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.inference.pipeline import InputPipeline, predict_probs
from fracture_lit.models.module import FractureClassifier
from fracture_lit.review.artifacts import write_review
from fracture_lit.review.gradcam import CamExplainer, find_target_layer

CLASSES = ["intact", "fractured"]


def _images(folder: Path, n: int = 6, size: int = 96) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = render_radiograph(np.random.default_rng(i), fractured=bool(i % 2), size=size)
        paths.append(folder / f"img_{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def _predictions(model: FractureClassifier, pipeline: InputPipeline, paths: list[Path]):
    images = [pipeline.read(p)[0] for p in paths]
    probs = predict_probs(model, pipeline.to_tensor(images)).numpy()
    return SplitPredictions(
        split="val",
        class_names=CLASSES,
        paths=[str(p) for p in paths],
        labels=np.array([i % 2 for i in range(len(paths))]),
        probs=probs,
        threshold=0.5,
    )


@pytest.mark.parametrize(
    ("backbone", "size", "layer"),
    [
        ("resnet18", 64, "layer4"),
        ("efficientnet_b0", 64, "blocks.6"),
        ("vit_tiny_patch16_224", 224, "blocks.11.norm1"),
    ],
)
def test_overlays_for_cnns_and_vit(tmp_path: Path, backbone: str, size: int, layer: str) -> None:
    torch.manual_seed(0)
    model = FractureClassifier(backbone=backbone, num_classes=2, class_names=CLASSES).eval()
    pipeline = InputPipeline(InputSettings(image_size=size))
    pred = _predictions(model, pipeline, _images(tmp_path / "images"))
    files = write_review(pred, tmp_path / "review", model.net, pipeline, n_fixed=4, n_worst=2)
    fixed = [c for c in files.cams if c.kind == "fixed"]
    assert len(fixed) == 4 and [c.label for c in fixed] == ["intact", "fractured"] * 2
    assert len([c for c in files.cams if c.kind == "worst"]) == min(2, len(pred.misclassified()))
    for cam in files.cams:
        panel = cv2.imread(str(cam.file))
        assert panel is not None and panel.shape[1] > 2 * panel.shape[0] * 0.8  # image | heatmap
    assert (
        CamExplainer(model.net, pipeline.to_tensor([pipeline.read(pred.paths[0])[0]])).layer.name
        == layer
    )
    index = (tmp_path / "review" / "gradcam" / "index.csv").read_text().splitlines()
    assert len(index) == 1 + len(files.cams)


def test_vit_tokens_fold_back_into_the_patch_grid() -> None:
    model = FractureClassifier(backbone="vit_tiny_patch16_224", num_classes=2).eval()
    x = torch.randn(2, 3, 224, 224)
    target = find_target_layer(model.net, x)
    tokens = torch.randn(2, 1 + 14 * 14, 192)
    grid = target.reshape(tokens)
    assert grid.shape == (2, 192, 14, 14)
    # patch token k is at row k // 14, column k % 14 (the class token is dropped)
    assert torch.equal(grid[:, :, 2, 5], tokens[:, 1 + 2 * 14 + 5, :])


def test_cam_localises_what_drives_the_class() -> None:
    """A hand-built CNN whose fracture logit is the mean of one channel that fires on a bright
    square: the map must peak on the square, wherever it is put."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 3, padding=1, bias=False),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[1, :, 1, 1] = 1.0  # channel 1 = brightness
    x = torch.zeros(1, 3, 64, 64)
    x[:, :, 40:52, 8:20] = 1.0
    maps = CamExplainer(net, x, target_layer="1")(x, [1])
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert 38 <= peak[0] <= 53 and 6 <= peak[1] <= 21
    assert maps[0][40:52, 8:20].mean() > 5 * maps[0][:, 32:].mean()


def test_frozen_backbone_gives_the_same_maps() -> None:
    """Frozen parameters need no gradient, but the activations still must get one."""
    x = torch.randn(2, 3, 64, 64)
    maps = {}
    for freeze in ("none", "all"):
        torch.manual_seed(0)
        model = FractureClassifier(backbone="resnet18", num_classes=2, freeze=freeze).eval()
        maps[freeze] = CamExplainer(model.net, x)(x, [1, 0])
        assert all(p.grad is None for p in model.net.parameters())  # nothing left behind
    assert float(np.abs(maps["none"]).max()) > 0
    np.testing.assert_allclose(maps["all"], maps["none"], atol=1e-5)


def test_unknown_target_layer_names_the_choices() -> None:
    model = FractureClassifier(backbone="resnet18", num_classes=2).eval()
    with pytest.raises(ValueError, match=r"target_layer='layer9'.*layer4"):
        CamExplainer(model.net, torch.randn(1, 3, 32, 32), target_layer="layer9")


def test_a_failing_review_never_costs_the_evaluation(tiny_cfg, tmp_path: Path, caplog) -> None:
    from fracture_lit.tasks.training import run

    results = run(tiny_cfg("callbacks.review.target_layer=no_such_layer"))
    assert results["status"] == "done" and "test/auroc" in results["test"]["metrics"]
    assert (tmp_path / "review" / "test" / "roc.png").is_file()  # written before the CAMs
    assert not list((tmp_path / "review").glob("gradcam/*.png"))
    assert "no_such_layer" in caplog.text and "~callbacks.review" in caplog.text
