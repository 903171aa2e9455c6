"""The end-of-run summary: ``metrics.json`` in the run folder and a table on the console."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# Rows of the final table, in reading order: (metric key without stage, label).
TABLE_ROWS = (
    ("loss", "loss"),
    ("acc", "accuracy"),
    ("balanced_acc", "balanced accuracy"),
    ("precision", "precision"),
    ("recall", "sensitivity (recall)"),
    ("specificity", "specificity"),
    ("f1", "F1"),
    ("auroc", "AUROC"),
    ("kappa", "Cohen's kappa"),
)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _ci(summary: dict[str, Any], key: str, which: str = "ci95") -> str:
    interval = summary.get(which, {}).get(key)
    return f" [{interval[1]:.3f}, {interval[2]:.3f}]" if interval else ""


def metrics_table(results: dict[str, Any], title: str) -> Table:
    """Validation (best checkpoint) beside test, with bootstrap 95% intervals."""
    table = Table(title=title, title_style="bold")
    table.add_column("metric")
    stages = [s for s in ("val", "test", "eval") if s in results]
    labels = {
        "val": "validation, best ckpt (95% CI)",
        "test": "test (95% CI)",
        "eval": f"{results.get('split', 'eval')} at threshold {results.get('threshold', 0.5):.3f} (95% CI)",
    }
    for stage in stages:
        table.add_column(labels[stage], justify="right")
    for key, label in TABLE_ROWS:
        cells = []
        for stage in stages:
            value = results[stage].get("metrics", {}).get(f"{stage}/{key}")
            cells.append(_fmt(value) + _ci(results[stage], key))
        if any(cell != "-" for cell in cells):  # eval has no loss: no empty row for it
            table.add_row(label, *cells)
    val = results.get("val", {}).get("metrics", {})
    if "val/youden_threshold" in val:
        cells = [
            f"{val['val/youden_threshold']:.3f} (sens {val['val/youden_sensitivity']:.3f}, "
            f"spec {val['val/youden_specificity']:.3f})"
        ]
        test = results.get("test", {}).get("metrics", {})
        if "test/recall_at_thr" in test:
            summary = results["test"]
            cells.append(
                f"sens {test['test/recall_at_thr']:.3f}{_ci(summary, 'recall', 'ci95_at_thr')}, "
                f"spec {test['test/specificity_at_thr']:.3f}"
                f"{_ci(summary, 'specificity', 'ci95_at_thr')}"
            )
        table.add_row("Youden threshold (from val)", *cells[: len(stages)])
    return table


def write_summary(results: dict[str, Any], output_dir: Path) -> Path:
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    return path


def print_summary(results: dict[str, Any], title: str, console: Console | None = None) -> None:
    (console or Console()).print(metrics_table(results, title))
