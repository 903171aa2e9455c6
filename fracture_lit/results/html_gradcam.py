"""The Grad-CAM gallery of a run page: panels grouped by split and kind, captioned.

Captions come from ``review/gradcam/index.csv`` (true and predicted class, probability,
file); a panel missing from it is still shown, grouped by its file name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import float_or_none, read_csv
from fracture_lit.results.html_page import IMAGE_SUFFIXES, esc, image_file
from fracture_lit.results.run_folder import RunFolder

__all__ = ["SPLIT_ORDER", "gradcam_gallery"]

#: Splits in the order a page shows them (an evaluation's own split last).
SPLIT_ORDER = ("train", "val", "test", "eval")

_CAM_NAME = re.compile(r"^(?P<split>.+)_(?P<kind>fixed|worst)_(?P<index>\d+)\.(png|jpe?g)$")

_CAM_KINDS = {"fixed": "fixed set", "worst": "worst misclassified"}


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
    prob = float_or_none(row.get("prob"))
    if prob is not None:
        parts.append(f"p = {prob:.3f}")
    if row.get("path"):
        parts.append(Path(str(row["path"])).name)
    wrong = bool(label and predicted and label != predicted)
    return " · ".join(parts), wrong


def gradcam_gallery(run: RunFolder, heading: str = "h2", per_group: int | None = None) -> str:
    """Grad-CAM overlays grouped by split and kind, captioned from ``index.csv``.

    ``per_group`` keeps the sweep page small: only the last split's (test's) first panels
    of each kind, the rest being in the job's own report.
    """
    review = RunLayout(run.folder).review
    folder = review.gradcam
    if not folder.is_dir():
        return ""
    index = {Path(r.get("file") or "").name: r for r in read_csv(review.gradcam_index)}
    groups: dict[tuple[str, str], list[tuple[int, Path, dict[str, str]]]] = {}
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in images:
        row = index.get(path.name, {})
        match = _CAM_NAME.match(path.name)
        split = row.get("split") or (match["split"] if match else "")
        kind = row.get("kind") or (match["kind"] if match else "other")
        order = int(match["index"]) if match else 0
        groups.setdefault((split, kind), []).append((order, path, row))
    if not groups:
        return ""
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
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
            figures.append(image_file(path, caption or path.stem, "", "wrong" if wrong else ""))
        title = _CAM_KINDS.get(kind, kind) + (f" — {split}" if split else "")
        parts.append(f"<h4>{esc(title[:1].upper() + title[1:])}</h4>")
        parts.append(f'<div class="gallery">{"".join(figures)}</div>')
    return "".join(parts)
