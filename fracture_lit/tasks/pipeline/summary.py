"""The pipeline's summary: both stages, the filter, the end-to-end estimate; table and json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from fracture_lit.layout import RunLayout
from fracture_lit.tasks.pipeline.stages import Stage

__all__ = ["end_to_end_estimate", "stage1_summary", "stage2_summary", "summary_table",
           "write_json"]  # fmt: skip


def end_to_end_estimate(pass_rate: float, stage2_test_acc: float | None) -> float | None:
    """Share of stage-2 images the whole pipeline would type correctly: an *estimate*.

    An image the detector rejects never gets a subtype, so it counts as wrong; of those it
    passes, stage 2 gets its test accuracy right. The product assumes the detector passes
    stage 2's test images at the rate it passes all of them, and that stage 2 is as
    accurate on every passed image as on its test split.
    """
    if stage2_test_acc is None or math.isnan(pass_rate):
        return None
    return pass_rate * stage2_test_acc


def _metric(results: dict[str, Any], split: str, key: str) -> float | None:
    value = results.get(split, {}).get("metrics", {}).get(f"{split}/{key}")
    return None if value is None else float(value)


def stage1_summary(stage: Stage, results: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": results["status"],
        "output_dir": str(stage.output_dir),
        "backbone": results.get("backbone"),
        "best_model_path": results.get("best_model_path"),
        "val_auroc": _metric(results, "val", "auroc"),
        "test_auroc": _metric(results, "test", "auroc"),
        "youden_threshold": _metric(results, "val", "youden_threshold"),
        "val_sensitivity_at_youden": _metric(results, "val", "youden_sensitivity"),
        "val_specificity_at_youden": _metric(results, "val", "youden_specificity"),
        "test_sensitivity_at_youden": _metric(results, "test", "recall_at_thr"),
        "test_specificity_at_youden": _metric(results, "test", "specificity_at_thr"),
    }


def stage2_summary(stage: Stage, results: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": results["status"],
        "output_dir": str(stage.output_dir),
        "backbone": results.get("backbone"),
        "classes": results.get("classes"),
        "best_model_path": results.get("best_model_path"),
        "val_acc": _metric(results, "val", "acc"),
        "test_acc": _metric(results, "test", "acc"),
        "test_macro_f1": _metric(results, "test", "f1"),
        "n_test": results.get("test", {}).get("n"),
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def summary_table(summary: dict[str, Any]) -> Any:
    """The pipeline at a glance: detector, filter, subtype classifier, end to end."""
    s1, thr = summary.get("stage1", {}), summary.get("threshold", {})
    table = Table(title=f"fracture_lit · {summary['task_name']}", title_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("[bold]stage 1[/] detector", str(s1.get("backbone", "-")))
    table.add_row(
        "  AUROC val / test", f"{_fmt(s1.get('val_auroc'))} / {_fmt(s1.get('test_auroc'))}"
    )
    table.add_row("  Youden threshold (val)", _fmt(s1.get("youden_threshold")))
    table.add_row(
        "  sens / spec at Youden, val",
        f"{_fmt(s1.get('val_sensitivity_at_youden'), 3)} / "
        f"{_fmt(s1.get('val_specificity_at_youden'), 3)}",
    )
    table.add_row(
        "  sens / spec at Youden, test",
        f"{_fmt(s1.get('test_sensitivity_at_youden'), 3)} / "
        f"{_fmt(s1.get('test_specificity_at_youden'), 3)}",
    )
    if thr:
        table.add_section()
        table.add_row(f"[bold]filter[/] threshold ({thr['source']})", _fmt(thr["used"]))
    if "detector_on_stage2" in summary:
        counts = summary["detector_on_stage2"]
        table.add_row(
            "  passed, all stage-2 images",
            f"{counts['passed']}/{counts['n']} ({_fmt(counts['pass_rate'], 3)})",
        )
        for name, c in counts["per_class"].items():
            table.add_row(
                f"  passed, {name}", f"{c['passed']}/{c['n']} ({_fmt(c['pass_rate'], 3)})"
            )
    if "stage2" in summary:
        s2 = summary["stage2"]
        table.add_section()
        table.add_row("[bold]stage 2[/] subtypes (passed images)", str(s2.get("backbone", "-")))
        table.add_row("  test accuracy", f"{_fmt(s2.get('test_acc'))} (n={s2.get('n_test')})")
        table.add_row("  test macro-F1", _fmt(s2.get("test_macro_f1")))
    if summary.get("end_to_end_accuracy_estimate") is not None:
        table.add_section()
        table.add_row(
            "[bold]end to end[/] accuracy, estimate", _fmt(summary["end_to_end_accuracy_estimate"])
        )
        table.add_row("  = pass rate x stage-2 test acc", "rejected images count as wrong")
    return table


def write_json(summary: dict[str, Any], run_dir: Path) -> None:
    """``pipeline.json``: what :func:`~.runner.run_pipeline` returns."""
    # Not sorted: per-class entries stay in label order, sections in pipeline order.
    RunLayout(run_dir).pipeline.write_text(json.dumps(summary, indent=2))
