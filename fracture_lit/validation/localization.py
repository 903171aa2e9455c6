"""``localization.*`` and the regions file, checked before anything runs.

A malformed COCO file fails here, before training, not at the end-of-training review; the
regions' fit to the images (file names, sizes) is checked once the data is indexed.
"""

from __future__ import annotations

from typing import Any

from fracture_lit.localization.config import ENABLED_CHOICES, localization_enabled, regions_file
from fracture_lit.localization.regions import read_coco_regions
from fracture_lit.validation.checkers import (
    MISSING,
    check_choice,
    check_float,
    check_int,
    get_value,
)

__all__ = ["validate_localization"]


def validate_localization(
    cfg: Any, regions_key: str = "data.regions", root_key: str | None = "data.root"
) -> None:
    """The ``localization`` block's values, the regions setting at ``regions_key`` (a COCO
    file, ``auto`` for the dataset's own under ``root_key``, or null) and their agreement."""
    check_choice(cfg, "localization.enabled", ENABLED_CHOICES)
    check_float(cfg, "localization.tolerance_px", 0.0, fix="Original-image pixels; TorchRay: 15.")
    check_float(
        cfg,
        "localization.threshold",
        0.0,
        1.0,
        low_open=True,
        high_open=True,
        fix="A fraction of the heatmap's maximum; the Grad-CAM paper uses 0.15.",
    )
    check_float(cfg, "localization.box_min_iou", 0.0, 1.0, low_open=True)
    check_int(cfg, "localization.n_bootstrap", 0, fix="0: no intervals.")
    check_int(cfg, "localization.n_panels", 0)
    setting = get_value(cfg, regions_key)
    root = get_value(cfg, root_key) if root_key else MISSING
    path = regions_file(
        None if setting is MISSING else setting, None if root is MISSING else root, regions_key
    )
    block = get_value(cfg, "localization")
    localization_enabled(None if block is MISSING else block, path, regions_key)
    if path is not None:
        read_coco_regions(path)
