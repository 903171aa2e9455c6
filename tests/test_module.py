"""FractureClassifier on binary and multiclass tasks, freezing and class weights."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fracture_lit.models.module import FractureClassifier


def _separable(num_classes: int, n: int = 96, size: int = 32) -> TensorDataset:
    """Class k brightens a band of rows: learnable in a few steps."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % num_classes
    x = torch.randn(n, 1, size, size, generator=g) * 0.3
    band = size // num_classes
    for k in range(num_classes):
        x[y == k, :, k * band : (k + 1) * band] += 2.0
    return TensorDataset(x, y)


def _fit(num_classes: int, tmp_path, **kwargs) -> tuple[FractureClassifier, L.Trainer]:
    model = FractureClassifier(
        "resnet10t",
        num_classes=num_classes,
        in_chans=1,
        optimizer=partial(torch.optim.Adam, lr=3e-3),
        n_bootstrap=20,
        **kwargs,
    )
    data = _separable(num_classes)
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    loader = DataLoader(data, batch_size=16, shuffle=True)
    trainer.fit(model, loader, DataLoader(data, batch_size=32))
    trainer.test(model, DataLoader(data, batch_size=32), verbose=False)
    return model, trainer


def test_binary_learns_and_reports_youden(tmp_path) -> None:
    model, _ = _fit(2, tmp_path)
    val = model.epoch_summary["val"]["metrics"]
    assert val["val/auroc"] > 0.95
    assert 0.0 <= val["val/youden_threshold"] <= 1.0
    assert float(model.decision_threshold) == pytest.approx(val["val/youden_threshold"])
    test = model.epoch_summary["test"]
    assert test["metrics"]["test/threshold"] == pytest.approx(val["val/youden_threshold"])
    assert sum(map(sum, test["confusion_matrix"])) == 96
    assert set(test["ci95"]) >= {"auroc", "acc", "recall", "specificity", "kappa"}


def test_multiclass_metrics_and_confusion(tmp_path) -> None:
    model, _ = _fit(3, tmp_path)
    test = model.epoch_summary["test"]
    assert len(test["confusion_matrix"]) == 3
    assert sum(map(sum, test["confusion_matrix"])) == 96
    assert test["metrics"]["test/acc"] > 0.8
    # No binary threshold for multiclass tasks.
    assert "test/threshold" not in test["metrics"]


def test_freeze_all_trains_only_the_head() -> None:
    model = FractureClassifier("resnet18", num_classes=2, freeze="all", train_bn=False)
    trainable = {n for n, p in model.net.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_freeze_up_to_a_named_stage_keeps_bn_trainable() -> None:
    model = FractureClassifier("resnet18", num_classes=2, freeze="layer3", train_bn=True)
    params = dict(model.net.named_parameters())
    assert not params["conv1.weight"].requires_grad
    assert not params["layer2.0.conv1.weight"].requires_grad
    assert params["bn1.weight"].requires_grad  # batch norm of the frozen part
    assert params["layer3.0.conv1.weight"].requires_grad
    assert params["fc.weight"].requires_grad


def test_freeze_unknown_module_names_the_choices() -> None:
    with pytest.raises(ValueError, match="layer9.*layer1"):
        FractureClassifier("resnet18", num_classes=2, freeze="layer9")


def test_class_weights_and_label_smoothing_change_the_loss() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.5]])
    target = torch.tensor([0, 1, 1])
    plain = FractureClassifier("resnet10t", num_classes=2).loss(logits, target)
    weighted = FractureClassifier("resnet10t", num_classes=2, class_weights=[1.0, 3.0])
    smoothed = FractureClassifier("resnet10t", num_classes=2, label_smoothing=0.2)
    expected = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor([1.0, 3.0]))
    assert weighted.loss(logits, target) == pytest.approx(float(expected))
    assert smoothed.loss(logits, target) != pytest.approx(float(plain))


def test_compiled_model_checkpoints_like_an_eager_one() -> None:
    """model.compile=true must not change the checkpoint: eval/predict/export rebuild the
    network without compiling and load its weights strictly."""
    compiled = FractureClassifier(backbone="resnet18", num_classes=2, compile=True)
    eager = FractureClassifier(backbone="resnet18", num_classes=2)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    eager.load_state_dict(compiled.state_dict(), strict=True)
