"""Two-phase fine-tuning for any backbone: train the head on a frozen backbone, then
unfreeze the top of the backbone at a lower learning rate (paper C's EfficientNet-B0)."""

from __future__ import annotations

import logging

import lightning as L
import torch.nn as nn
from lightning.pytorch.callbacks import BaseFinetuning
from torch.optim import Optimizer

from fracture_lit.models.freeze import freeze_backbone, head_parameter_names

log = logging.getLogger(__name__)


def modules_from(model: nn.Module, start: str | None) -> list[nn.Module]:
    """The modules owning every non-head parameter registered at or after module ``start``
    (``None``: the whole backbone) — "the top of the backbone from layer X on"."""
    names = [n for n, _ in model.named_parameters()]
    head = head_parameter_names(model)
    if start is None:
        first = 0
    else:
        if start not in dict(model.named_modules()):
            tops = [n for n, _ in model.named_children()]
            raise ValueError(
                f"unfreeze_from={start!r} is not a module of this backbone; top-level modules: "
                f"{', '.join(tops)} (nested names like {tops[0]}.0 work too)."
            )
        first = next((i for i, n in enumerate(names) if n.startswith(start + ".")), len(names))
    owners = dict.fromkeys(
        n.rsplit(".", 1)[0] if "." in n else "" for n in names[first:] if n not in head
    )
    return [model.get_submodule(owner) for owner in owners]


class TwoPhaseFinetuning(BaseFinetuning):
    """Phase 1: only the classifier head trains. From ``unfreeze_at_epoch`` on, the backbone
    from ``unfreeze_from`` upwards trains too, as a new parameter group at ``lr``; the
    head's learning rate becomes ``head_lr`` when given (Keras-style recompiling with one
    low learning rate sets both to the same value). ``train_bn`` keeps batch norm of the
    frozen part trainable in both phases."""

    def __init__(
        self,
        unfreeze_at_epoch: int = 10,
        unfreeze_from: str | None = None,
        lr: float = 1e-5,
        head_lr: float | None = None,
        train_bn: bool = True,
    ) -> None:
        super().__init__()
        if unfreeze_at_epoch < 1:
            raise ValueError("unfreeze_at_epoch must be >= 1 (phase 1 needs at least an epoch).")
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.unfreeze_from, self.lr, self.head_lr = unfreeze_from, lr, head_lr
        self.train_bn = train_bn

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        modules_from(net, self.unfreeze_from)  # fail now, not 20 epochs in, on a bad name
        freeze_backbone(net, "all", train_bn=self.train_bn)

    def finetune_function(
        self, pl_module: L.LightningModule, current_epoch: int, optimizer: Optimizer
    ) -> None:
        if current_epoch != self.unfreeze_at_epoch:
            return
        if self.head_lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = self.head_lr
                if "initial_lr" in group:
                    group["initial_lr"] = self.head_lr
        modules = modules_from(pl_module.net, self.unfreeze_from)
        self.unfreeze_and_add_param_group(
            modules=modules, optimizer=optimizer, lr=self.lr, train_bn=self.train_bn
        )
        trainable = sum(p.numel() for p in pl_module.net.parameters() if p.requires_grad)
        log.info(
            "Phase 2 from epoch %d: unfroze %s (%d trainable parameters) at lr %g",
            current_epoch,
            self.unfreeze_from or "the whole backbone",
            trainable,
            self.lr,
        )
