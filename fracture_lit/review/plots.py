"""ROC, precision-recall and confusion-matrix figures as PNG files.

The ROC curve and its AUROC come from :mod:`fracture_lit.stats` (the same code the
reported AUROC comes from), the precision-recall curve from torchmetrics, so a figure and
the number beside it can never disagree; matplotlib only draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torchmetrics.functional.classification import (  # noqa: E402
    binary_average_precision,
    binary_precision_recall_curve,
)

from fracture_lit.stats.auroc import auroc  # noqa: E402
from fracture_lit.stats.calibration import calibration_metrics, reliability_bins  # noqa: E402
from fracture_lit.stats.roc import roc_curve  # noqa: E402

__all__ = ["plot_confusion", "plot_pr", "plot_reliability", "plot_roc"]


def _one_vs_rest(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, scores, binary targets) per curve: the positive class only when binary."""
    p, t = torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels).long()
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    return [
        (class_names[c], p[:, c], (t == c).long())
        for c in classes
        if (t == c).any() and (t != c).any()
    ]


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    threshold: float | None = None,
    title: str = "ROC",
) -> Path:
    """ROC curve(s) with AUROC in the legend; the operating point at ``threshold`` (binary)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, scores, targets in _one_vs_rest(probs, labels, class_names):
        fpr, tpr, _ = roc_curve(scores, targets)
        auc = auroc(scores.numpy(), targets.numpy())
        ax.plot(fpr.numpy(), tpr.numpy(), lw=1.8, label=f"{name} (AUROC {auc:.3f})")
        if threshold is not None and probs.shape[1] == 2:
            pred = scores > threshold  # the project-wide rule: positive when p > threshold
            sens = float((pred & (targets == 1)).sum() / max(1, int(targets.sum())))
            fp = float((pred & (targets == 0)).sum() / max(1, int((targets == 0).sum())))
            ax.plot([fp], [sens], "o", color="black", label=f"threshold {threshold:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_pr(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    title: str = "Precision-recall",
) -> Path:
    """Precision-recall curve(s) with average precision; the prevalence as the baseline."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, scores, targets in _one_vs_rest(probs, labels, class_names):
        precision, recall, _ = binary_precision_recall_curve(scores, targets)
        ap = float(binary_average_precision(scores, targets))
        ax.plot(recall.numpy(), precision.numpy(), lw=1.8, label=f"{name} (AP {ap:.3f})")
        ax.axhline(float(targets.float().mean()), ls="--", lw=0.8, color="grey")
    ax.set(
        xlabel="recall (sensitivity)", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02)
    )
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_reliability(
    probs: np.ndarray,
    labels: np.ndarray,
    path: Path,
    title: str = "Reliability",
) -> Path:
    """Reliability diagram: observed frequency against predicted probability per bin.

    Binary: p(positive) against the share of positives; multiclass: top-class confidence
    against accuracy. The bins are those of the ECE in the legend
    (:func:`fracture_lit.stats.calibration.reliability_bins`), so the two agree; the lower
    panel counts the images per bin.
    """
    bins = reliability_bins(probs, labels)
    scores = calibration_metrics(probs, labels)
    used = bins.count > 0
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(4.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="perfectly calibrated")
    for x, y in zip(bins.confidence[used], bins.frequency[used], strict=True):
        ax.plot([x, x], [x, y], color="tab:red", lw=1.0, alpha=0.6)  # the gap ECE averages
    ax.plot(
        bins.confidence[used],
        bins.frequency[used],
        "o-",
        lw=1.6,
        color="tab:blue",
        label=f"ECE {scores['ece']:.3f}, Brier {scores['brier']:.3f}",
    )
    what = "fraction positive" if bins.binary else "accuracy"
    ax.set(ylabel=f"observed {what}", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper left", fontsize=8)
    width = np.diff(bins.edges)
    hist.bar(bins.edges[:-1], bins.count[:-1], width=width, align="edge", color="tab:blue")
    hist.bar([1.0], bins.count[-1:], width=0.01, color="tab:blue")  # scores of exactly 1.0
    hist.set(xlabel="predicted p(positive)" if bins.binary else "confidence", ylabel="images")
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_confusion(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: Path,
    title: str = "Confusion matrix",
) -> Path:
    """Counts with row-normalised shading (rows: true class, columns: predicted)."""
    counts = np.asarray(matrix, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    side = max(3.6, 0.55 * n + 2.4)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{counts[i, j]}", ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(
        range(n), class_names, rotation=45 if n > 2 else 0, ha="right" if n > 2 else "center"
    )
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)
