"""Per-image predictions of one split, kept with each image's path, label and metadata.

Epoch metrics say how good a model is; reviewing it needs to know *which* images it got
wrong and how sure it was. :func:`predict_split` runs the model over a datamodule split in
its fixed order (no augmentation) and keeps everything the review artefacts need.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fracture_lit.inference import predict_probs

__all__ = ["SplitPredictions", "predict_split"]


@dataclass
class SplitPredictions:
    """Probabilities ``(N, C)`` of one split, with the images' paths, labels and metadata."""

    split: str
    class_names: list[str]
    paths: list[str]
    labels: np.ndarray
    probs: np.ndarray
    threshold: float = 0.5
    meta: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[SplitPredictions], split: str) -> SplitPredictions:
        """Several splits' predictions as one set (e.g. a whole external dataset)."""
        first = parts[0]
        return cls(
            split=split,
            class_names=first.class_names,
            paths=[p for part in parts for p in part.paths],
            labels=np.concatenate([part.labels for part in parts]),
            probs=np.concatenate([part.probs for part in parts]),
            threshold=first.threshold,
            meta=[m for part in parts for m in part.meta],
        )

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def predicted(self) -> np.ndarray:
        """Binary: positive when ``p(positive) > threshold`` (as torchmetrics and the Youden
        threshold define it); multiclass: the argmax."""
        if self.binary:
            return (self.probs[:, 1] > self.threshold).astype(np.int64)
        return self.probs.argmax(axis=1)

    def misclassified(self) -> list[int]:
        """Indices of wrong predictions, the most confidently wrong first."""
        predicted = self.predicted
        wrong = np.flatnonzero(predicted != self.labels)
        confidence = self.probs[wrong, predicted[wrong]]
        return [int(i) for i in wrong[np.argsort(-confidence, kind="stable")]]

    def fixed_set(self, n: int) -> list[int]:
        """The first images of each class in split order, alternating: the same images on
        every run of the same split, so galleries can be compared across runs."""
        per_class = [list(np.flatnonzero(self.labels == c)) for c in range(len(self.class_names))]
        picked: list[int] = []
        while len(picked) < n and any(per_class):
            for members in per_class:
                if members and len(picked) < n:
                    picked.append(int(members.pop(0)))
        return picked

    def rows(self) -> list[dict[str, Any]]:
        predicted = self.predicted
        out = []
        for i, path in enumerate(self.paths):
            row: dict[str, Any] = {
                "path": path,
                "label": self.class_names[int(self.labels[i])],
                "predicted": self.class_names[int(predicted[i])],
                "correct": int(predicted[i] == self.labels[i]),
            }
            for c, name in enumerate(self.class_names):
                row[f"prob_{name}"] = round(float(self.probs[i, c]), 6)
            if self.meta and self.meta[i].get("region"):
                row["region"] = self.meta[i]["region"]
            out.append(row)
        return out

    def write_csv(self, path: Path) -> Path:
        rows = self.rows()
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = list(dict.fromkeys(k for row in rows for k in row)) or ["path"]
        with path.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return path


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    datamodule: Any,
    split: str,
    class_names: list[str],
    threshold: float = 0.5,
    batch_size: int = 64,
    *,
    temperature: float = 1.0,
    tta: str = "none",
) -> SplitPredictions:
    """Run ``model`` over ``datamodule``'s ``split`` (set up, unaugmented) in its order;
    ``tta``/``temperature`` as in :func:`~fracture_lit.inference.predict_probs`."""
    from fracture_lit.data.image_datasets import collate_images

    dataset = datamodule.datasets[split]
    members = [s for s in datamodule.samples if s.split == split]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    probs, labels = [], []
    for images, targets in loader:
        batch = datamodule.normalizer(images)
        probs.append(predict_probs(model, batch, temperature=temperature, tta=tta))
        labels.append(targets)
    return SplitPredictions(
        split=split,
        class_names=list(class_names),
        paths=[s.path for s in members],
        labels=torch.cat(labels).numpy() if labels else np.zeros(0, np.int64),
        probs=torch.cat(probs).numpy() if probs else np.zeros((0, len(class_names))),
        threshold=float(threshold),
        meta=[dict(s.meta) for s in members],
    )
