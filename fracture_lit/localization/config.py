"""From the config to a run's localization: which regions file, which settings, on or off.

``data.regions`` (``regions=`` for predict) names a COCO file, ``auto`` the regions the
dataset ships (FracAtlas' released COCO file under its root, when the copy has it) and
null none; the ``localization`` block holds the scores' settings and ``enabled`` (``auto``:
on exactly when there are regions). Without regions nothing is read or computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fracture_lit.errors import ConfigError
from fracture_lit.localization.localize import LocalizationSettings
from fracture_lit.localization.regions import (
    ImageRegions,
    RegionsError,
    default_regions_file,
    match_regions,
    read_coco_regions,
)

__all__ = [
    "AUTO",
    "ENABLED_CHOICES",
    "datamodule_regions",
    "localization_enabled",
    "regions_file",
    "settings_from_config",
]

AUTO = "auto"
#: ``localization.enabled``: auto (on when regions exist), true (regions required), false.
ENABLED_CHOICES: tuple[Any, ...] = (AUTO, True, False)
#: The ``localization`` keys that are :class:`LocalizationSettings` fields.
_SETTING_KEYS = ("tolerance_px", "threshold", "box_min_iou", "n_bootstrap")


def regions_file(setting: Any, root: str | Path | None, key: str = "data.regions") -> Path | None:
    """The COCO file ``setting`` names: None for null, the dataset's own for ``auto``."""
    if setting is None or setting is False or str(setting).strip() in ("", "null", "none"):
        return None
    if str(setting) == AUTO:
        return default_regions_file(root) if root is not None else None
    path = Path(str(setting)).expanduser()
    if not path.is_file():
        raise RegionsError(
            f"{key}={setting}: no such file. Point {key}= at a COCO JSON file of the "
            "images' fracture regions, or set it to null."
        )
    return path


def localization_enabled(block: Mapping[str, Any] | None, regions: Path | None, key: str) -> bool:
    """Whether to score: ``enabled`` auto -> when there are regions; true without regions
    is refused naming ``key`` (the regions setting)."""
    enabled = (block or {}).get("enabled", AUTO)
    if enabled not in ENABLED_CHOICES:
        raise ConfigError("localization.enabled", enabled, "must be auto, true or false")
    if enabled is True and regions is None:
        raise ConfigError(
            "localization.enabled",
            True,
            f"there are no regions to score against ({key} is null, or auto without the "
            "dataset's regions file)",
            f"Set {key}=<COCO JSON file> or localization.enabled=auto.",
        )
    return regions is not None and enabled is not False


def settings_from_config(
    block: Mapping[str, Any] | None, *, target_layer: str | None = None, tta: str = "none"
) -> LocalizationSettings:
    """:class:`LocalizationSettings` from the ``localization`` block (its limits are
    checked there, naming ``localization.<key>``) and the review's layer and TTA."""
    values = {k: (block or {})[k] for k in _SETTING_KEYS if (block or {}).get(k) is not None}
    return LocalizationSettings(
        **{k: type(getattr(LocalizationSettings, k))(v) for k, v in values.items()},
        target_layer=target_layer,
        tta=str(tta or "none"),
    )


def datamodule_regions(datamodule: Any, path: Path) -> dict[str, ImageRegions]:
    """The regions of ``path`` matched once to every image of a set-up datamodule (the log
    says how many annotated images the data lacks and how many fractured ones are bare)."""
    samples = datamodule.samples
    positive = [s.label == 1 for s in samples] if datamodule.num_classes == 2 else None
    return match_regions(read_coco_regions(path), [s.path for s in samples], positive)
