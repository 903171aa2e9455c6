"""One self-contained HTML file per run, evaluation or sweep: ``report.html``.

Patient images must not leave the hospital, so the report is a single file that opens
offline in any browser: inline CSS, every image embedded as a ``data:`` URI, no script, no
external font, stylesheet or link (a Content-Security-Policy meta tag makes the browser
refuse any network load even if one slipped in). Everything in it is read from files the
run already wrote, so any subset of them is fine:

* ``metrics.json``: title, per-stage metrics with 95% bootstrap intervals at 0.5 and at the
  decision threshold, confusion matrices (as HTML tables, so they exist without images),
  the error of a failed job, the per-region table of an evaluation;
* ``csv/metrics.csv`` (Lightning's CSVLogger): learning curves, drawn with matplotlib (Agg);
* ``review/<split>/*.png`` and ``review/gradcam/`` (+ ``index.csv``): confusion / ROC / PR
  plots and the Grad-CAM gallery (fixed set and worst misclassified);
* ``config.yaml``: the resolved config, collapsed.

:func:`write_sweep_report_html` reuses :mod:`fracture_lit.report` (job loading, tables,
paper numbers), adds a comparison chart and one section per job, and writes each job's own
``report.html`` beside it. Only the standard library and matplotlib are used: this runs in
the sweep's launcher process, which has no torch imported.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fracture_lit.report import (
    METRICS,
    NO_METRICS_ERROR,
    JobResult,
    _error_text,
    _interval,
    _num,
    _papers,
    _shared_overrides,
    _tables,
    load_job,
    load_jobs,
    seed_groups,
)

__all__ = ["REPORT_NAME", "try_write_run_report", "write_run_report", "write_sweep_report_html"]

REPORT_NAME = "report.html"
#: Grad-CAM panels per kind (fixed / worst) of one split shown per job on the sweep page.
SWEEP_CAMS_PER_KIND = 4
#: Images above this size are left out (named, not embedded) to keep the file openable.
MAX_IMAGE_BYTES = 8 * 1024 * 1024

# Metric rows of a stage table, in this order; other keys found in metrics.json follow.
_ORDER = ("auroc", "acc", "balanced_acc", "recall", "specificity", "precision", "f1", "kappa")
_LABELS = {
    "auroc": "AUROC",
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy",
    "recall": "sensitivity (recall)",
    "specificity": "specificity",
    "precision": "precision (PPV)",
    "f1": "F1",
    "kappa": "Cohen's kappa",
}
# Keys of a stage's metrics that are not rows of its table (shown elsewhere or redundant).
_NOT_ROWS = re.compile(r"^(loss|threshold|auroc_best|youden_.*|.*_at_thr)$")
_STAGE_TITLES = {
    "val": "Validation (best checkpoint)",
    "test": "Test",
    "eval": "Evaluation",
}
_REVIEW_IMAGES = (
    ("confusion.png", "Confusion matrix"),
    ("roc.png", "ROC curve"),
    ("pr.png", "Precision-recall curve"),
)
_CAM_NAME = re.compile(r"^(?P<split>.+)_(?P<kind>fixed|worst)_(?P<index>\d+)\.(png|jpe?g)$")
_CAM_KINDS = {"fixed": "fixed set", "worst": "worst misclassified"}
_IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_SPLIT_ORDER = ("train", "val", "test", "eval")
# (csv column, legend label, line style) per learning-curve panel.
_CURVES = (
    ("loss", (("train/loss", "train", "-"), ("val/loss", "val", "-"))),
    ("metric", (("val/auroc", "val AUROC", "-"), ("val/acc", "val accuracy", "--"))),
)

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2933; background: #fff; margin: 0; padding: 24px 32px 48px; max-width: 1240px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e4e7eb; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 13px; margin: 12px 0 4px; color: #52606d; }
.meta { color: #52606d; margin: 2px 0; overflow-wrap: anywhere; }
.meta code, td code { font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; vertical-align: middle; }
.done { background: #e3f9e5; color: #05400a; }
.failed { background: #ffe3e3; color: #8a041a; }
.error { background: #fff5f5; border-left: 4px solid #e12d39; padding: 8px 12px; margin: 8px 0;
  white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d9e2ec; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; }
td { overflow-wrap: break-word; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td { background: #fff5f5; }
table.cm td { text-align: center; min-width: 88px; }
div.scroll { overflow-x: auto; max-width: 100%; }
table.cm td small { display: block; font-size: 11px; opacity: .85; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0 0 12px; }
figure img { max-width: 100%; border: 1px solid #e4e7eb; }
figure.plot img { max-width: 360px; }
figure.wide img { max-width: 100%; }
figcaption { font-size: 12px; color: #52606d; margin-top: 2px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.gallery figure img { width: 100%; }
.gallery figcaption.wrong { color: #8a041a; font-weight: 600; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f5f7fa; padding: 10px; overflow: auto; font-size: 12px; max-height: 600px; }
section.job { border-top: 3px solid #bcccdc; margin-top: 32px; }
.note { color: #7b8794; font-style: italic; }
footer { margin-top: 40px; color: #9aa5b1; font-size: 12px; }
"""
# The report never loads anything: images are data: URIs and styles are inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# ----------------------------------------------------------------------------- small helpers
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as stream:
            return list(csv.DictReader(stream))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(data: bytes | None, caption: str, cls: str = "plot", alt: str | None = None) -> str:
    if not data:
        return ""
    return (
        f'<figure class="{cls}"><img src="{_data_uri(data)}" alt="{_esc(alt or caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _image_file(path: Path, caption: str, cls: str = "plot", caption_cls: str = "") -> str:
    """An image file as an embedded <figure>; a note when it is too big or unreadable."""
    mime = _IMAGE_SUFFIXES.get(path.suffix.lower())
    try:
        size = path.stat().st_size
        if mime is None or size > MAX_IMAGE_BYTES:
            return f'<p class="note">{_esc(path.name)} not embedded ({size} bytes).</p>'
        data = path.read_bytes()
    except OSError as error:
        return f'<p class="note">{_esc(path.name)} unreadable: {_esc(error)}</p>'
    cap_cls = f' class="{caption_cls}"' if caption_cls else ""
    return (
        f'<figure class="{cls}"><img src="{_data_uri(data, mime)}" alt="{_esc(path.name)}">'
        f"<figcaption{cap_cls}>{_esc(caption)}</figcaption></figure>"
    )


def _png(fig: Any) -> bytes:
    """Render a matplotlib Figure with the Agg canvas (no pyplot, no display, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _page(title: str, body: Iterable[str]) -> str:
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head><body>",
            *body,
            f"<footer>Generated by fracture_lit.review.html on {_esc(generated)}. "
            "Self-contained: images are embedded, nothing is loaded from the network.</footer>",
            "</body></html>",
            "",
        ]
    )


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Iterable[int] = (),
    row_classes: Sequence[str] | None = None,
    raw_columns: Iterable[int] = (),
) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already HTML)."""
    right, raw = set(right), set(raw_columns)
    head = "".join(
        f'<th class="num">{_esc(h)}</th>' if i in right else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes and row_classes[r] else ""
        cells = "".join(
            ('<td class="num">' if i in right else "<td>") + (c if i in raw else _esc(c)) + "</td>"
            for i, c in enumerate(row)
        )
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# ----------------------------------------------------------------------------- one run
@dataclass
class _Run:
    """What a run / eval / job folder holds, read once and shared by both reports."""

    folder: Path
    summary: dict[str, Any]
    job: JobResult | None
    status: str
    error: str
    classes: list[str]
    curves: bytes | None = None
    config: str | None = None
    stages: list[str] = field(default_factory=list)

    @property
    def is_eval(self) -> bool:
        return self.summary.get("kind") == "eval"

    @property
    def title(self) -> str:
        s = self.summary
        parts = [
            "Evaluation" if self.is_eval else "Run",
            str(s.get("backbone") or (self.job.backbone if self.job else None) or "?"),
        ]
        if self.classes:
            parts.append(" / ".join(self.classes))
        return " · ".join(parts)


def _load_run(run_dir: Path, job: JobResult | None = None) -> _Run:
    summary = _read_json(run_dir / "metrics.json")
    if job is None:
        job = load_job(run_dir)  # overrides, backbone, the paper's numbers
    if summary:
        status = str(summary.get("status") or ("done" if summary.get("kind") == "eval" else "?"))
        error = _error_text(summary) if status not in {"done", "?"} else ""
    else:
        status = job.status if job else "failed"
        error = job.error if job else NO_METRICS_ERROR
    classes = summary.get("classes")
    stages = [
        s
        for s in (*_STAGE_TITLES, *sorted(summary))
        if isinstance(summary.get(s), dict) and isinstance(summary[s].get("metrics"), dict)
    ]
    config = None
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                config = path.read_text(errors="replace")
            except OSError:
                continue
            break
    return _Run(
        folder=run_dir,
        summary=summary,
        job=job,
        status=status,
        error=error,
        classes=[str(c) for c in classes] if isinstance(classes, list) else [],
        curves=_learning_curves(run_dir, _best_epoch(summary.get("best_model_path"))),
        config=config,
        stages=list(dict.fromkeys(stages)),
    )


def _best_epoch(best_model_path: Any) -> int | None:
    """The epoch of the best checkpoint, from its file name (``epoch_003.ckpt``)."""
    match = re.search(r"epoch[_=]?(\d+)", Path(str(best_model_path or "")).name)
    return int(match[1]) if match else None


def _metrics_csv(run_dir: Path) -> Path | None:
    """Lightning's CSVLogger file: ``csv/metrics.csv`` (or the newest ``csv/**/metrics.csv``)."""
    direct = run_dir / "csv" / "metrics.csv"
    if direct.is_file():
        return direct
    found = sorted((run_dir / "csv").glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _epoch_series(
    rows: Sequence[dict[str, str]], column: str, epochs: set[int] | None = None
) -> list[tuple[int, float]]:
    """``(epoch, value)`` for a column of the sparse CSVLogger rows: last value per epoch."""
    by_epoch: dict[int, float] = {}
    for row in rows:
        epoch, value = _float(row.get("epoch")), _float(row.get(column))
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
        if (epoch := _float(row.get("epoch"))) is not None
        and any(k.startswith("train/") and v for k, v in row.items() if k)
    }
    return found or None


def _learning_curves(run_dir: Path, best_epoch: int | None = None) -> bytes | None:
    """Loss and validation metrics per epoch as a PNG; None without logged epochs."""
    path = _metrics_csv(run_dir)
    rows = _read_csv(path) if path else []
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
    return _png(fig)


def _default_rule(run: _Run) -> str:
    """How the plain columns decide: argmax (multi-class), else p > 0.5 for training runs and
    p > the evaluation's threshold (the checkpoint's, or a given one) for an evaluation."""
    if len(run.classes) > 2:
        return "argmax"
    if run.is_eval:
        threshold = _float(run.summary.get("threshold"))
        if threshold is not None:
            return f"at p > {threshold:.3f}"
    return "at p > 0.5"


def _stage_threshold(run: _Run, stage: str) -> tuple[float | None, str]:
    """The decision threshold a stage's ``*_at_thr`` numbers use, and where it came from."""
    block = run.summary.get(stage) or {}
    metrics = block.get("metrics") or {}
    if stage == "eval" or run.is_eval:
        value = _float(run.summary.get("threshold"))
        if value is None:
            value = _float(metrics.get(f"{stage}/threshold"))
        return value, str(run.summary.get("threshold_source") or "")
    value = _float(metrics.get(f"{stage}/threshold"))
    if value is not None:
        return value, "Youden's J on validation"
    value = _float(metrics.get(f"{stage}/youden_threshold"))
    if value is not None:
        return value, "chosen here (Youden's J); applied to test"
    return None, ""


def _metric_keys(block: dict[str, Any], stage: str) -> list[str]:
    keys = {k.split("/", 1)[-1] for k in (block.get("metrics") or {})} | set(
        block.get("ci95") or {}
    )
    keys = {k for k in keys if not _NOT_ROWS.match(k)}
    return [k for k in _ORDER if k in keys] + sorted(keys - set(_ORDER))


def _cell(point: float | None, ci: Any) -> str:
    low = high = None
    if isinstance(ci, list | tuple) and len(ci) == 3:
        low, high = _float(ci[1]), _float(ci[2])
        if point is None:
            point = _float(ci[0])
    return _interval((point, low, high))


_PAPER_COLUMN = {key: column for column, _, key in METRICS}


def _stage_table(run: _Run, stage: str) -> str:
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
        headers.append(f"at threshold {_num(threshold)} [95% CI]")
    if paper:
        headers.append("paper")
    rows = []
    for key in _metric_keys(block, stage):
        row = [_LABELS.get(key, key), _cell(_float(metrics.get(prefix + key)), ci95.get(key))]
        if has_thr:
            row.append(_cell(_float(metrics.get(f"{prefix}{key}_at_thr")), ci_thr.get(key)))
        if paper:
            value = paper.get(_PAPER_COLUMN.get(key, ""))
            row.append("-" if value is None else f"{round(value, 4):g}")
        rows.append(row)
    notes = [f"n = {block['n']}"] if isinstance(block.get("n"), int) else []
    loss = _float(metrics.get(prefix + "loss"))
    if loss is not None:
        notes.append(f"loss {loss:.4f}")
    if threshold is not None:
        notes.append(f"decision threshold {threshold:.4f}" + (f" ({source})" if source else ""))
    youden = [_float(metrics.get(f"{prefix}youden_{k}")) for k in ("sensitivity", "specificity")]
    if stage == "val" and None not in youden:
        notes.append(f"at that threshold: sensitivity {youden[0]:.3f}, specificity {youden[1]:.3f}")
    if not rows:
        return f'<p class="note">No metrics recorded for {_esc(stage)}.</p>'
    return (
        _table(headers, rows, right=range(1, len(headers)))
        + f'<p class="meta">{_esc("; ".join(notes))}</p>'
    )


def _confusion_table(matrix: Any, classes: Sequence[str]) -> str:
    """Counts with the row percentage (per true class), shaded by that percentage."""
    if not (isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix)):
        return ""
    names = list(classes) if len(classes) == len(matrix) else [str(i) for i in range(len(matrix))]
    head = "".join(f"<th>pred. {_esc(n)}</th>" for n in names)
    rows = []
    for name, counts in zip(names, matrix, strict=False):
        total = sum(c for c in counts if isinstance(c, int | float)) or 0
        cells = []
        for count in counts:
            share = count / total if total else 0.0
            color = "#fff" if share > 0.55 else "#1f2933"
            cells.append(
                f'<td style="background: rgba(37, 99, 235, {0.85 * share:.2f}); color: {color}">'
                f"{_esc(count)}<small>{100 * share:.0f}%</small></td>"
            )
        rows.append(f"<tr><th>true {_esc(name)}</th>{''.join(cells)}</tr>")
    return (
        f'<table class="cm"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _confusions(run: _Run, heading: str = "h3") -> str:
    parts = []
    for stage in run.stages:
        table = _confusion_table(
            (run.summary.get(stage) or {}).get("confusion_matrix"), run.classes
        )
        if table:
            title = _STAGE_TITLES.get(stage, stage)
            parts.append(f"<div><h4>{_esc(title)}</h4>{table}</div>")
    if not parts:
        return ""
    return (
        f"<{heading}>Confusion matrices</{heading}>"
        '<p class="meta">Rows: true class; percentages of the row (recall per class). '
        f"Counts {_esc(_default_rule(run))}.</p>"
        f'<div class="row">{"".join(parts)}</div>'
    )


def _splits(review: Path) -> list[Path]:
    if not review.is_dir():
        return []
    found = [p for p in review.iterdir() if p.is_dir() and p.name != "gradcam"]
    rank = {s: i for i, s in enumerate(_SPLIT_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def _predictions_note(path: Path) -> str:
    rows = _read_csv(path)
    if not rows:
        return ""
    note = f"{len(rows)} predictions in review/{path.parent.name}/{path.name}"
    if {"label", "predicted"} <= set(rows[0]):
        wrong = sum(r["label"] != r["predicted"] for r in rows)
        note += f", {wrong} misclassified"
    return f'<p class="meta">{_esc(note)}.</p>'


def _review_images(run: _Run) -> str:
    """``review/<split>/``: confusion, ROC and PR plots first, any other image after."""
    parts = []
    for split in _splits(run.folder / "review"):
        figures = []
        known = {name for name, _ in _REVIEW_IMAGES}
        for name, caption in _REVIEW_IMAGES:
            if (split / name).is_file():
                figures.append(_image_file(split / name, f"{caption} ({split.name})"))
        for path in sorted(split.iterdir()):
            if path.name not in known and path.suffix.lower() in _IMAGE_SUFFIXES:
                figures.append(_image_file(path, f"{path.stem} ({split.name})"))
        note = _predictions_note(split / "predictions.csv")
        if figures or note:
            parts.append(
                f"<h3>{_esc(_STAGE_TITLES.get(split.name, split.name))} "
                f"(review/{_esc(split.name)})</h3>{note}"
                f'<div class="row">{"".join(figures)}</div>'
            )
    return "".join(parts)


def _class_name(value: str, classes: Sequence[str]) -> str:
    if value.isdigit() and int(value) < len(classes):
        return classes[int(value)]
    return value


def _cam_caption(row: dict[str, str], classes: Sequence[str]) -> tuple[str, bool]:
    label = _class_name(str(row.get("label", "")).strip(), classes)
    predicted = _class_name(str(row.get("predicted", "")).strip(), classes)
    parts = []
    if label or predicted:
        parts.append(f"true {label or '?'} → pred. {predicted or '?'}")
    prob = _float(row.get("prob"))
    if prob is not None:
        parts.append(f"p = {prob:.3f}")
    if row.get("path"):
        parts.append(Path(str(row["path"])).name)
    wrong = bool(label and predicted and label != predicted)
    return " · ".join(parts), wrong


def _gradcam(run: _Run, heading: str = "h2", per_group: int | None = None) -> str:
    """Grad-CAM overlays grouped by split and kind, captioned from ``index.csv``.

    ``per_group`` keeps the sweep page small: only the last split's (test's) first panels
    of each kind, the rest being in the job's own report.
    """
    folder = run.folder / "review" / "gradcam"
    if not folder.is_dir():
        return ""
    index = {Path(r.get("file") or "").name: r for r in _read_csv(folder / "index.csv")}
    groups: dict[tuple[str, str], list[tuple[int, Path, dict[str, str]]]] = {}
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    for path in images:
        row = index.get(path.name, {})
        match = _CAM_NAME.match(path.name)
        split = row.get("split") or (match["split"] if match else "")
        kind = row.get("kind") or (match["kind"] if match else "other")
        order = int(match["index"]) if match else 0
        groups.setdefault((split, kind), []).append((order, path, row))
    if not groups:
        return ""
    rank = {s: i for i, s in enumerate(_SPLIT_ORDER)}
    kinds = list(_CAM_KINDS)
    order = sorted(
        groups,
        key=lambda g: (rank.get(g[0], 9), g[0], kinds.index(g[1]) if g[1] in kinds else 9, g[1]),
    )
    parts = [f"<{heading}>Grad-CAM</{heading}>"]
    if per_group is not None:
        last = order[-1][0]
        order = [g for g in order if g[0] == last]
        total = sum(len(v) for v in groups.values())
        shown = sum(min(per_group, len(groups[g])) for g in order)
        if shown < total:
            parts.append(
                f'<p class="note">{shown} of {total} panels; all of them in the job report.</p>'
            )
    for split, kind in order:
        figures = []
        panels = sorted(groups[(split, kind)], key=lambda t: (t[0], t[1].name))
        for _, path, row in panels[:per_group]:
            caption, wrong = _cam_caption(row, run.classes) if row else (path.stem, False)
            figures.append(_image_file(path, caption or path.stem, "", "wrong" if wrong else ""))
        title = _CAM_KINDS.get(kind, kind) + (f" — {split}" if split else "")
        parts.append(f"<h4>{_esc(title[:1].upper() + title[1:])}</h4>")
        parts.append(f'<div class="gallery">{"".join(figures)}</div>')
    return "".join(parts)


def _per_region(run: _Run) -> str:
    regions = run.summary.get("per_region")
    if not isinstance(regions, dict) or not regions:
        return ""
    keys: list[str] = []
    for block in regions.values():
        if isinstance(block, dict):
            for key in _metric_keys(block, ""):
                if key not in keys:
                    keys.append(key)
    keys = [k for k in _ORDER if k in keys] + [k for k in keys if k not in _ORDER]
    rows = []
    for region, block in regions.items():
        block = block if isinstance(block, dict) else {}
        metrics = {k.split("/", 1)[-1]: v for k, v in (block.get("metrics") or {}).items()}
        ci95 = block.get("ci95") or {}
        n = block.get("n")
        row = [str(region), "-" if n is None else str(n)]
        row += [_cell(_float(metrics.get(k)), ci95.get(k)) for k in keys]
        rows.append(row)
    headers = ["region", "n", *(_LABELS.get(k, k) for k in keys)]
    table = _table(headers, rows, right=range(1, len(headers)))
    return f'<h2>Per region (95% CI)</h2><div class="scroll">{table}</div>'


def _run_header(run: _Run) -> str:
    s, job = run.summary, run.job
    badge = "done" if run.status == "done" else "failed"
    lines = [
        f'<h1>{_esc(run.title)} <span class="badge {badge}">{_esc(run.status)}</span></h1>',
        f'<p class="meta">Folder: <code>{_esc(run.folder)}</code></p>',
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
    wall = _float(s.get("wall_time_s"))
    if wall is not None:
        facts.append(f"wall time: {wall:.1f} s")
    if s.get("best_model_path"):
        facts.append(f"best checkpoint: {s['best_model_path']}")
    if job and (job.paper_id or job.paper_title):
        facts.append("paper: " + " · ".join(x for x in (job.paper_id, job.paper_title) if x))
    lines += [f'<p class="meta">{_esc(f)}</p>' for f in facts]
    return "".join(lines)


def _error_block(run: _Run) -> str:
    if not run.error and run.status == "done":
        return ""
    text = run.error or "failed (no error recorded)"
    out = f'<div class="error">{_esc(text)}</div>'
    tb = run.summary.get("traceback")
    if isinstance(tb, str) and tb.strip():
        out += f"<details><summary>Traceback</summary><pre>{_esc(tb)}</pre></details>"
    return out


def _run_sections(run: _Run, level: int = 2, full: bool = True) -> list[str]:
    """The body of a run: a full report, or (``full=False``) a sweep's job section."""
    h = f"h{level}"
    parts = [_error_block(run)]
    for stage in run.stages:
        title = _STAGE_TITLES.get(stage, stage)
        if stage == "eval" and run.summary.get("split"):
            title += f" on {run.summary['split']}"
        parts.append(f"<{h}>{_esc(title)}</{h}>{_stage_table(run, stage)}")
    parts.append(_confusions(run, h))
    if run.curves:
        parts.append(f"<{h}>Learning curves</{h}>")
        parts.append(_figure(run.curves, "per epoch, from csv/metrics.csv", "wide"))
    if full:
        images = _review_images(run)
        if images:
            parts.append(f"<{h}>Review plots</{h}>{images}")
        parts.append(_per_region(run))
    parts.append(_gradcam(run, h, per_group=None if full else SWEEP_CAMS_PER_KIND))
    if full and run.config:
        parts.append(
            "<details><summary>Resolved config (config.yaml)</summary>"
            f"<pre>{_esc(run.config)}</pre></details>"
        )
    return [p for p in parts if p]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a browser never sees a half-written report
    return path


def _output(folder: Path, out: Path | str | None) -> Path:
    if out is None:
        return folder / REPORT_NAME
    out = Path(out).expanduser().resolve()
    return out / REPORT_NAME if out.is_dir() or not out.suffix else out


def write_run_report(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Write the self-contained ``report.html`` of a run, evaluation or sweep-job folder.

    ``out`` is the file to write (a folder gets ``report.html`` inside); by default the run
    folder's own ``report.html``. Works with any subset of the folder's files.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder")
    return _write_run(_load_run(run_dir), _output(run_dir, out))


def try_write_run_report(run_dir: Path | str) -> Path | None:
    """:func:`write_run_report` at the end of a train/eval run: logs the path, and a page
    that cannot be written is a warning, never a failed run (the results are on disk)."""
    import logging

    logger = logging.getLogger("fracture_lit.report")
    try:
        path = write_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the run is done; the page is extra
        logger.warning("Could not write report.html: %s: %s", type(error).__name__, error)
        return None
    logger.info("Report: %s", path)
    return path


def _write_run(run: _Run, path: Path) -> Path:
    body = [_run_header(run), *_run_sections(run, level=2, full=True)]
    return _write(path, _page(f"{run.title} ({run.status})", body))


# ----------------------------------------------------------------------------- a sweep
def _comparison_chart(jobs: Sequence[JobResult]) -> bytes | None:
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
    return _png(fig)


def _href(target: Path, start: Path) -> str:
    """A relative link (works when the sweep folder is moved or copied as a whole)."""
    return quote(Path(os.path.relpath(target, start)).as_posix())


def _sweep_tables(jobs: Sequence[JobResult]) -> str:
    """report.py's tables as HTML; job numbers link to their section, failures in red."""
    by_num = {str(j.num): j for j in jobs}
    parts = []
    for spec in _tables(jobs, seed_groups(jobs)):
        linked = bool(spec.headers) and spec.headers[0] == "job"
        rows, classes = [], []
        for row in spec.rows:
            cells = [_esc(c) for c in row]
            job = by_num.get(row[0]) if linked else None
            if job is not None:
                cells[0] = f'<a href="#job-{job.num}">{_esc(job.num)}</a>'
            rows.append(cells)
            classes.append("fail" if job is not None and job.status != "done" else "")
        parts.append(f"<h3>{_esc(spec.title)}</h3>")
        parts.append(
            _table(spec.headers, rows, spec.right, classes, raw_columns=range(len(spec.headers)))
        )
    return "".join(parts)


def write_sweep_report_html(
    sweep_dir: Path | str,
    out: Path | str | None = None,
    *,
    jobs: Sequence[JobResult] | None = None,
) -> Path:
    """Write the sweep's ``report.html`` and every job's own ``report.html``.

    The sweep page has report.py's tables, a comparison chart and one section per job
    (error, metrics, confusion matrices, learning curves, Grad-CAM), each linking to the
    job's full report by a relative path. ``jobs`` skips reloading when the caller (
    :func:`fracture_lit.report.write_report`) already has them.
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    jobs = list(jobs) if jobs is not None else load_jobs(sweep_dir)
    path = _output(sweep_dir, out)
    done = sum(j.status == "done" for j in jobs)
    body = [
        f"<h1>Sweep report</h1>"
        f'<p class="meta">Folder: <code>{_esc(sweep_dir)}</code></p>'
        f'<p class="meta">{len(jobs)} jobs: {done} done, {len(jobs) - done} failed.</p>'
    ]
    shared = _shared_overrides(jobs)
    if shared:
        body.append(
            f'<p class="meta">Overrides shared by every job: <code>{_esc(" ".join(shared))}</code></p>'
        )
    papers = _papers(jobs)
    if papers:
        body.append(f'<p class="meta">Paper numbers from: {_esc("; ".join(papers))}</p>')
    chart = _comparison_chart(jobs)
    if chart:
        body.append(
            "<h2>Comparison</h2>" + _figure(chart, "point and 95% bootstrap CI per job", "wide")
        )
    body.append("<h2>Tables</h2>" + _sweep_tables(jobs))
    body.append("<h2>Per job</h2>")
    for job in jobs:
        run = _load_run(job.folder, job)
        run.status, run.error = job.status, job.error  # load_job's reading of the folder
        job_report = _write_run(run, job.folder / REPORT_NAME)
        own = " ".join(o for o in job.overrides if o not in shared) or "(shared only)"
        badge = "done" if job.status == "done" else "failed"
        body.append(
            f'<section class="job" id="job-{job.num}">'
            f"<h2>Job {_esc(job.num)} · {_esc(job.backbone or '?')} "
            f'<span class="badge {badge}">{_esc(job.status)}</span></h2>'
            f'<p class="meta">overrides: <code>{_esc(own)}</code> · '
            f'<a href="{_href(job_report, path.parent)}">full job report</a></p>'
        )
        body += _run_sections(run, level=3, full=False)
        body.append("</section>")
    return _write(path, _page(f"Sweep report: {sweep_dir.name}", body))
