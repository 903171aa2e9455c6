"""The HTML page of one run, evaluation or sweep job: ``<folder>/report.html``.

Everything in it is read from files the run already wrote, so any subset of them is fine:

* ``metrics.json``: title, per-stage metrics with 95% bootstrap intervals at 0.5 and at the
  decision threshold, confusion matrices (as HTML tables, so they exist without images),
  the error of a failed job, the per-subgroup tables (region, view, hardware);
* ``csv/metrics.csv`` (Lightning's CSVLogger): learning curves (:mod:`.charts`);
* ``review/<split>/*.png`` and ``review/gradcam/`` (+ ``index.csv``): confusion / ROC / PR
  plots and the Grad-CAM gallery (fixed set and worst misclassified; :mod:`.html_gradcam`);
* ``metrics.json``'s ``localization`` and ``review/<split>/localization/``: Grad-CAM
  scored against annotated regions, with outlined panels (:mod:`.localization`);
* ``config.yaml``: the resolved config, collapsed.

Where each file lies is :class:`fracture_lit.layout.RunLayout`'s.
Metric rows follow :mod:`.catalogue`. :mod:`.html_sweep` reuses :func:`run_sections` for
each job of a sweep.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.layout import ReviewLayout, RunLayout
from fracture_lit.results.card_model import weights_line
from fracture_lit.results.charts import best_epoch, learning_curves
from fracture_lit.results.folders import float_or_none, read_csv
from fracture_lit.results.html_gradcam import SPLIT_ORDER, gradcam_gallery
from fracture_lit.results.html_page import (
    IMAGE_SUFFIXES,
    esc,
    figure,
    html_table,
    image_file,
    output_path,
    page,
    write_atomic,
)
from fracture_lit.results.localization import localization_section
from fracture_lit.results.model_card import try_write_model_card
from fracture_lit.results.run_folder import RunFolder, load_run
from fracture_lit.results.table import interval_cell, status_badge
from fracture_lit.stats import MIN_IMAGES_FOR_CI
from fracture_lit.stats.catalogue import by_key, format_value, ordered_keys, subgroup_metrics
from fracture_lit.utils.job_folder import FINISHED_STATUSES

__all__ = ["SWEEP_CAMS_PER_KIND", "run_sections", "try_write_run_report", "write_run_page",
           "write_run_report"]  # fmt: skip

#: Grad-CAM panels per kind (fixed / worst) of one split shown per job on the sweep page.
SWEEP_CAMS_PER_KIND = 4


# Keys of a stage's metrics that are not rows of its table (shown elsewhere or redundant).
_NOT_ROWS = re.compile(r"^(loss|threshold|auroc_best|youden_.*|.*_at_thr)$")


_STAGE_TITLES = {
    "val": "Validation (best checkpoint)",
    "test": "Test",
    "external": "External test: the held-out source",
    "eval": "Evaluation",
}


_REVIEW_IMAGES = (
    (ReviewLayout.CONFUSION, "Confusion matrix"),
    (ReviewLayout.ROC, "ROC curve"),
    (ReviewLayout.RELIABILITY, "Reliability diagram"),
    (ReviewLayout.PR, "Precision-recall curve"),
)


def _default_rule(run: RunFolder) -> str:
    """How the plain columns decide: argmax (multi-class), else p > 0.5 for training runs and
    p > the evaluation's threshold (the checkpoint's, or a given one) for an evaluation."""
    if len(run.classes) > 2:
        return "argmax"
    if run.is_eval:
        threshold = float_or_none(run.summary.get("threshold"))
        if threshold is not None:
            return f"at p > {threshold:.3f}"
    return "at p > 0.5"


def _stage_threshold(run: RunFolder, stage: str) -> tuple[float | None, str]:
    """The decision threshold a stage's ``*_at_thr`` numbers use, and where it came from."""
    block = run.summary.get(stage) or {}
    metrics = block.get("metrics") or {}
    if stage == "eval" or run.is_eval:
        value = float_or_none(run.summary.get("threshold"))
        if value is None:
            value = float_or_none(metrics.get(f"{stage}/threshold"))
        return value, str(run.summary.get("threshold_source") or "")
    value = float_or_none(metrics.get(f"{stage}/threshold"))
    if value is not None:
        return value, "Youden's J on validation"
    value = float_or_none(metrics.get(f"{stage}/youden_threshold"))
    if value is not None:
        return value, "chosen here (Youden's J); applied to test"
    return None, ""


