"""Put a split's localization in a W&B run: the table (baselines and groups included),
Grad-CAM's headline scores in the summary, and the outlined best/worst panels.

Works in offline runs (``wandb sync`` uploads them later); wandb is imported only when
something is logged (an optional dependency, slow to import).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fracture_lit.localization.names import SUMMARY_SCORES
from fracture_lit.localization.table import block_rows, headline

__all__ = ["log_localization"]


def log_localization(
    experiment: Any, split: str, block: Mapping[str, Any], review_folder: str | Path
) -> None:
    """Log one split's block into ``experiment`` (a live ``wandb`` run) under
    ``<split>/localization*``; ``review_folder`` holds the panels the block lists."""
    import wandb

    columns = ["heatmap", "images", "n"]
    for score in SUMMARY_SCORES:
        columns += [score, f"{score}_low", f"{score}_high"]
    data = []
    for row in block_rows(block, SUMMARY_SCORES):
        cells: list[Any] = [row.label, row.group, row.n]
        for score in SUMMARY_SCORES:
            cells += list(row.values[score])
        data.append(cells)
    payload: dict[str, Any] = {f"{split}/localization": wandb.Table(columns=columns, data=data)}
    panels = [
        wandb.Image(str(Path(review_folder) / p["file"]), caption=f"{p['kind']}: {p['path']}")
        for p in block.get("panels") or []
        if (Path(review_folder) / p["file"]).is_file()
    ]
    if panels:
        payload[f"{split}/localization_panels"] = panels
    experiment.log(payload)
    summary = {
        f"{split}/localization_{score}": value
        for score in ("pointing", "energy", "iou")
        if (value := headline(block, score)[0]) is not None
    }
    summary[f"{split}/localization_n_images"] = int(block.get("n_images") or 0)
    experiment.summary.update(summary)
