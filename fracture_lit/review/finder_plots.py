"""The learning-rate finder's curve as a PNG, the suggestion marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_lr_curve"]


def plot_lr_curve(
    lrs: Sequence[float], losses: Sequence[float], suggestion: float | None, out: Path
) -> Path:
    """Loss against learning rate (log axis), with the suggested rate as a red point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(lrs, losses, color="#2f6fdf", label="training loss (smoothed)")
    if suggestion is not None and suggestion in lrs:
        i = list(lrs).index(suggestion)
        ax.scatter(
            [suggestion],
            [losses[i]],
            s=80,
            color="#d64545",
            zorder=3,
            label=f"suggestion {suggestion:.3g} (steepest descent)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("Learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    return out