def _label(key: str) -> str:
    metric = by_key(key)
    return metric.label if metric else key


def _metric_keys(block: dict[str, Any]) -> list[str]:
    """The block's metric keys that are table rows, in catalogue order."""
    keys = {k.split("/", 1)[-1] for k in (block.get("metrics") or {})} | set(
        block.get("ci95") or {}
    )
    return ordered_keys(k for k in keys if not _NOT_ROWS.match(k))


def _cell(point: float | None, ci: Any) -> str:
    low = high = None
    if isinstance(ci, list | tuple) and len(ci) == 3:
        low, high = float_or_none(ci[1]), float_or_none(ci[2])
        if point is None:
            point = float_or_none(ci[0])
    return interval_cell((point, low, high))


def _stage_table(run: RunFolder, stage: str) -> str:
    """Metric rows: value [95% CI] at 0.5, at the decision threshold, and the paper's number."""
    block = run.summary.get(stage) or {}
    metrics, ci95 = block.get("metrics") or {}, block.get("ci95") or {}
    ci_thr = block.get("ci95_at_thr") or {}
    threshold, source = _stage_threshold(run, stage)
    prefix = f"{stage}/"
    has_thr = bool(ci_thr) or any(k.endswith("_at_thr") for k in metrics)
    paper = (run.job.paper.get(stage, {}) if run.job else {}) if stage in ("val", "test") else {}
    headers = ["metric", f"{_default_rule(run)} [95% CI]"]
    if has_thr:
        headers.append(f"at threshold {format_value(threshold)} [95% CI]")
    if paper:
        headers.append("paper")
    rows = []
    for key in _metric_keys(block):
        point = float_or_none(metrics.get(prefix + key))
        row = [_label(key), _cell(point, ci95.get(key))]
        if has_thr:
            at_thr = float_or_none(metrics.get(f"{prefix}{key}_at_thr"))
            row.append(_cell(at_thr, ci_thr.get(key)))
        if paper:
            value = paper.get(key)
            row.append("-" if value is None else f"{round(value, 4):g}")
        rows.append(row)
    notes = [f"n = {block['n']}"] if isinstance(block.get("n"), int) else []
    loss = float_or_none(metrics.get(prefix + "loss"))
    if loss is not None:
        notes.append(f"loss {loss:.4f}")
    if threshold is not None:
        notes.append(f"decision threshold {threshold:.4f}" + (f" ({source})" if source else ""))
    youden = [
        float_or_none(metrics.get(f"{prefix}youden_{k}")) for k in ("sensitivity", "specificity")
    ]
    if stage == "val" and None not in youden:
        notes.append(f"at that threshold: sensitivity {youden[0]:.3f}, specificity {youden[1]:.3f}")
    if not rows:
        return f'<p class="note">No metrics recorded for {esc(stage)}.</p>'
    return (
        html_table(headers, rows, right=range(1, len(headers)))
        + f'<p class="meta">{esc("; ".join(notes))}</p>'
    )


