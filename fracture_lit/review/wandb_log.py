"""Put a split's review in the W&B run: confusion matrix, ROC/PR curves, Grad-CAM gallery and
a table of the misclassified images with their probabilities.

Curves (the ROC of :mod:`fracture_lit.stats.roc`, torchmetrics' precision-recall) are logged
as line series (``wandb.plot.roc_curve`` would need scikit-learn); the PNG figures go along
so the run page shows them as drawn. wandb is imported only when a review is logged: it is
an optional dependency, slow to import.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional.classification import binary_precision_recall_curve

from fracture_lit.data.cache import BadImageError
from fracture_lit.data.readers import read_image
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.review.artifacts import ReviewFiles
from fracture_lit.stats.roc import roc_curve

__all__ = ["log_review"]

MAX_TABLE_ROWS = 100
THUMBNAIL_SIZE = 160
MAX_CURVE_POINTS = 400


def _thin(x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
    step = max(1, x.numel() // MAX_CURVE_POINTS)
    return x[::step].tolist(), y[::step].tolist()


def _curves(pred: SplitPredictions) -> dict[str, Any]:
    import wandb

    probs = torch.as_tensor(pred.probs, dtype=torch.float32)
    labels = torch.as_tensor(pred.labels).long()
    classes = [1] if pred.binary else range(len(pred.class_names))
    roc_x, roc_y, pr_x, pr_y, keys = [], [], [], [], []
    for c in classes:
        target = (labels == c).long()
        if not (target.any() and (1 - target).any()):
            continue
        fpr, tpr, _ = roc_curve(probs[:, c], target)
        precision, recall, _ = binary_precision_recall_curve(probs[:, c], target)
        for xs, ys, (a, b) in (
            (roc_x, roc_y, _thin(fpr, tpr)),
            (pr_x, pr_y, _thin(recall, precision)),
        ):
            xs.append(a)
            ys.append(b)
        keys.append(pred.class_names[c])
    if not keys:
        return {}
    split = pred.split
    return {
        f"{split}/roc_curve": wandb.plot.line_series(
            xs=roc_x, ys=roc_y, keys=keys, title=f"{split} ROC", xname="1 - specificity"
        ),
        f"{split}/pr_curve": wandb.plot.line_series(
            xs=pr_x, ys=pr_y, keys=keys, title=f"{split} precision-recall", xname="recall"
        ),
    }


def _thumbnail(path: str) -> Any:
    """A small greyscale copy: the originals can be several megapixels each."""
    import wandb

    try:
        return wandb.Image(read_image(path, THUMBNAIL_SIZE, "letterbox")[0])
    except BadImageError:
        return None


def log_review(experiment: Any, pred: SplitPredictions, files: ReviewFiles) -> None:
    """Log one split's review into ``experiment`` (a live ``wandb`` run)."""
    import wandb

    split = pred.split
    predicted = pred.predicted
    payload: dict[str, Any] = {
        f"{split}/confusion_matrix": wandb.plot.confusion_matrix(
            y_true=pred.labels.tolist(),
            preds=predicted.tolist(),
            class_names=pred.class_names,
            title=f"{split} confusion matrix (threshold {pred.threshold:.3f})",
        ),
        # One key per figure: W&B shows a list of differently sized images badly.
        f"{split}/figure_confusion": wandb.Image(str(files.confusion), caption="confusion"),
        f"{split}/figure_roc": wandb.Image(str(files.roc), caption="ROC"),
        f"{split}/figure_pr": wandb.Image(str(files.pr), caption="precision-recall"),
        **_curves(pred),
    }
    if files.reliability is not None:
        payload[f"{split}/figure_reliability"] = wandb.Image(
            str(files.reliability), caption="reliability"
        )
    if files.cams:
        payload[f"{split}/gradcam"] = [
            wandb.Image(str(c.file), caption=c.caption) for c in files.cams
        ]
    columns = ["image", "path", "label", "predicted", *(f"p({n})" for n in pred.class_names)]
    rows = []
    for i in pred.misclassified()[:MAX_TABLE_ROWS]:
        path = pred.paths[i]
        image = _thumbnail(path)  # one size for every row: W&B tables need that
        rows.append(
            [
                image,
                path,
                pred.class_names[int(pred.labels[i])],
                pred.class_names[int(predicted[i])],
                *(round(float(p), 4) for p in pred.probs[i]),
            ]
        )
    payload[f"{split}/misclassified"] = wandb.Table(columns=columns, data=rows)
    experiment.log(payload)
