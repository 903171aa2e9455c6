"""What one stage (train/val/test) of the LightningModule accumulates over an epoch."""

from __future__ import annotations

import torch
from torchmetrics import CatMetric, MeanMetric

from fracture_lit.metrics import build_confusion_matrix, build_metrics

__all__ = ["StageMetrics"]


class StageMetrics(torch.nn.Module):
    """Everything one stage (train/val/test) accumulates over an epoch.

    A step only keeps its detached scores, targets, loss (and logits for val/test); the
    metrics are updated once
    per epoch from the concatenated batches (:meth:`flush`). Updating a dozen torchmetrics
    on every step cost more host time than the step's small-image forward pass on CPU; the
    epoch values are the same, and under DDP each rank still updates its own states, which
    torchmetrics synchronises in ``compute``.
    """

    def __init__(self, num_classes: int, stage: str) -> None:
        super().__init__()
        self.collection = build_metrics(num_classes, prefix=f"{stage}/")
        self.confusion = build_confusion_matrix(num_classes)
        self.loss = MeanMetric()
        # Scores, fp32 logits and targets, for the temperature, the Youden threshold and
        # bootstrap intervals (val/test). Logits, not probabilities: a temperature applied to
        # a probability that saturated at 1.0 in fp32 could not give eval's value back.
        self.keep_scores = stage != "train"
        self.scores = CatMetric()
        self.logits = CatMetric()
        self.targets = CatMetric()
        self._pending: list[tuple[torch.Tensor, ...]] = []
        # A checkpoint taken mid-epoch (resume, preemption) reads the metric states right
        # after the model's state_dict: flush first so they hold every batch seen so far.
        self.register_state_dict_pre_hook(lambda module, *_: module.flush())

    def update(
        self,
        scores: torch.Tensor,
        targets: torch.Tensor,
        loss: torch.Tensor,
        logits: torch.Tensor | None = None,
    ) -> None:
        """Keep one batch (detached) until :meth:`flush`."""
        kept = (scores.detach(), targets.detach(), loss.detach().reshape(()))
        self._pending.append(kept if logits is None else (*kept, logits.detach().float()))

    def flush(self) -> None:
        """Update every metric once with the batches kept since the last flush."""
        if not self._pending:
            return
        scores = torch.cat([kept[0] for kept in self._pending])
        targets = torch.cat([kept[1] for kept in self._pending])
        losses = torch.stack([kept[2].float() for kept in self._pending])
        counts = torch.tensor(
            [kept[1].numel() for kept in self._pending], dtype=torch.float32, device=losses.device
        )
        logits = [kept[3] for kept in self._pending if len(kept) > 3]
        self._pending.clear()
        self.collection.update(scores, targets)
        self.confusion.update(scores, targets)
        self.loss.update(losses, weight=counts)
        if self.keep_scores:
            self.scores.update(scores)
            self.targets.update(targets)
            if logits:
                self.logits.update(torch.cat(logits))

    def reset(self) -> None:
        self._pending.clear()
        for metric in (self.collection, self.confusion, self.loss, self.scores, self.logits,
                       self.targets):  # fmt: skip
            metric.reset()
