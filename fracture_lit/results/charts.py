"""Charts of the reports, drawn with matplotlib's Agg canvas into PNG bytes.

No pyplot (no global state, no display): this runs in a sweep's launcher process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import JobResult, float_or_none, read_csv

__all__ = ["best_epoch", "comparison_chart", "learning_curves", "png"]

# (csv column, legend label, line style) per learning-curve panel.
_CURVES = (
    ("loss", (("train/loss", "train", "-"), ("val/loss", "val", "-"))),
    ("metric", (("val/auroc", "val AUROC", "-"), ("val/acc", "val accuracy", "--"))),
)


def png(fig: Any) -> bytes:
    """Render a matplotlib Figure with the Agg canvas (no pyplot, no display, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def best_epoch(best_model_path: Any) -> int | None:
    """The epoch of the best checkpoint, from its file name (``epoch_003.ckpt``)."""
    match = re.search(r"epoch[_=]?(\d+)", Path(str(best_model_path or "")).name)
    return int(match[1]) if match else None


def _epoch_series(
    rows: Sequence[dict[str, str]], column: str, epochs: set[int] | None = None
) -> list[tuple[int, float]]:
    """``(epoch, value)`` for a column of the sparse CSVLogger rows: last value per epoch."""
    by_epoch: dict[int, float] = {}
    for row in rows:
        epoch, value = float_or_none(row.get("epoch")), float_or_none(row.get(column))
        if epoch is not None and value is not None and (epochs is None or int(epoch) in epochs):
            by_epoch[int(epoch)] = value
    return sorted(by_epoch.items())


def _fit_epochs(rows: Sequence[dict[str, str]]) -> set[int] | None:
    """Epochs that trained (have a ``train/`` value); None when nothing trained.

    After fitting, train.py re-validates the best checkpoint and tests it; Lightning logs
    those rows under the next epoch number, which is not a training epoch of the curves.
    """
    found = {
        int(epoch)
        for row in rows
        if (epoch := float_or_none(row.get("epoch"))) is not None
        and any(k.startswith("train/") and v for k, v in row.items() if k)
    }
    return found or None


def learning_curves(run_dir: Path, best_epoch: int | None = None) -> bytes | None:
    """Loss and validation metrics per epoch as a PNG; None without logged epochs."""
    path = RunLayout(run_dir).find_metrics_csv()
    rows = read_csv(path) if path else []
    epochs = _fit_epochs(rows)
    panels = []
    for name, columns in _CURVES:
        lines = []
        for column, label, style in columns:
            series = _epoch_series(rows, column, epochs)
            if not series and column == "train/loss":
                series = _epoch_series(rows, "train/loss_epoch", epochs)
            if series:
                lines.append((series, label, style))
        if lines:
            panels.append((name, lines))
    if not panels:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * len(panels), 3.0))
    for i, (name, lines) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for series, label, style in lines:
            xs, ys = zip(*series, strict=True)
            ax.plot(xs, ys, style, marker="o", markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#9aa5b1", lw=1, ls=":", label="best checkpoint")
        ax.set_xlabel("epoch")
        ax.set_title("loss" if name == "loss" else "validation metrics", fontsize=10)
        if name == "metric":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        shown = sorted({e for series, _, _ in lines for e, _ in series})
        if len(shown) <= 20:
            ax.set_xticks(shown)
        ax.set_xlim(min(shown) - 0.5, max(shown) + 0.5)
    fig.tight_layout()
    return png(fig)


# ----------------------------------------------------------------------------- a sweep
def comparison_chart(jobs: Sequence[JobResult]) -> bytes | None:
    """AUROC and accuracy per job with their 95% CI (test, else validation), paper as ×."""
    stage = "test" if any("test" in j.metrics for j in jobs) else "val"
    shown = [j for j in jobs if j.metrics.get(stage)]
    if not shown:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(16.0, max(6.0, 1.0 * len(shown) + 2.5)), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(shown)))
    for offset, (column, label, color) in zip(
        (-0.12, 0.12), (("auroc", "AUROC", "#2563eb"), ("acc", "accuracy", "#d97706")), strict=True
    ):
        xs, ys, lows, highs = [], [], [], []
        for i, job in enumerate(shown):
            point, low, high = job.metrics[stage].get(column, (None, None, None))
            if point is None:
                continue
            xs.append(i + offset)
            ys.append(point)
            lows.append(point - low if low is not None else 0.0)
            highs.append(high - point if high is not None else 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o", capsize=4, color=color, label=label)
        papers = [
            (i + offset, j.paper[stage][column])
            for i, j in enumerate(shown)
            if column in j.paper.get(stage, {})
        ]
        if papers:
            px, py = zip(*papers, strict=True)
            ax.scatter(px, py, marker="x", s=50, color=color, label=f"{label} (paper)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{j.num}\n{j.backbone or '?'}" for j in shown], fontsize=8)
    ax.set_ylim(-0.02, 1.05)
    ax.axhline(0.5, color="#9aa5b1", lw=0.8, ls=":")
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel("job")
    ax.set_title(f"{'Test' if stage == 'test' else 'Validation'} metrics, 95% CI", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png(fig)
