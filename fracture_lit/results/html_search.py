"""The "Search" section of an Optuna sweep's ``report.html``: importance, history,
parallel coordinates, the trials and the best trial's ready-to-run config."""

from __future__ import annotations

from pathlib import Path

from fracture_lit.layout import SweepLayout
from fracture_lit.results.html_page import esc, figure, html_table
from fracture_lit.results.search_charts import history_chart, importance_chart, parallel_chart
from fracture_lit.results.search_insight import SearchInsight

__all__ = ["search_sections"]


def _summary(insight: SearchInsight) -> str:
    counts = ", ".join(
        f"{insight.count(state)} {word}"
        for state, word in (("COMPLETE", "completed"), ("PRUNED", "pruned"), ("FAIL", "failed"))
        if insight.count(state) or state == "COMPLETE"
    )
    running = insight.count("RUNNING")
    if running:
        counts += f", {running} unfinished (resume the search to finish them)"
    pruner = f"{insight.pruner} pruner" if insight.pruner != "none" else "no pruner"
    return (
        f'<p class="meta">Study <code>{esc(insight.study_name)}</code>: '
        f"{len(insight.trials)} trials ({esc(counts)}); {esc(insight.direction)} "
        f"<code>{esc(insight.monitor)}</code>, {esc(pruner)}.</p>"
    )


def _best(insight: SearchInsight, best_config: Path | None) -> str:
    best = insight.best
    if best is None:
        return '<p class="meta">No completed trial yet.</p>'
    params = " ".join(f"{k}={v}" for k, v in best.params.items())
    out = (
        f'<p>Best trial <a href="#job-{best.number}">{best.number}</a>: '
        f"{esc(insight.monitor)} = {best.value:.4f} with <code>{esc(params)}</code></p>"
    )
    if best_config is not None:
        command = (
            f"python -m fracture_lit.train --config-dir {insight.sweep_dir} "
            f"--config-name {Path(SweepLayout.BEST_CONFIG).stem}"
        )
        out += (
            f'<p class="meta">Its config, ready to run: <a href="{esc(SweepLayout.BEST_CONFIG)}">'
            f"{esc(SweepLayout.BEST_CONFIG)}</a> · <code>{esc(command)}</code></p>"
        )
    return out


def _trials_table(insight: SearchInsight) -> str:
    names = insight.param_names
    rows, classes = [], []
    for trial in insight.trials:
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        rows.append(
            [
                f'<a href="#job-{trial.number}">{trial.number}</a>',
                esc(trial.state.lower()),
                value,
                str(trial.epochs),
                *(esc(trial.params.get(n, "-")) for n in names),
            ]
        )
        classes.append("fail" if trial.state == "FAIL" else "")
    headers = ["trial", "state", insight.monitor, "epochs reported", *names]
    table = html_table(
        headers, rows, right={0, 2, 3}, row_classes=classes, raw_columns=range(len(headers))
    )
    note = (
        "A pruned trial's value is the last one it reported to the pruner (its last epoch), "
        "not a best-checkpoint evaluation."
    )
    return f'{table}<p class="meta">{esc(note)}</p>'


def search_sections(insight: SearchInsight | None, best_config: Path | None = None) -> list[str]:
    """The section's HTML parts (none when the sweep is not an Optuna search)."""
    if insight is None:
        return []
    importance = importance_chart(insight)
    parts = ["<h2>Search</h2>", _summary(insight), _best(insight, best_config)]
    parts.append("<h3>Hyperparameter importance</h3>")
    parts.append(
        figure(importance, insight.importance_note)
        if importance
        else f'<p class="meta">No importance: {esc(insight.importance_note)}.</p>'
    )
    parts.append("<h3>Optimisation history</h3>")
    parts.append(figure(history_chart(insight), "objective per trial and best so far", "wide"))
    parallel = parallel_chart(insight)
    if parallel:
        parts.append("<h3>Parallel coordinates</h3>")
        parts.append(figure(parallel, "each trial's parameters and objective", "wide"))
    parts.append("<h3>Trials</h3>" + _trials_table(insight))
    return parts
