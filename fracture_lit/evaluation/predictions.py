"""Per-image predictions of one split, kept with each image's path, label and metadata.

Epoch metrics say how good a model is; reviewing it needs to know *which* images it got
wrong and how sure it was. A :class:`SplitPredictions` is what scoring, the review
artefacts and the paired comparisons read; :func:`fracture_lit.inference.split.predict_split`
fills one by running a model over a datamodule split, and the LightningModule builds one
from the scores it kept over an epoch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SplitPredictions"]


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

    @classmethod
    def from_scores(
        cls,
        split: str,
        class_names: list[str],
        scores: np.ndarray,
        labels: np.ndarray,
        threshold: float = 0.5,
    ) -> SplitPredictions:
        """From what a LightningModule keeps over an epoch: the positive-class probability
        ``(N,)`` of a binary task (the first column is its complement) or ``(N, C)``.

        No paths or metadata: those belong to the datamodule's images, in the order the
        scores were gathered.
        """
        scores = np.asarray(scores)
        probs = np.stack([1 - scores, scores], axis=1) if scores.ndim == 1 else scores
        return cls(split, list(class_names), [], np.asarray(labels), probs, float(threshold))

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
            for key in ("source", "region"):  # a merged dataset's source; FracAtlas's region
                if self.meta and self.meta[i].get(key):
                    row[key] = self.meta[i][key]
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
