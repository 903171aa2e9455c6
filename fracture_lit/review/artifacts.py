"""The review folder of a run or an evaluation: curves, confusion matrix, predictions, CAMs.

Layout (``<run folder>/review/``, :class:`fracture_lit.layout.ReviewLayout`), read by the
HTML report and logged to W&B::

    <split>/confusion.png  roc.png  pr.png  reliability.png  predictions.csv  misclassified.csv
    gradcam/<split>_fixed_NN.png   the same images on every run (first of each class)
    gradcam/<split>_worst_NN.png   the most confidently wrong images
    gradcam/index.csv              file, kind, split, path, label, predicted, prob
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fracture_lit.data.cache import BadImageError
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import confusion_at_threshold
from fracture_lit.inference.pipeline import InputPipeline
from fracture_lit.layout import ReviewLayout
from fracture_lit.review.panels import CamPanelWriter, cam_class
from fracture_lit.review.plots import plot_confusion, plot_pr, plot_reliability, plot_roc

__all__ = ["CamImage", "ReviewFiles", "write_gradcam", "write_review"]

log = logging.getLogger(__name__)
INDEX_COLUMNS = ("file", "kind", "split", "path", "label", "predicted", "prob")


@dataclass
class CamImage:
    """One Grad-CAM panel on disk and what it shows."""

    file: Path
    kind: str  # "fixed" or "worst"
    split: str
    path: str
    label: str
    predicted: str
    prob: float

    @property
    def caption(self) -> str:
        return f"{Path(self.path).name}: true {self.label}, predicted {self.predicted} (p={self.prob:.2f})"


@dataclass
class ReviewFiles:
    split: str
    confusion: Path
    roc: Path
    pr: Path
    predictions: Path
    misclassified: Path
    confusion_matrix: list[list[int]]
    cams: list[CamImage] = field(default_factory=list)
    reliability: Path | None = None


def write_review(
    pred: SplitPredictions,
    out_dir: Path,
    net: torch.nn.Module | None = None,
    pipeline: InputPipeline | None = None,
    n_fixed: int = 8,
    n_worst: int = 8,
    target_layer: str | None = None,
) -> ReviewFiles:
    """Write one split's review files into the review folder ``out_dir``; Grad-CAM panels
    when ``net`` and ``pipeline`` are given."""
    review = ReviewLayout(out_dir)
    split = pred.split
    review.split(split).mkdir(parents=True, exist_ok=True)
    matrix = confusion_at_threshold(pred)
    thr = f" at threshold {pred.threshold:.3f}" if pred.binary else ""
    title = f"{pred.split}: confusion{thr}"
    files = ReviewFiles(
        split=pred.split,
        confusion=plot_confusion(matrix, pred.class_names, review.confusion(split), title),
        roc=plot_roc(
            pred.probs,
            pred.labels,
            pred.class_names,
            review.roc(split),
            threshold=pred.threshold if pred.binary else None,
            title=f"{pred.split}: ROC",
        ),
        pr=plot_pr(
            pred.probs, pred.labels, pred.class_names, review.pr(split), f"{pred.split}: PR"
        ),
        predictions=pred.write_csv(review.predictions(split)),
        misclassified=_write_misclassified(pred, review.misclassified(split)),
        confusion_matrix=matrix,
        reliability=plot_reliability(
            pred.probs, pred.labels, review.reliability(split), f"{pred.split}: reliability"
        ),
    )
    if net is not None and pipeline is not None and (n_fixed or n_worst):
        chosen = [("fixed", i) for i in pred.fixed_set(n_fixed)]
        chosen += [("worst", i) for i in pred.misclassified()[:n_worst]]
        files.cams = write_gradcam(pred, chosen, review, net, pipeline, target_layer)
    return files


def _write_misclassified(pred: SplitPredictions, path: Path) -> Path:
    rows = pred.rows()
    wrong = [rows[i] for i in pred.misclassified()]
    columns = list(rows[0]) if rows else ["path"]
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(wrong)
    return path


def write_gradcam(
    pred: SplitPredictions,
    chosen: list[tuple[str, int]],
    review: ReviewLayout,
    net: torch.nn.Module,
    pipeline: InputPipeline,
    target_layer: str | None = None,
) -> list[CamImage]:
    """Grad-CAM panels (image | heatmap, captioned) for the chosen (kind, index) pairs, in
    the review's ``gradcam/`` folder and its ``index.csv``."""
    if not chosen:
        return []
    images, kept = [], []
    for kind, i in chosen:
        try:
            images.append(pipeline.read(pred.paths[i])[0])
            kept.append((kind, i))
        except BadImageError as error:
            log.warning("Grad-CAM skips %s: %s", pred.paths[i], error)
    if not images:
        return []
    predicted = pred.predicted
    counters: dict[str, int] = {}
    cams: list[CamImage] = []
    targets, captions = [], []
    for kind, i in kept:
        n = counters[kind] = counters.get(kind, -1) + 1
        target = cam_class(pred.binary, int(predicted[i]))
        item = CamImage(
            file=review.gradcam_panel(pred.split, kind, n),
            kind=kind,
            split=pred.split,
            path=pred.paths[i],
            label=pred.class_names[int(pred.labels[i])],
            predicted=pred.class_names[int(predicted[i])],
            prob=float(pred.probs[i, target]),
        )
        cams.append(item)
        targets.append(target)
        captions.append(
            f"{kind}: true {item.label} | pred {item.predicted} | "
            f"p({pred.class_names[target]})={item.prob:.2f}"
        )
    with CamPanelWriter(net, target_layer) as writer:
        writer.write(pipeline.to_tensor(images), images, targets, captions, [c.file for c in cams])
    _append_index(review.gradcam_index, cams)
    return cams


def _append_index(path: Path, cams: list[CamImage]) -> None:
    """index.csv lists every panel of the folder (val and test write into the same one)."""
    rows: dict[str, dict[str, str]] = {}
    if path.is_file():
        with path.open(newline="") as stream:
            rows = {row["file"]: row for row in csv.DictReader(stream)}
    for cam in cams:
        rows[cam.file.name] = {
            "file": cam.file.name,
            "kind": cam.kind,
            "split": cam.split,
            "path": cam.path,
            "label": cam.label,
            "predicted": cam.predicted,
            "prob": f"{cam.prob:.4f}",
        }
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(rows.values(), key=lambda r: r["file"]))
