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
    """A loaded checkpoint, its input pipeline and its decision rule, ready for uploads."""

    def __init__(
        self,
        loaded: Any,
        limits: UploadLimits,
        threshold: float | None = None,
        target_layer: str | None = None,
        gradcam: bool = True,
        tta: str = "none",
    ) -> None:
        from fracture_lit.inference import InputPipeline, check_tta

        self.loaded = loaded
        self.limits = limits
        self.threshold_given = threshold is not None
        self.settings = (
            loaded.settings.replace(threshold=float(threshold))
            if threshold is not None
            else loaded.settings
        )
        self.pipeline = InputPipeline(self.settings, max_pixels=limits.max_pixels)
        self.target_layer = target_layer
        self.gradcam = gradcam
        self.tta = check_tta(tta)

    @classmethod
    def load(
        cls,
        ckpt_path: str | Path,
        limits: UploadLimits,
        device: str = "auto",
        **kwargs: Any,
    ) -> Predictor:
        """Load ``ckpt_path`` (``weights_only=True``) onto the GPU when there is one."""
        import torch

        from fracture_lit.models.loading import load_checkpoint

        use_cuda = device != "cpu" and torch.cuda.is_available()
        loaded = load_checkpoint(ckpt_path, device="cuda" if use_cuda else "cpu")
        return cls(loaded, limits, **kwargs)

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
        if not self.binary:
            return "Multi-class model: the class with the highest probability is shown."
        source = (
            "set on the command line (threshold=)"
            if self.threshold_given
            else "chosen by the training run on its validation split (Youden's J: the "
            "best sum of sensitivity and specificity), never on test data"
        )
        negative = self.class_names[0]
        return (
            f"The model says {self.positive} when p({self.positive}) > {self.threshold:.3f}, "
            f"otherwise {negative}. The threshold was {source}."
        )

    def classify(self, uploads: Sequence[tuple[Path, str]]) -> list[Prediction]:
        """One :class:`Prediction` per ``(server path, name the user gave it)``, in order."""
        from fracture_lit.data.cache import BadImageError

        rows: list[Prediction] = []
        images: list[np.ndarray] = []
        good: list[Prediction] = []
        for path, name in uploads[: self.limits.max_files]:
            row = Prediction(file=name, status="ok")
            try:
                check_upload(path, self.limits, name)
                image, note = self.pipeline.read(path)
            except (UploadError, BadImageError, OSError, ValueError) as error:
                row.status, row.error = "error", _user_message(error, path, name)
            else:
                row.note = note
                images.append(image)
                good.append(row)
            rows.append(row)
        for _, name in uploads[self.limits.max_files :]:
            rows.append(
                Prediction(
                    file=name,
                    status="error",
                    error=f"{name}: not classified, over the limit of {self.limits.max_files} "
                    "files per upload (max_files=). Upload it again on its own.",
                )
            )
        if images:
            self._score(images, good)
        return rows

    def _score(self, images: list[np.ndarray], rows: list[Prediction]) -> None:
        from fracture_lit.inference import predict_probs

        settings, names = self.settings, self.class_names
        batch = self.pipeline.to_tensor(images)
        probs = predict_probs(
            self.loaded.model, batch, temperature=settings.temperature, tta=self.tta
        ).numpy()
        for row, p in zip(rows, probs, strict=True):
            predicted = settings.label(p)
            row.label = names[predicted]
            row.probability = float(p[1] if self.binary else p[predicted])
            row.probs = {n: float(v) for n, v in zip(names, p, strict=True)}
            row.threshold = settings.threshold if self.binary else None
        if self.gradcam:
            self._panels(batch, images, rows)

    def _panels(self, batch: Any, images: list[np.ndarray], rows: list[Prediction]) -> None:
        """Grad-CAM panels through the one panel writer (predict's captions and classes)."""
        from fracture_lit.review.panels import CamPanelWriter, cam_class

        names = self.class_names
        targets = [cam_class(self.binary, names.index(r.label)) for r in rows]
        captions = [
            f"{r.file}: {r.label} | p({names[t]})={r.probs[names[t]]:.2f}"
            for r, t in zip(rows, targets, strict=True)
        ]
        with CamPanelWriter(self.loaded.model.net, self.target_layer) as writer:
            panels = writer.panels(batch, images, targets, captions)
        for row, panel in zip(rows, panels, strict=True):
            row.panel = panel


def _user_message(error: BaseException, path: Path, name: str) -> str:
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
