"""Freeze a backbone entirely or up to a named module, optionally keeping batch norm live.

Transfer-learning recipes in the papers freeze "the backbone" (paper E), "layers before
index 249 except batch norm" (paper C) or train everything; one option covers them all.
"""

from __future__ import annotations

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def head_parameter_names(model: nn.Module) -> set[str]:
    """Parameter names of the classifier head (timm's ``get_classifier``)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module):
        return set()
    head_ids = {id(p) for p in head.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in head_ids}


def freeze_backbone(model: nn.Module, freeze: str = "none", train_bn: bool = True) -> list[str]:
    """Set ``requires_grad`` per ``freeze`` and return the frozen module names.

    ``freeze`` is ``none``, ``all`` (everything but the head) or the name of a submodule
    (e.g. ``layer3``): every parameter registered before it is frozen, it and everything
    after it trains. Batch-norm layers of the frozen part stay trainable if ``train_bn``;
    otherwise they are also kept in eval mode by :func:`set_frozen_bn_eval`.
    """
    if freeze in (None, "none", False):
        for p in model.parameters():
            p.requires_grad_(True)
        return []
    head = head_parameter_names(model)
    names = [n for n, _ in model.named_parameters()]
    if freeze == "all":
        stop = next((i for i, n in enumerate(names) if n in head), len(names))
    else:
        module_names = {n for n, _ in model.named_modules()}
        if freeze not in module_names:
            tops = [n for n, _ in model.named_children()]
            raise ValueError(
                f"model.freeze={freeze!r} is not a module of this backbone. Use none, all, or "
                f"one of its modules, e.g. {', '.join(tops[:12])} (or a nested name like "
                f"{tops[min(1, len(tops) - 1)]}.0)."
            )
        prefix = freeze + "."
        stop = next((i for i, n in enumerate(names) if n.startswith(prefix)), len(names))
    frozen_params = set(names[:stop]) - head
    bn_params = {
        f"{mod_name}.{p_name}" if mod_name else p_name
        for mod_name, mod in model.named_modules()
        if isinstance(mod, _BatchNorm)
        for p_name, _ in mod.named_parameters(recurse=False)
    }
    for name, p in model.named_parameters():
        trainable = name not in frozen_params or (train_bn and name in bn_params)
        p.requires_grad_(trainable)
    return sorted({n.rsplit(".", 1)[0] for n in frozen_params})


def set_frozen_bn_eval(model: nn.Module) -> None:
    """Keep running statistics of fully frozen batch-norm layers fixed during training."""
    for mod in model.modules():
        if isinstance(mod, _BatchNorm) and not any(p.requires_grad for p in mod.parameters()):
            mod.eval()
