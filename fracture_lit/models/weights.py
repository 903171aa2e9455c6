"""Starting weights of a backbone: ``model.weights`` = ``none`` | ``imagenet`` | a file.

One value says where training starts, so it sweeps like any other value
(``-m model.weights=none,imagenet,/data/w/resnet18.pth``). This module reads it (and the
deprecated ``model.pretrained`` / ``model.pretrained_file`` it replaces) and describes the
choice for the run record: which weights, from where, under which licence. Describing
never touches the network: the hub name, tag and licence are timm's registry metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.errors import ConfigError, UserError

__all__ = [
    "IMAGENET",
    "SCRATCH",
    "PretrainedWeightsUnavailableError",
    "StartingWeights",
    "check_weights_file",
    "file_sha256",
    "legacy_weights",
    "normalise_weights_config",
    "parse_weights",
    "resolve_weights",
    "weights_record",
]

log = logging.getLogger("fracture_lit.models")

SCRATCH = "none"
IMAGENET = "imagenet"
#: What a licence field says when nothing declares one.
UNKNOWN_LICENCE = "unknown"
#: A weights file may carry ``<file>.json`` beside it: ``{"licence": ..., "source": ...}``.
SIDECAR_SUFFIX = ".json"


class PretrainedWeightsUnavailableError(UserError, RuntimeError):
    """Pretrained weights were asked for but cannot be fetched or read."""


@dataclass(frozen=True)
class StartingWeights:
    """Where a backbone's weights start: ``kind`` is ``none``, ``imagenet`` or ``file``."""

    kind: str
    file: Path | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != SCRATCH

    @property
    def value(self) -> str:
        """As ``model.weights`` spells it."""
        return str(self.file) if self.file is not None else self.kind


def parse_weights(value: Any, key: str = "model.weights") -> StartingWeights:
    """``none`` (also null/false), ``imagenet``, or the path of a local state dict."""
    if value is None or value is False:
        return StartingWeights(SCRATCH)
    if not isinstance(value, str | Path) or isinstance(value, bool):
        raise ConfigError(
            key,
            value,
            f"must be {SCRATCH}, {IMAGENET} or the path of a weights file",
            f"e.g. {key}={IMAGENET} or {key}=/path/to/weights.pth.",
        )
    text = str(value).strip()
    if text.lower() in (SCRATCH, "null", ""):
        return StartingWeights(SCRATCH)
    if text.lower() == IMAGENET:
        return StartingWeights(IMAGENET)
    return StartingWeights("file", Path(text).expanduser())


def legacy_weights(pretrained: Any, pretrained_file: Any) -> str | None:
    """What the deprecated keys ask for as a ``model.weights`` value; None when neither is
    set (a file wins over ``pretrained``, as it did before ``model.weights``)."""
    if pretrained_file not in (None, ""):
        return str(pretrained_file)
    if pretrained is None:
        return None
    return IMAGENET if pretrained else SCRATCH


def resolve_weights(
    weights: Any = SCRATCH, pretrained: Any = None, pretrained_file: Any = None
) -> StartingWeights:
    """The starting weights ``model.weights`` and the deprecated keys ask for together."""
    legacy = legacy_weights(pretrained, pretrained_file)
    return parse_weights(legacy if legacy is not None else weights)


def normalise_weights_config(model_cfg: Any) -> str | None:
    """Move the deprecated ``pretrained``/``pretrained_file`` of ``model_cfg`` (a DictConfig)
    into ``weights`` (so config.yaml and ``in_chans`` say the truth) and return the
    one-line deprecation warning, or None when they are not set."""
    pretrained, path = model_cfg.get("pretrained"), model_cfg.get("pretrained_file")
    legacy = legacy_weights(pretrained, path)
    if legacy is None:
        return None
    from omegaconf import open_dict  # Hydra's config library; only this helper needs it

    used = "model.pretrained_file" if path not in (None, "") else "model.pretrained"
    shown = path if used == "model.pretrained_file" else str(pretrained).lower()
    with open_dict(model_cfg):
        model_cfg.weights = legacy
        model_cfg.pretrained = None
        model_cfg.pretrained_file = None
    return f"{used}={shown} is deprecated: use model.weights={legacy} (used for this run)."


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> dict[str, Any]:
    """``<file>.json`` beside a weights file: the licence and source its owner declared."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    try:
        loaded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def check_weights_file(path: Path, key: str = "model.weights") -> Path:
    if not path.is_file():
        raise PretrainedWeightsUnavailableError(
            f"{key}={path}: no such weights file. Pass the path of a saved state dict "
            f"(.pth/.bin/.safetensors), or {key}={SCRATCH} to train from scratch."
        )
    return path.resolve()


def weights_record(backbone: str, weights: StartingWeights) -> dict[str, Any]:
    """The run record's ``starting_weights``: which weights, from where, under which licence
    (timm's ``pretrained_cfg`` for hub weights; a file's sha256 and its sidecar, if any)."""
    if weights.kind == SCRATCH:
        return {"weights": SCRATCH, "source": "random initialisation", "licence": None}
    if weights.kind == IMAGENET:
        import timm  # the registry is metadata only: nothing is downloaded here

        cfg = timm.models.get_pretrained_cfg(backbone)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        return {
            "weights": IMAGENET,
            "source": f"timm hub: {hub_id}" if hub_id else "timm",
            "hub_id": hub_id,
            "tag": getattr(cfg, "tag", None) if cfg is not None else None,
            "url": (getattr(cfg, "url", None) or None) if cfg is not None else None,
            "licence": (getattr(cfg, "license", None) if cfg is not None else None)
            or UNKNOWN_LICENCE,
        }
    assert weights.file is not None
    path = check_weights_file(weights.file)
    sidecar = _sidecar(path)
    licence = sidecar.get("licence") or sidecar.get("license")
    return {
        "weights": "file",
        "source": str(sidecar.get("source") or f"local file {path.name}"),
        "file": str(path),
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "licence": str(licence) if licence else UNKNOWN_LICENCE,
        "licence_from": str(path.with_name(path.name + SIDECAR_SUFFIX)) if licence else None,
    }
