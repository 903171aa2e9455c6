"""The charts of an Optuna search, as PNG bytes (matplotlib's Agg canvas, no pyplot).

Drawn here rather than with ``optuna.visualization.matplotlib``: that module uses pyplot
(global state, in the sweep's launching process) and is experimental in Optuna 2.
"""

from __future__ import annotations

import math
from typing import Any

from fracture_lit.results.charts import png
from fracture_lit.results.search_insight import SearchInsight, TrialRow

__all__ = ["history_chart", "importance_chart", "parallel_chart"]

_STATE_STYLE = {
    "COMPLETE": {"color": "#2f6fdf", "marker": "o", "label": "completed"},
    "PRUNED": {"color": "#d9822b", "marker": "x", "label": "pruned (last reported value)"},
}


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def importance_chart(insight: SearchInsight) -> bytes | None:
    """Horizontal bars of each parameter's importance, the most important on top."""
    if not insight.importance:
        return None
    names = list(insight.importance)[::-1]
    fig, ax = _figure(6.4, 0.5 + 0.45 * len(names))
    ax.barh(names, [insight.importance[n] for n in names], color="#2f6fdf")
    ax.set_xlabel(f"importance for {insight.monitor} (mean decrease in impurity)")
    ax.set_xlim(0, 1)
    for y, name in enumerate(names):
        ax.text(insight.importance[name] + 0.01, y, f"{insight.importance[name]:.2f}", va="center")
    return png(fig)


def history_chart(insight: SearchInsight) -> bytes | None:
    """Each trial's objective in trial order, and the best value so far."""
    shown = [t for t in insight.trials if t.value is not None and t.state in _STATE_STYLE]
    if not shown:
        return None
    fig, ax = _figure(6.4, 3.6)
    for state, style in _STATE_STYLE.items():
        points = [t for t in shown if t.state == state]
        if points:
            ax.scatter(
                [t.number for t in points],
                [t.value for t in points],
                color=style["color"],
                marker=style["marker"],
                label=style["label"],
                zorder=3,
            )
    best_x, best_y, best = [], [], None
    for trial in sorted(shown, key=lambda t: t.number):
        if trial.state != "COMPLETE":
            continue
        if best is None or (trial.value > best if insight.maximize else trial.value < best):
            best = trial.value
        best_x.append(trial.number)
        best_y.append(best)
    if best_x:
        ax.step(best_x, best_y, where="post", color="#1f9d55", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    values = [t.value for t in shown]
    if min(values) > 0 and max(values) / min(values) > 1e3:  # a diverged trial
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel(insight.monitor)
    ax.set_title(f"Optimisation history ({insight.direction})")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def _axis(trials: list[TrialRow], name: str, log: bool) -> tuple[list[float | None], list[str]]:
    """A parameter's values scaled to [0, 1] (categories evenly spaced), and the labels
    of the axis's bottom and top."""
    values = [t.params.get(name) for t in trials]
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values if v is not None
    )
    if not numeric:
        categories = sorted({repr(v) for v in values if v is not None})
        spread = max(1, len(categories) - 1)
        scaled = [None if v is None else categories.index(repr(v)) / spread for v in values]
        return scaled, [categories[0], categories[-1]] if categories else ["", ""]
    raw = [None if v is None else (math.log10(v) if log and v > 0 else float(v)) for v in values]
    present = [v for v in raw if v is not None]
    low, high = (min(present), max(present)) if present else (0.0, 1.0)
    span = (high - low) or 1.0
    scaled = [None if v is None else (v - low) / span for v in raw]

    def label(x: float) -> str:
        return f"{10**x:.3g}" if log else f"{x:.3g}"

    return scaled, [label(low), label(high)]


def parallel_chart(insight: SearchInsight) -> bytes | None:
    """One line per trial through each parameter's axis and the objective's, coloured by
    the objective (completed trials) or grey and dashed (pruned)."""
    trials = [t for t in insight.trials if t.value is not None and t.state in _STATE_STYLE]
    names = insight.param_names
    if len(trials) < 2 or not names:
        return None
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    axes = [_axis(trials, n, n in insight.log_params) for n in names]
    # The objective's axis and colours span the completed trials; a pruned trial's value
    # (often far off: that is why it was pruned) is drawn at the axis's end.
    done = [t.value for t in trials if t.state == "COMPLETE"] or [t.value for t in trials]
    low, high = min(done), max(done)
    span = (high - low) or 1.0
    objective = [min(1.05, max(-0.05, (t.value - low) / span)) for t in trials]
    axes.append((objective, [f"{low:.5g}", f"{high:.5g}"]))
    labels = [*names, insight.monitor]
    fig, ax = _figure(max(6.4, 1.9 * len(labels)), 4.0)
    cmap = colormaps["viridis" if insight.maximize else "viridis_r"]
    norm = Normalize(low, high)
    xs = list(range(len(labels)))
    for i, trial in enumerate(trials):
        ys = [axis[0][i] for axis in axes]
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if trial.state == "COMPLETE":
            style = {"color": cmap(norm(trial.value)), "linewidth": 1.8, "alpha": 0.9}
        else:
            style = {"color": "#9aa5b1", "linewidth": 1.0, "linestyle": "--", "alpha": 0.8}
        ax.plot([p[0] for p in points], [p[1] for p in points], **style)
    for x, (_, (bottom, top)) in zip(xs, axes, strict=True):
        ax.axvline(x, color="#52606d", linewidth=0.8)
        ax.text(x, -0.06, bottom, ha="center", va="top", fontsize=8)
        ax.text(x, 1.06, top, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{n} (log)" if n in insight.log_params else n for n in labels], fontsize=8)
    ax.tick_params(axis="x", pad=18)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_title("Parallel coordinates (dashed grey: pruned)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return png(fig)
