"""Classification metrics for fracture classifiers, computed by torchmetrics.

* **Stateful** metrics (:func:`build_metrics`, :func:`build_confusion_matrix`) that the
  LightningModule updates once per epoch and that sync across DDP ranks on their own.
  They are fed what :func:`metric_inputs` returns, so the training step never has to know
  whether the task is binary or multiclass.
* :func:`binary_metrics_at_threshold`: the same metrics of a finished binary prediction set
  at one threshold, what scoring (:mod:`fracture_lit.evaluation`) and its bootstrap call.

Threshold convention: torchmetrics turns a probability into a positive prediction with
``prob > threshold`` (strictly greater), as every threshold of the project does (see
:mod:`fracture_lit.stats.roc`), so a threshold from
:func:`~fracture_lit.stats.youden.youden_threshold` passed to
:func:`binary_metrics_at_threshold` reproduces the sensitivity/specificity it reported.
The AUROC of a finished set is :func:`fracture_lit.stats.auroc.auroc`, the project's one.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryCohenKappa,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    BinarySpecificity,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassSpecificity,
)
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_cohen_kappa,
    binary_f1_score,
    binary_precision,
    binary_recall,
    binary_specificity,
)

from fracture_lit.stats.auroc import auroc
from fracture_lit.stats.catalogue import computed_keys
from fracture_lit.stats.roc import check_binary_inputs

__all__ = [
    "METRIC_KEYS",
    "binary_metrics_at_threshold",
    "build_confusion_matrix",
    "build_metrics",
    "metric_inputs",
]

#: Keys of :func:`build_metrics` (before the prefix) and of :func:`binary_metrics_at_threshold`:
#: the catalogue's ``computed`` metrics, so epoch-end logs and reports line up column for
#: column (a new metric is computed here and listed once in the catalogue).
METRIC_KEYS: tuple[str, ...] = computed_keys()


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")


def build_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Build the per-epoch metric collection for one stage (``prefix`` like ``"val/"``).

    Binary (``num_classes == 2``) uses torchmetrics' binary task fed with the positive-class
    probability ``(N,)`` and thresholded at 0.5: the binary task reports precision/recall/F1 for
    the fracture class, which is what matters clinically, while a 2-class multiclass macro
    average would blend in the "no fracture" class. ``num_classes > 2`` uses the multiclass task
    fed with probabilities ``(N, C)``, macro-averaged so rare classes weigh as much as common ones.

    Choices worth knowing:

    * ``acc`` is plain (micro) accuracy in both tasks. torchmetrics' ``MulticlassAccuracy``
      defaults to ``average="macro"``, which is macro recall, i.e. balanced accuracy; that is
      already logged as ``balanced_acc``, so ``acc`` is set to ``"micro"`` explicitly.
    * Binary ``balanced_acc`` is ``(recall + specificity) / 2``, built as a torchmetrics
      ``CompositionalMetric`` (metric arithmetic) because torchmetrics has no binary balanced
      accuracy class; the children are real metrics, so DDP sync and ``reset`` still work.
    * ``auroc`` keeps every prediction of the epoch (exact, ``thresholds=None``); fine at
      X-ray-dataset sizes.

    Use ``collection.clone(prefix="test/")`` to derive another stage's collection.
    """
    _check_num_classes(num_classes)
    metrics: dict[str, Metric]
    if num_classes == 2:
        metrics = {
            "acc": BinaryAccuracy(),
            "balanced_acc": (BinaryRecall() + BinarySpecificity()) / 2,
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "specificity": BinarySpecificity(),
            "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(),
            "kappa": BinaryCohenKappa(),
        }
    else:
        c = num_classes
        metrics = {
            "acc": MulticlassAccuracy(num_classes=c, average="micro"),
            "balanced_acc": MulticlassRecall(num_classes=c, average="macro"),
            "precision": MulticlassPrecision(num_classes=c, average="macro"),
            "recall": MulticlassRecall(num_classes=c, average="macro"),
            "specificity": MulticlassSpecificity(num_classes=c, average="macro"),
            "f1": MulticlassF1Score(num_classes=c, average="macro"),
            "auroc": MulticlassAUROC(num_classes=c, average="macro"),
            "kappa": MulticlassCohenKappa(num_classes=c),
        }
    return MetricCollection(metrics, prefix=prefix)


def build_confusion_matrix(num_classes: int) -> Metric:
    """Confusion matrix matching :func:`build_metrics` inputs (rows = true, columns = predicted).

    Binary takes the positive-class probability and thresholds at 0.5, giving
    ``[[TN, FP], [FN, TP]]``; multiclass takes ``(N, C)`` probabilities and uses the argmax.
    Kept outside the collection because it returns a matrix, which ``self.log`` cannot take.
    """
    _check_num_classes(num_classes)
    if num_classes == 2:
        return BinaryConfusionMatrix()
    return MulticlassConfusionMatrix(num_classes=num_classes)


def metric_inputs(logits: Tensor, num_classes: int) -> Tensor:
    """Turn model logits ``(N, C)`` into what :func:`build_metrics` expects.

    Softmax over classes, then for the binary case only the class-1 (fracture) probability
    ``(N,)``. The result is detached (metrics never need gradients, and ``BinaryAUROC`` keeps
    its inputs for the whole epoch, which would otherwise pin the autograd graph) and cast to
    float32 (bf16/fp16 logits under autocast lose too much precision for AUROC ties).
    """
    _check_num_classes(num_classes)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"Expected logits of shape (N, {num_classes}), got {tuple(logits.shape)}.")
    probs = torch.softmax(logits.detach().float(), dim=1)
    return probs[:, 1] if num_classes == 2 else probs


def binary_metrics_at_threshold(
    probs: Tensor, targets: Tensor, threshold: float
) -> dict[str, float]:
    """All :data:`METRIC_KEYS` for a binary prediction set at one threshold (``prob > threshold``).

    Thresholded metrics use torchmetrics' functional API with its zero-division convention
    (0.0, e.g. precision when nothing is predicted positive). ``auroc`` is threshold-free
    (:func:`fracture_lit.stats.auroc.auroc`) and NaN when only one class is present.
    """
    probs, targets = check_binary_inputs(probs, targets)
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    recall = float(binary_recall(probs, targets, threshold=t))
    specificity = float(binary_specificity(probs, targets, threshold=t))
    return {
        "acc": float(binary_accuracy(probs, targets, threshold=t)),
        "balanced_acc": (recall + specificity) / 2,
        "precision": float(binary_precision(probs, targets, threshold=t)),
        "recall": recall,
        "specificity": specificity,
        "f1": float(binary_f1_score(probs, targets, threshold=t)),
        "auroc": auroc(probs.cpu().numpy(), targets.cpu().numpy()),
        "kappa": float(binary_cohen_kappa(probs, targets, threshold=t)),
    }
