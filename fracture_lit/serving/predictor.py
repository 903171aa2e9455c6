"""Classify uploaded files with one checkpoint: class, probability, threshold, Grad-CAM panel.

The same steps as ``python -m fracture_lit.predict`` (checkpoint loader, input pipeline,
probabilities, the threshold rule, Grad-CAM panels), so the page and predict's CSV agree
for the same file. Every file is judged on its own: a refused or unreadable one becomes an
error row with the reason and the others are still classified.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fracture_lit.serving.uploads import UploadError, UploadLimits, check_upload

__all__ = ["Prediction", "Predictor", "write_csv"]

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One uploaded file's row on the page and in the CSV."""

    file: str
    status: str  # "ok" or "error"
    label: str = ""
    #: Binary: p(positive class); multi-class: p(predicted class).
    probability: float | None = None
    probs: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    note: str = ""
    error: str = ""
    panel: np.ndarray | None = None  # RGB uint8: image | Grad-CAM heatmap, captioned

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Predictor:
    """A model (one checkpoint, or an ensemble, with its TTA and threshold) for uploads."""

    def __init__(
        self,
        ensemble: Any,
        limits: UploadLimits,
        target_layer: str | None = None,
        gradcam: bool = True,
    ) -> None:
        self.ensemble = ensemble  # fracture_lit.inference.ensemble.Ensemble
        self.limits = limits
        self.target_layer = target_layer
        self.gradcam = gradcam

    @classmethod
    def load(
        cls,
        ckpt_path: Any,
        limits: UploadLimits,
        device: str = "auto",
        threshold: float | None = None,
        tta: str = "none",
        **kwargs: Any,
    ) -> Predictor:
        """Load ``ckpt_path`` (a checkpoint, a list of them or a sweep folder; each with
        ``weights_only=True``) onto the GPU when there is one."""
        import torch

        # Here, not at the top: torch loads with the model, not with the web app's module.
        from fracture_lit.inference.ensemble import load_ensemble

        use_cuda = device != "cpu" and torch.cuda.is_available()
        ensemble = load_ensemble(
            ckpt_path,
            tta=tta,
            threshold=threshold,
            device="cuda" if use_cuda else "cpu",
            max_pixels=limits.max_pixels,
        )
        return cls(ensemble, limits, **kwargs)

    @property
    def members(self) -> list[Any]:
        """The loaded checkpoints (one unless ``ckpt_path`` named several)."""
        return list(self.ensemble.members)

    @property
    def settings(self) -> Any:
        return self.ensemble.settings

    @property
    def class_names(self) -> list[str]:
        return list(self.settings.class_names)

    @property
    def binary(self) -> bool:
        return self.settings.binary

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def positive(self) -> str | None:
        """The class the threshold is about (binary models only)."""
        return self.settings.positive_class

    def threshold_meaning(self) -> str:
        """One sentence: the decision rule and where its threshold comes from."""
        from fracture_lit.inference.ensemble import CHECKPOINT_SOURCE  # loaded with the model

        if not self.binary:
            return "Multi-class model: the class with the highest probability is shown."
        source = self.ensemble.threshold_source
        if source == CHECKPOINT_SOURCE:
            source = (
                "chosen by the training run on its validation split (Youden's J: the best "
                "sum of sensitivity and specificity), never on test data"
            )
        return (
            f"The model says {self.positive} when p({self.positive}) > {self.threshold:.3f}, "
            f"otherwise {self.class_names[0]}. Threshold: {source}."
        )

    def classify(self, uploads: Sequence[tuple[Path, str]]) -> list[Prediction]:
        """One :class:`Prediction` per ``(server path, name the user gave it)``, in order."""
        rows = [Prediction(file=name, status="ok") for _, name in uploads]
        readable: list[tuple[Prediction, Path]] = []
        for number, ((path, name), row) in enumerate(zip(uploads, rows, strict=True)):
            if number >= self.limits.max_files:
                row.status = "error"
                row.error = (
                    f"{name}: not classified, over the limit of {self.limits.max_files} "
                    "files per upload (max_files=). Upload it again on its own."
                )
                continue
            try:
                check_upload(path, self.limits, name)
            except UploadError as error:
                row.status, row.error = "error", str(error)
            else:
                readable.append((row, path))
        scored = self.ensemble.predict_files([path for _, path in readable])
        images, good = [], []
        for (row, path), item in zip(readable, scored, strict=True):
            if item.error:
                row.status, row.error = "error", _user_message(item.error, path, row.file)
                continue
            p = item.probs
            predicted = self.settings.label(p)
            row.label, row.note = self.class_names[predicted], item.note
            row.probability = float(p[1] if self.binary else p[predicted])
            row.probs = {n: float(v) for n, v in zip(self.class_names, p, strict=True)}
            row.threshold = self.threshold if self.binary else None
            images.append(item.image)
            good.append(row)
        if good and self.gradcam:
            self._panels(images, good)
        return rows

    def _panels(self, images: list[np.ndarray], rows: list[Prediction]) -> None:
        """Grad-CAM panels of the first member (as predict draws them), through the one
        panel writer: an average of heatmaps would explain no network."""
        # pytorch-grad-cam loads only when someone asks for heatmaps (about 2 s).
        from fracture_lit.review.panels import CamPanelWriter, cam_class

        first = self.members[0]
        batch = self.ensemble.pipeline(first).to_tensor(images)
        names = self.class_names
        targets = [cam_class(self.binary, names.index(r.label)) for r in rows]
        captions = [
            f"{r.file}: {r.label} | p({names[t]})={r.probs[names[t]]:.2f}"
            for r, t in zip(rows, targets, strict=True)
        ]
        with CamPanelWriter(first.model.net, self.target_layer) as writer:
            panels = writer.panels(batch, images, targets, captions)
        for row, panel in zip(rows, panels, strict=True):
            row.panel = panel


def _user_message(error: BaseException | str, path: Path, name: str) -> str:
    """The reader names the server's copy of the file; the page names the user's file."""
    text = str(error).replace(str(path), name)
    return text if text.startswith(name) else f"{name}: {text}"


def write_csv(rows: Sequence[Prediction], class_names: Sequence[str], path: Path) -> Path:
    """The page's results with predict's column names (``file`` for predict's ``path``)."""
    columns = [
        "file",
        "status",
        "probability",
        "label",
        *[f"prob_{n}" for n in class_names],
        "threshold",
        "note",
        "error",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    "file": row.file,
                    "status": row.status,
                    "probability": "" if row.probability is None else round(row.probability, 6),
                    "label": row.label,
                    **{f"prob_{n}": round(v, 6) for n, v in row.probs.items()},
                    "threshold": "" if row.threshold is None else round(row.threshold, 6),
                    "note": row.note,
                    "error": row.error,
                }
            )
    return path
