"""Build any timm backbone by name, with errors a user can act on.

Everything (torchvision-era CNNs, EfficientNets, ViTs and the papers' custom CNNs, which
register themselves with timm) goes through ``timm.create_model``: one door, one set of
options. What this adds is the failure handling: an unknown name lists close names, and
pretrained weights with no network fail in seconds with the two ways out, instead of
retrying the hub for a minute.
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

HUB_HOST = ("huggingface.co", 443)


class UnknownBackboneError(UserError, ValueError):
    """The backbone name is not a timm model."""


class PretrainedWeightsUnavailableError(UserError, RuntimeError):
    """Pretrained weights were asked for but cannot be fetched or read."""


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
            f"Backbone {name!r} has no pretrained weights.{hint} Set model.pretrained=false to "
            "train it from scratch, or pass model.pretrained_file=/path/to/weights.pth."
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


def _offline_message(name: str, error: BaseException) -> str:
    return (
        f"Cannot load pretrained weights for backbone {name!r}: the Hugging Face hub is not "
        f"reachable and they are not in the local cache ({type(error).__name__}: {error}).\n"
        "Either train from scratch with `model.pretrained=false`, or download the weights "
        "elsewhere and pass the file with `model.pretrained_file=/path/to/weights.pth` "
        "(a state dict, .pth/.bin/.safetensors), or set HF_HOME to a cache that has them."
    )


def create_backbone(
    name: str,
    *,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    pretrained_file: str | Path | None = None,
    drop_rate: float = 0.0,
    **kwargs: object,
) -> nn.Module:
    """Create ``name`` from timm with a fresh ``num_classes`` head.

    ``pretrained_file`` loads a local state dict through timm's own loader (which adapts
    the first convolution to ``in_chans`` and drops a mismatched classifier), so a file
    behaves exactly like hub weights.
    """
    check_backbone_name(name)
    create_kwargs: dict[str, object] = dict(
        num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **kwargs
    )
    if pretrained_file is not None:
        path = Path(pretrained_file).expanduser()
        if not path.is_file():
            raise PretrainedWeightsUnavailableError(
                f"model.pretrained_file={str(path)!r} does not exist. Pass the path of a saved "
                "state dict, or set model.pretrained_file=null."
            )
        try:
            return timm.create_model(
                name,
                pretrained=True,
                pretrained_cfg_overlay={"file": str(path.resolve())},
                **create_kwargs,
            )
        except (RuntimeError, KeyError, ValueError) as error:
            raise PretrainedWeightsUnavailableError(
                f"Could not load weights file {str(path)!r} into backbone {name!r}: {error}. "
                "Check that the file holds a state dict saved from the same architecture."
            ) from error
    if not pretrained:
        return timm.create_model(name, pretrained=False, **create_kwargs)
    check_has_weights(name)
    if not hub_reachable():
        _force_hub_offline()
    try:
        return timm.create_model(name, pretrained=True, **create_kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        raise PretrainedWeightsUnavailableError(_offline_message(name, error)) from error
