"""Where the model looks, in the reports: ``metrics.json``'s ``localization`` blocks as tables.

A run or evaluation that scored Grad-CAM against annotated regions keeps one block per
split (:mod:`fracture_lit.localization`); this module lays each out as a
:class:`~fracture_lit.results.table.Table` (Grad-CAM, the random and centre-prior
baselines on the same images, then Grad-CAM on the fractures the model called and
missed), which the console prints after the metrics table and the HTML report shows with
the outlined best/worst panels. A run without the block shows nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.localization.names import SCORE_TITLES
from fracture_lit.localization.table import TABLE_SCORES, block_note, block_rows, brief_note
from fracture_lit.results.folders import localization_blocks
from fracture_lit.results.html_gradcam import SPLIT_ORDER
from fracture_lit.results.html_page import esc, html_table, image_file
from fracture_lit.results.run_folder import RunFolder
from fracture_lit.results.table import Table, interval_cell

__all__ = ["localization_section", "localization_tables"]

_SPLIT_TITLES = {"val": "validation", "test": "test", "predict": "predicted images"}
_PANEL_TITLES = {"best": "best hits (most energy inside the regions)", "worst": "worst hits"}


def _ordered(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The blocks in split order (validation before test), whatever order the file has."""
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
    blocks = localization_blocks(summary)
    return sorted(blocks.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def localization_tables(summary: dict[str, Any], console: bool = False) -> list[Table]:
    """One table per localized split, in split order. ``console``: narrower (each interval
    under its value, no MaxBoxAcc, a one-line note)."""
    scores = TABLE_SCORES[:3] if console else TABLE_SCORES
    tables = []
    for split, block in _ordered(summary):
        headers = ["heatmap", "n", *(SCORE_TITLES[s] for s in scores)]
        rows = [
            [row.label, str(row.n), *(_cell(row.values[s], console) for s in scores)]
            for row in block_rows(block, scores)
        ]
        title = f"Localization, {_SPLIT_TITLES.get(split, split)} (95% bootstrap CI)"
        note = brief_note(block) if console else block_note(block)
        tables.append(Table(title, headers, rows, set(range(1, len(headers))), [], note))
    return tables


def _cell(value: tuple[float | None, float | None, float | None], stacked: bool) -> str:
    text = interval_cell(value)
    return text.replace(" [", "\n[") if stacked else text


def _panels(folder: Path, split: str, block: dict[str, Any]) -> str:
    review = RunLayout(folder).review.folder
    parts = []
    for kind, title in _PANEL_TITLES.items():
        chosen = [p for p in block.get("panels") or [] if p.get("kind") == kind]
        figures = [
            image_file(
                review / str(p["file"]),
                f"{Path(str(p['path'])).name} · pointing {'hit' if p.get('pointing') else 'miss'}"
                f" · energy {float(p.get('energy', 0)):.2f} · "
                + ("called" if p.get("called") else "missed"),
            )
            for p in chosen
            if (review / str(p.get("file", ""))).is_file()
        ]
        if figures:
            parts.append(f"<h4>{esc(title[:1].upper() + title[1:])} — {esc(split)}</h4>")
            parts.append(f'<div class="gallery">{"".join(figures)}</div>')
    return "".join(parts)


def localization_section(run: RunFolder, heading: str = "h2", full: bool = True) -> str:
    """The report's localization section: per split the table (baselines and n), how to
    read it, and (``full``) the panels with the radiologists' outline over the heatmap."""
    tables = localization_tables(run.summary)
    if not tables:
        return ""
    parts = [f"<{heading}>Localization: where does the model look?</{heading}>"]
    parts.append(
        '<p class="meta">Grad-CAM scored against the annotated fracture regions, beside '
        "heatmaps that know nothing about the image (random, centre prior) on the same "
        "images. The regions are outlined in green on the panels.</p>"
    )
    for (split, block), table in zip(_ordered(run.summary), tables, strict=True):
        parts.append(f"<h3>{esc(table.title)}</h3>")
        parts.append(html_table(table.headers, table.rows, table.right))
        parts.append(f'<p class="meta">{esc(table.note)}</p>')
        if full:  # a sweep page's job section: the table; the panels are in the job's page
            parts.append(_panels(run.folder, split, block))
    return "".join(parts)
