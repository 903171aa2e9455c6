"""The rows of a localization table, from a ``metrics.json`` block (no torch, no cv2).

The console, the HTML report and W&B show the same rows: Grad-CAM on every fractured
image with regions, the random and centre-prior heatmaps on the same images, then
Grad-CAM on the fractures the model called and on those it missed (at its
validation-chosen threshold), each score as ``(value, low, high)`` with the image count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fracture_lit.localization.names import GROUPS, MODEL_METHOD, SCORE_TITLES

__all__ = ["TABLE_SCORES", "Row", "block_note", "block_rows", "brief_note", "headline"]

#: The columns of the compact tables (the box hit at one threshold is in metrics.json).
TABLE_SCORES: tuple[str, ...] = ("pointing", "energy", "iou", "max_box_acc")
_METHOD_LABELS = {MODEL_METHOD: "Grad-CAM", "random": "random heatmap", "centre": "centre prior"}
_GROUP_LABELS = {"correct": "called", "missed": "missed"}

Interval = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class Row:
    """One line of a localization table: a heatmap method on a group of images."""

    label: str
    group: str
    method: str
    n: int
    values: dict[str, Interval]


def _interval(entry: Any) -> Interval:
    if not isinstance(entry, Mapping):
        return (None, None, None)
    return entry.get("value"), entry.get("low"), entry.get("high")


def block_rows(block: Mapping[str, Any], scores: tuple[str, ...] = TABLE_SCORES) -> list[Row]:
    """Grad-CAM and the baselines on all images, then Grad-CAM per called/missed group
    (groups without images are left out)."""
    groups = block.get("groups") or {}
    rows: list[Row] = []
    everything = groups.get("all") or {}
    for method, label in _METHOD_LABELS.items():
        if isinstance(everything.get(method), Mapping):
            values = {s: _interval(everything[method].get(s)) for s in scores}
            rows.append(Row(label, "all", method, int(everything.get("n") or 0), values))
    for group in GROUPS[1:]:
        entry = groups.get(group) or {}
        if entry.get("n") and isinstance(entry.get(MODEL_METHOD), Mapping):
            values = {s: _interval(entry[MODEL_METHOD].get(s)) for s in scores}
            label = f"Grad-CAM, {_GROUP_LABELS[group]}"
            rows.append(Row(label, group, MODEL_METHOD, int(entry["n"]), values))
    return rows


def headline(block: Mapping[str, Any], score: str = "pointing") -> Interval:
    """Grad-CAM's ``score`` on every image of the block: the number a sweep column shows."""
    everything = (block.get("groups") or {}).get("all") or {}
    return _interval((everything.get(MODEL_METHOD) or {}).get(score))


def brief_note(block: Mapping[str, Any]) -> str:
    """The settings in one line (consoles): images, layer, tolerance, threshold."""
    settings = block.get("settings") or {}
    flat = f"; {block['n_flat']} flat heatmap(s)" if block.get("n_flat") else ""
    return (
        f"{block.get('n_images', 0)} fractured images with {block.get('n_regions', 0)} regions; "
        f"Grad-CAM of {block.get('target_layer') or '?'}; pointing within "
        f"{settings.get('tolerance_px', 15):g} px of a region; IoU at "
        f"{float(settings.get('threshold', 0.15)):.0%} of the maximum{flat}."
    )


def block_note(block: Mapping[str, Any]) -> str:
    """How to read the table: what was scored, with which settings."""
    settings = block.get("settings") or {}
    skipped = block.get("skipped") or {}
    left_out = "; ".join(f"{n} {why}" for why, n in skipped.items())
    threshold = float(settings.get("threshold", 0.15))
    parts = [
        f"{block.get('n_images', 0)} fractured images with {block.get('n_regions', 0)} "
        f"annotated regions" + (f" (left out: {left_out})" if left_out else ""),
        f"Grad-CAM of {block.get('target_layer') or '?'} for class "
        f"{block.get('explains') or '?'}, at {block.get('image_size')} px "
        f"({block.get('resize_mode')})" + (", flip TTA" if settings.get("tta") == "flip" else ""),
        f"{SCORE_TITLES['pointing']}: the maximum within {settings.get('tolerance_px', 15):g} "
        "original-image pixels of a region",
        f"{SCORE_TITLES['energy']}: the heatmap's share inside the regions",
        f"{SCORE_TITLES['iou']}: the heatmap above {threshold:.0%} of its maximum vs the regions",
        f"{SCORE_TITLES['max_box_acc']}: the best threshold's rate of boxes with IoU >= "
        f"{settings.get('box_min_iou', 0.5):g}",
        "called / missed: the fractures the model called or missed at its decision "
        f"threshold ({float(block.get('decision_threshold', 0.5)):.3f})",
        "95% bootstrap CI over images (none under 10 images)",
    ]
    if block.get("n_flat"):
        parts.append(f"{block['n_flat']} flat heatmap(s) point nowhere")
    return ". ".join(parts) + "."