def _confusion_table(matrix: Any, classes: Sequence[str]) -> str:
    """Counts with the row percentage (per true class), shaded by that percentage."""
    if not (isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix)):
        return ""
    names = list(classes) if len(classes) == len(matrix) else [str(i) for i in range(len(matrix))]
    head = "".join(f"<th>pred. {esc(n)}</th>" for n in names)
    rows = []
    for name, counts in zip(names, matrix, strict=False):
        total = sum(c for c in counts if isinstance(c, int | float)) or 0
        cells = []
        for count in counts:
            share = count / total if total else 0.0
            color = "#fff" if share > 0.55 else "#1f2933"
            cells.append(
                f'<td style="background: rgba(37, 99, 235, {0.85 * share:.2f}); color: {color}">'
                f"{esc(count)}<small>{100 * share:.0f}%</small></td>"
            )
        rows.append(f"<tr><th>true {esc(name)}</th>{''.join(cells)}</tr>")
    return (
        f'<table class="cm"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _confusions(run: RunFolder, heading: str = "h3") -> str:
    parts = []
    for stage in run.stages:
        table = _confusion_table(
            (run.summary.get(stage) or {}).get("confusion_matrix"), run.classes
        )
        if table:
            title = _STAGE_TITLES.get(stage, stage)
            parts.append(f"<div><h4>{esc(title)}</h4>{table}</div>")
    if not parts:
        return ""
    return (
        f"<{heading}>Confusion matrices</{heading}>"
        '<p class="meta">Rows: true class; percentages of the row (recall per class). '
        f"Counts {esc(_default_rule(run))}.</p>"
        f'<div class="row">{"".join(parts)}</div>'
    )


def _splits(review: ReviewLayout) -> list[Path]:
    found = review.split_folders()
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def _predictions_note(path: Path) -> str:
    rows = read_csv(path)
    if not rows:
        return ""
    note = f"{len(rows)} predictions in {RunLayout.REVIEW}/{path.parent.name}/{path.name}"
    if {"label", "predicted"} <= set(rows[0]):
        wrong = sum(r["label"] != r["predicted"] for r in rows)
        note += f", {wrong} misclassified"
    return f'<p class="meta">{esc(note)}.</p>'


def _review_images(run: RunFolder) -> str:
    """``review/<split>/``: confusion, ROC and PR plots first, any other image after."""
    parts = []
    review = RunLayout(run.folder).review
    for split in _splits(review):
        figures = []
        known = {name for name, _ in _REVIEW_IMAGES}
        for name, caption in _REVIEW_IMAGES:
            if (split / name).is_file():
                figures.append(image_file(split / name, f"{caption} ({split.name})"))
        for path in sorted(split.iterdir()):
            if path.name not in known and path.suffix.lower() in IMAGE_SUFFIXES:
                figures.append(image_file(path, f"{path.stem} ({split.name})"))
        note = _predictions_note(review.predictions(split.name))
        if figures or note:
            parts.append(
                f"<h3>{esc(_STAGE_TITLES.get(split.name, split.name))} "
                f"(review/{esc(split.name)})</h3>{note}"
                f'<div class="row">{"".join(figures)}</div>'
            )
    return "".join(parts)


def _subgroup_cell(key: str, block: dict[str, Any]) -> str:
    """One subgroup metric; ``-`` where it is undefined (sensitivity without a positive)."""
    n, positives = block.get("n"), block.get("n_positive")
    defined = not (isinstance(n, int) and isinstance(positives, int)) or (
        not (key == "recall" and positives == 0) and not (key == "specificity" and positives == n)
    )
    if not defined:
        return "-"
    metrics = {k.split("/", 1)[-1]: v for k, v in (block.get("metrics") or {}).items()}
    return _cell(float_or_none(metrics.get(key)), (block.get("ci95") or {}).get(key))


def _subgroups(run: RunFolder) -> str:
    """Per-subgroup n, sensitivity, specificity, AUROC (95% CI from 10 images up)."""
    parts = []
    for split, attributes in run.subgroups.items():
        for attribute, groups in attributes.items():
            keys = [
                m.key
                for m in subgroup_metrics()
                if any(m.key in _metric_keys(b) for b in groups.values() if isinstance(b, dict))
            ]
            rows = []
            for value, block in groups.items():
                block = block if isinstance(block, dict) else {}
                n, positives = block.get("n"), block.get("n_positive")
                row = [str(value), "-" if n is None else str(n)]
                row.append("-" if positives is None else str(positives))
                row += [_subgroup_cell(k, block) for k in keys]
                rows.append(row)
            headers = [attribute, "n", "n positive", *(_label(k) for k in keys)]
            table = html_table(headers, rows, right=range(1, len(headers)))
            parts.append(
                f"<h3>Per {esc(attribute)} — {esc(split)} (95% CI)</h3>"
                f'<div class="scroll">{table}</div>'
            )
    if not parts:
        return ""
    note = (
        f"Subgroups of fewer than {MIN_IMAGES_FOR_CI} images get point estimates only; "
        "sensitivity is undefined without a positive image, specificity without a negative."
    )
    return f'<h2>Subgroups</h2><p class="meta">{esc(note)}</p>{"".join(parts)}'


def _run_header(run: RunFolder) -> str:
    s, job = run.summary, run.job
    badge = status_badge(run.status)
    lines = [
        f'<h1>{esc(run.title)} <span class="badge {badge}">{esc(run.status)}</span></h1>',
        f'<p class="meta">Folder: <code>{esc(run.folder)}</code></p>',
    ]
    facts: list[str] = []
    overrides = s.get("job") or (" ".join(job.overrides) if job and job.overrides else "")
    if overrides:
        facts.append(f"overrides: {overrides}")
    if run.is_eval:
        for key in ("split", "ckpt_path", "threshold_source"):
            if s.get(key) is not None:
                facts.append(f"{key.replace('_', ' ')}: {s[key]}")
    if s.get("epochs") is not None:
        facts.append(
            f"epochs: {s['epochs']}" + (" (stopped early)" if s.get("stopped_early") else "")
        )
    wall = float_or_none(s.get("wall_time_s"))
    if wall is not None:
        facts.append(f"wall time: {wall:.1f} s")
    if s.get("best_model_path"):
        facts.append(f"best checkpoint: {s['best_model_path']}")
    if isinstance(s.get("starting_weights"), dict):
        facts.append(
            "starting weights: " + weights_line(s["starting_weights"], {}).replace("`", "")
        )
    if job and (job.paper_id or job.paper_title):
        facts.append("paper: " + " · ".join(x for x in (job.paper_id, job.paper_title) if x))
    lines += [f'<p class="meta">{esc(f)}</p>' for f in facts]
    return "".join(lines)


def _error_block(run: RunFolder) -> str:
    if not run.error and run.status in FINISHED_STATUSES:
        return ""
    text = run.error or "failed (no error recorded)"
    out = f'<div class="error">{esc(text)}</div>'
    tb = run.summary.get("traceback")
    if isinstance(tb, str) and tb.strip():
        out += f"<details><summary>Traceback</summary><pre>{esc(tb)}</pre></details>"
    return out


def run_sections(run: RunFolder, level: int = 2, full: bool = True) -> list[str]:
    """The body of a run: a full report, or (``full=False``) a sweep's job section."""
    h = f"h{level}"
    parts = [_error_block(run)]
    for stage in run.stages:
        title = _STAGE_TITLES.get(stage, stage)
        if stage == "eval" and run.summary.get("split"):
            title += f" on {run.summary['split']}"
        parts.append(f"<{h}>{esc(title)}</{h}>{_stage_table(run, stage)}")
    parts.append(_confusions(run, h))
    curves = learning_curves(run.folder, best_epoch(run.summary.get("best_model_path")))
    if curves:
        parts.append(f"<{h}>Learning curves</{h}>")
        parts.append(figure(curves, "per epoch, from csv/metrics.csv", "wide"))
    if full:
        images = _review_images(run)
        if images:
            parts.append(f"<{h}>Review plots</{h}>{images}")
        parts.append(_subgroups(run))
    parts.append(gradcam_gallery(run, h, per_group=None if full else SWEEP_CAMS_PER_KIND))
    parts.append(localization_section(run, h, full))
    if full and run.config:
        parts.append(
            "<details><summary>Resolved config (config.yaml)</summary>"
            f"<pre>{esc(run.config)}</pre></details>"
        )
    return [p for p in parts if p]


def write_run_report(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Write the self-contained ``report.html`` of a run, evaluation or sweep-job folder.

    ``out`` is the file to write (a folder gets ``report.html`` inside); by default the run
    folder's own ``report.html``. Works with any subset of the folder's files.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder")
    return write_run_page(load_run(run_dir), output_path(RunLayout(run_dir).report, out))


def try_write_run_report(run_dir: Path | str) -> Path | None:
    """:func:`write_run_report` at the end of a train/eval run, and the run's
    ``model_card.md`` beside it: logs the paths, and a page or card that cannot be written
    is a warning, never a failed run (the results are on disk)."""
    import logging

    logger = logging.getLogger("fracture_lit.report")
    try_write_model_card(run_dir)
    try:
        path = write_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the run is done; the page is extra
        logger.warning("Could not write report.html: %s: %s", type(error).__name__, error)
        return None
    logger.info("Report: %s", path)
    return path


def write_run_page(run: RunFolder, path: Path) -> Path:
    body = [_run_header(run), *run_sections(run, level=2, full=True)]
    return write_atomic(path, page(f"{run.title} ({run.status})", body))
