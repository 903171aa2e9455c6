"""Build any timm backbone by name, with errors a user can act on.

Everything (torchvision-era CNNs, EfficientNets, ViTs and the papers' custom CNNs, which
register themselves with timm) goes through ``timm.create_model``: one door, one set of
options. What this adds is the failure handling: an unknown name lists close names, and
``model.weights=imagenet`` with no network fails in seconds with one line naming the fix
(a local file), instead of retrying the hub for a minute.
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path

import timm
import torch.nn as nn

import fracture_lit.models.custom_cnns  # noqa: F401  (registers the papers' CNNs with timm)
from fracture_lit.errors import UserError
from fracture_lit.models.weights import (
    IMAGENET,
    SCRATCH,
    PretrainedWeightsUnavailableError,
    check_weights_file,
    resolve_weights,
)

HUB_HOST = ("huggingface.co", 443)


class UnknownBackboneError(UserError, ValueError):
    """The backbone name is not a timm model."""


def close_backbone_names(name: str, limit: int = 8) -> list[str]:
    """timm names that look like ``name``: substring matches first, then fuzzy matches."""
    all_names = timm.list_models()
    key = name.lower().replace("-", "_")
    contains = [n for n in all_names if key in n]
    fuzzy = difflib.get_close_matches(key, all_names, n=limit, cutoff=0.6)
    seen: dict[str, None] = dict.fromkeys(fuzzy + contains)
    return list(seen)[:limit]


def check_backbone_name(name: str) -> None:
    if not timm.is_model(name):
        close = close_backbone_names(name)
        hint = f" Close timm names: {', '.join(close)}." if close else ""
        raise UnknownBackboneError(
            f"Unknown backbone {name!r} (model.backbone).{hint} "
            "List them all with `python -c \"import timm; print(timm.list_models('*res*'))\"`."
        )


def check_has_weights(name: str) -> None:
    """Fail at once for models that have no published weights (e.g. the papers' CNNs)."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        tagged = timm.list_pretrained(f"{name.split('.')[0]}*") or timm.list_pretrained(
            f"*{name.split('.')[0]}*"
        )
        hint = f" Variants with weights: {', '.join(tagged[:6])}." if tagged else ""
        raise PretrainedWeightsUnavailableError(
            f"model.weights={IMAGENET}: backbone {name!r} has no pretrained weights.{hint} "
            f"Train it from scratch with model.weights={SCRATCH}, or pass a file: "
            "model.weights=/path/to/weights.pth."
        )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _force_hub_offline() -> None:
    """Make huggingface_hub use only its local cache (it reads the flag at import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub is a timm dependency
        pass


def _offline_message(name: str) -> str:
    """One line: what failed and the fix (a local file), without the hub's traceback."""
    cfg = timm.models.get_pretrained_cfg(name)
    where = getattr(cfg, "hf_hub_id", None) or name
    return (
        f"model.weights={IMAGENET}: timm's weights for {name!r} ({where}) are not in the "
        "local Hugging Face cache and the hub cannot be reached. Fix: download them where "
        f"there is network and pass the file, model.weights=/path/to/{name}.safetensors "
        f"(or train from scratch: model.weights={SCRATCH})."
    )


def create_backbone(
    name: str,
    *,
    num_classes: int,
    in_chans: int = 3,
    weights: str | Path | None = SCRATCH,
    pretrained: bool | None = None,
    pretrained_file: str | Path | None = None,
    drop_rate: float = 0.0,
    **kwargs: object,
) -> nn.Module:
    """Create ``name`` from timm with a fresh ``num_classes`` head, starting from ``weights``
    (``none``, ``imagenet`` or a file; ``pretrained``/``pretrained_file`` are the deprecated
    spellings, :func:`~fracture_lit.models.weights.resolve_weights`).

    A file is loaded through timm's own loader (which adapts the first convolution to
    ``in_chans`` and drops a mismatched classifier), so it behaves exactly like hub weights.
    """
    check_backbone_name(name)
    start = resolve_weights(weights, pretrained, pretrained_file)
    create_kwargs: dict[str, object] = dict(
        num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **kwargs
    )
    if start.file is not None:
        path = check_weights_file(start.file)
        try:
            return timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **create_kwargs
            )
        except (RuntimeError, KeyError, ValueError) as error:
            raise PretrainedWeightsUnavailableError(
                f"model.weights={start.file}: could not load it into backbone {name!r} "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). Check that "
                "the file holds a state dict saved from the same architecture."
            ) from error
    if not start.pretrained:
        return timm.create_model(name, pretrained=False, **create_kwargs)
    check_has_weights(name)
    if not hub_reachable():
        _force_hub_offline()
    try:
        return timm.create_model(name, pretrained=True, **create_kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        raise PretrainedWeightsUnavailableError(_offline_message(name)) from error
