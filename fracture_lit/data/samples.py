"""The record every dataset parser produces and every split, cache and manifest consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class Sample:
    """One image on disk with its label.

    ``given_split`` is the split the dataset's own layout puts it in (``train``/``val``/
    ``test``) or ``None``; ``split`` is the one this run uses. ``group`` ties together
    images that must never straddle splits (identical bytes, near-duplicates, renamed
    copies). ``meta`` keeps dataset metadata (FracAtlas region, view, hardware, ...).
    ``notes`` records what happened while loading (e.g. "truncated JPEG").
    """

    path: str
    label: int
    given_split: str | None = None
    split: str | None = None
    group: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    notes: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class DatasetIndex:
    """What a dataset parser returns: the samples, the class names (index = label) and
    the files it skipped (with the reason), so a run can report them."""

    samples: list[Sample]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
