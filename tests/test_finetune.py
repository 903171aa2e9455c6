"""Two-phase fine-tuning: head only first, then the top of the backbone at its own lr."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fracture_lit.callbacks.finetune import TwoPhaseFinetuning, modules_from
from fracture_lit.models.module import FractureClassifier


class _Snapshot(L.Callback):
    """Copies of the weights at the end of every training epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, torch.Tensor]] = []
        self.lrs: list[list[float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


def test_two_phase_unfreezes_the_top_at_the_given_epoch(tmp_path) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 32, 32), torch.arange(32) % 2)
    model = FractureClassifier(
        "resnet10t", num_classes=2, in_chans=1, optimizer=partial(torch.optim.Adam, lr=1e-3)
    )
    start = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    snapshot = _Snapshot()
    phases = TwoPhaseFinetuning(
        unfreeze_at_epoch=1, unfreeze_from="layer4", lr=1e-4, head_lr=2e-4, train_bn=True
    )
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[phases, snapshot],
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(model, DataLoader(data, batch_size=8))
    phase1, phase2 = snapshot.epochs
    # Phase 1: the head moved, the backbone (early and top) did not.
    assert not torch.equal(phase1["fc.weight"], start["fc.weight"])
    assert torch.equal(phase1["layer4.0.conv1.weight"], start["layer4.0.conv1.weight"])
    assert torch.equal(phase1["conv1.0.weight"], start["conv1.0.weight"])
    # Phase 2: layer4 trains, everything before it stays frozen.
    assert not torch.equal(phase2["layer4.0.conv1.weight"], phase1["layer4.0.conv1.weight"])
    assert torch.equal(phase2["layer3.0.conv1.weight"], start["layer3.0.conv1.weight"])
    assert snapshot.lrs[0] == [1e-3]
    assert snapshot.lrs[1] == pytest.approx([2e-4, 1e-4])


def test_unknown_unfreeze_module_fails_before_training() -> None:
    model = FractureClassifier("resnet10t", num_classes=2)
    with pytest.raises(ValueError, match="layer9.*layer1"):
        TwoPhaseFinetuning(unfreeze_from="layer9").freeze_before_training(model)


def test_modules_from_excludes_the_head() -> None:
    model = FractureClassifier("resnet10t", num_classes=2)
    modules = modules_from(model.net, "layer4")
    params = {id(p) for m in modules for p in m.parameters(recurse=False)}
    assert id(model.net.fc.weight) not in params
    assert id(model.net.layer4[0].conv1.weight) in params
