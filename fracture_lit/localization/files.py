"""The heatmaps file of a split: what the scores can be recomputed, and compared, from.

One compressed ``.npz`` per split, numpy only (reading it needs neither torch nor
pickle): ``ids`` (image paths), ``heatmaps`` ``(N, S, S)`` float16 at the model input's
resolution, ``meta`` (JSON: split, geometry settings, layer, class, settings) and, per
heatmap method, its per-image scores (``scores_<method>``, columns named in ``meta``), so
a sweep pairs two jobs' images without scoring anything again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "HEATMAP_DTYPE",
    "load_heatmaps",
    "load_per_image",
    "save_heatmaps",
]

HEATMAP_DTYPE = np.float16
_SCORES = "scores_"


def save_heatmaps(
    path: str | Path,
    ids: Sequence[str],
    maps: np.ndarray,
    meta: dict[str, Any],
    scores: Mapping[str, np.ndarray] | None = None,
    columns: Sequence[str] = (),
) -> Path:
    """Write the file; ``scores`` maps a method to its ``(N, len(columns))`` scores."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{_SCORES}{method}": np.asarray(v) for method, v in (scores or {}).items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as stream:
        np.savez_compressed(
            stream,
            ids=np.array(list(ids), dtype=str),
            heatmaps=np.asarray(maps, dtype=HEATMAP_DTYPE),
            meta=np.array(json.dumps({**meta, "score_columns": list(columns)})),
            **arrays,
        )
    os.replace(tmp, path)  # a killed run leaves the old file or none, never half of one
    return path


def load_heatmaps(path: str | Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """``(ids, heatmaps, meta)`` of a :func:`save_heatmaps` file."""
    with np.load(Path(path), allow_pickle=False) as data:
        return [str(i) for i in data["ids"]], data["heatmaps"], json.loads(str(data["meta"]))


def load_per_image(path: str | Path, score: str, method: str = "gradcam") -> dict[str, float]:
    """``{image path: score}`` of one method, as saved (the input of the paired comparison)."""
    with np.load(Path(path), allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        columns = list(meta.get("score_columns") or [])
        key = f"{_SCORES}{method}"
        if score not in columns or key not in data.files:
            raise KeyError(f"{path}: no {score!r} scores of {method!r} (has {columns})")
        values = data[key][:, columns.index(score)]
        return dict(zip((str(i) for i in data["ids"]), values.tolist(), strict=True))
