"""Custom from-scratch CNNs from the reproduced papers, registered as timm models.

Several papers we reproduce did not fine-tune an ImageNet backbone but trained a small plain CNN
from scratch. Registering those CNNs with timm (instead of special-casing them in the
LightningModule) means the rest of the framework - ``timm.create_model``, freezing, head swapping,
Grad-CAM target layers, ``timm.data.resolve_model_data_config`` - treats them exactly like any other
backbone. Importing this module is enough to register them::

    import timm
    import fracture_lit.models.custom_cnns  # noqa: F401  (registers the models)

    model = timm.create_model("basic_cnn_52m", pretrained=False, num_classes=2, in_chans=1)

Registered models (parameter counts at ``num_classes=2, in_chans=3``):

* ``xray_cnn_5m`` (paper B, Hindocha et al.): "3x3 convs, batch norm, max-pool, dropout, fully
  connected, softmax; ~5.6M parameters, trained from scratch". The paper gives no layer table, so
  this is a plausible VGG-style design hitting the count: five blocks of 3x3 conv-BN-ReLU
  (widths 32/64/128/256/512, depths 2/2/2/3/2), each followed by max-pool 2 and dropout; then global
  average pooling, a 512-unit FC + BN + ReLU, dropout and the classifier. 5,568,738 parameters.
  Global average pooling makes the count independent of the input size.
* ``basic_cnn_52m`` (paper C's "basic CNN"): three blocks of two 3x3 conv-BN-ReLU (32, 64, 128
  filters), max-pool 2, dropout 0.3; flatten; dense 512 + BN + ReLU + dropout 0.3; classifier.
  51,669,730 parameters at 224x224, almost all of them in the 128*28*28 -> 512 dense layer, so the
  count (and the model) depends on ``img_size``.
* ``small_cnn_128`` (paper E): three blocks of Conv2D + ReLU, batch norm, max-pool, dropout;
  flatten; dense; output. 128x128 input. 4,288,386 parameters. See :func:`small_cnn_128` for the
  choices we made where the paper is vague.

The paper models end in softmax (or a sigmoid unit); like every timm model these return logits and
the loss / metrics apply the softmax. None of them has pretrained weights.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import SelectAdaptivePool2d, to_2tuple
from timm.models import (
    build_model_with_cfg,
    checkpoint_seq,
    generate_default_cfgs,
    get_pretrained_cfg,
    register_model,
)
from torch import nn

__all__ = ["PlainCNN", "basic_cnn_52m", "small_cnn_128", "xray_cnn_5m"]

# Keyword arguments that timm (or configs written for timm backbones) may pass but that have no
# meaning for plain CNNs without residual blocks; they are dropped silently. Anything else that is
# unknown is dropped with a warning so a typo in a config does not pass unnoticed.
_IGNORED_TIMM_KWARGS = frozenset(
    {"drop_path_rate", "drop_block_rate", "drop_connect_rate", "bn_tf", "pretrained_strict"}
)


def _conv_block(
    in_chs: int,
    out_chs: int,
    depth: int,
    order: str,
    drop_rate: float,
) -> nn.Sequential:
    """One "conv block" of the papers: ``depth`` 3x3 convs with BN + ReLU, max-pool 2, dropout.

    ``order`` is ``"conv_bn_act"`` (papers B, C) or ``"conv_act_bn"`` (paper E, whose Keras model
    applies ReLU inside ``Conv2D`` and batch norm afterwards). With ``conv_bn_act`` the conv bias is
    redundant (BN subtracts the mean right away) and is left out; with ``conv_act_bn`` the ReLU sits
    in between, so the bias is kept as in Keras.
    """
    if order not in ("conv_bn_act", "conv_act_bn"):
        raise ValueError(f"order must be 'conv_bn_act' or 'conv_act_bn', got {order!r}")
    layers: list[tuple[str, nn.Module]] = []
    chs = in_chs
    for i in range(1, depth + 1):
        # Single-conv blocks use unnumbered names (conv, bn, act), which read better in configs.
        sfx = str(i) if depth > 1 else ""
        conv = nn.Conv2d(chs, out_chs, 3, padding=1, bias=order == "conv_act_bn")
        if order == "conv_bn_act":
            layers += [(f"conv{sfx}", conv), (f"bn{sfx}", nn.BatchNorm2d(out_chs))]
            layers.append((f"act{sfx}", nn.ReLU(inplace=True)))
        else:
            layers += [(f"conv{sfx}", conv), (f"act{sfx}", nn.ReLU(inplace=True))]
            layers.append((f"bn{sfx}", nn.BatchNorm2d(out_chs)))
        chs = out_chs
    layers += [("pool", nn.MaxPool2d(2)), ("drop", nn.Dropout(drop_rate))]
    return nn.Sequential(OrderedDict(layers))


class PlainCNN(nn.Module):
    """A plain (non-residual) CNN with the timm model interface.

    Layout: ``stages`` (an ``nn.Sequential`` of conv blocks, see :func:`_conv_block`), then either
    global pooling (``head_type="pool"``, input-size independent) or flattening
    (``head_type="flatten"``, as in the papers' Keras models, which fixes the input size), an optional
    hidden dense layer (``pre_logits``), ``head_drop`` (dropout with ``drop_rate``) and the
    classifier ``fc``.

    Following timm, ``num_features`` is the channel count of ``forward_features`` and
    ``head_hidden_size`` the width of ``forward_head(x, pre_logits=True)`` (the hidden dense layer,
    if any); ``reset_classifier`` replaces only ``fc`` and keeps the hidden dense layer, which is
    part of the papers' architectures.
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        num_classes: int = 2,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        stage_drop_rate: float = 0.0,
        block_order: str = "conv_bn_act",
        head_type: str = "pool",
        global_pool: str = "avg",
        hidden_dim: int = 0,
        hidden_norm: bool = True,
        img_size: int | Sequence[int] = 224,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the network.

        Args:
            widths: output channels of each conv block.
            depths: number of 3x3 convs in each conv block.
            num_classes: classifier outputs; 0 makes ``fc`` an identity (feature extractor).
            in_chans: input channels (1 for raw grayscale X-rays, 3 for replicated channels).
            drop_rate: dropout right before the classifier (timm's ``drop_rate`` semantics).
            stage_drop_rate: dropout at the end of every conv block (the papers' block dropout).
            block_order: ``"conv_bn_act"`` or ``"conv_act_bn"``, see :func:`_conv_block`.
            head_type: ``"pool"`` (global pooling) or ``"flatten"`` (flatten the last feature map).
            global_pool: timm pool type for ``head_type="pool"``; for ``"flatten"`` only
                ``"flatten"``/``""`` are accepted since pooling would change the dense layer.
            hidden_dim: width of the dense layer before the classifier; 0 for none.
            hidden_norm: batch norm after the hidden dense layer (papers B, C) or not (paper E).
            img_size: input height/width; only used by ``head_type="flatten"``, whose dense layer
                size depends on it.
            device: device to create the parameters on (timm passes it through).
            dtype: parameter dtype (timm passes it through).
            **kwargs: other timm keyword arguments; ignored (with a warning for unknown ones).
        """
        super().__init__()
        unknown = sorted(set(kwargs) - _IGNORED_TIMM_KWARGS)
        if unknown:
            warnings.warn(
                f"{type(self).__name__} ignores unsupported keyword arguments: {unknown}",
                stacklevel=2,
            )
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty, same length")
        if head_type not in ("pool", "flatten"):
            raise ValueError(f"head_type must be 'pool' or 'flatten', got {head_type!r}")
        if head_type == "pool" and hidden_dim > 0 and not global_pool:
            raise ValueError(
                "global_pool='' (no pooling) is not supported with a hidden dense layer; use "
                "forward_features() for unpooled feature maps"
            )
        if head_type == "flatten" and global_pool not in ("flatten", ""):
            raise ValueError(
                f"global_pool={global_pool!r} is not supported by a flatten-head model: its dense "
                "layer size is fixed by the flattened feature map"
            )

        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.head_type = head_type
        self.img_size: tuple[int, int] = tuple(to_2tuple(img_size))  # type: ignore[assignment]
        self.grad_checkpointing = False

        stages: list[nn.Module] = []
        self.feature_info: list[dict[str, Any]] = []
        chs, reduction = in_chans, 1
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            stages.append(_conv_block(chs, width, depth, block_order, stage_drop_rate))
            chs, reduction = width, reduction * 2
            self.feature_info.append(dict(num_chs=chs, reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = chs

        if head_type == "pool":
            self.feat_size: tuple[int, int] | None = None
            self.global_pool: nn.Module = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
            head_in = chs * self.global_pool.feat_mult()
        else:
            # MaxPool2d(2) floors, exactly like Keras' "valid" pooling of odd sizes.
            h, w = self.img_size
            for _ in widths:
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise ValueError(
                    f"img_size {self.img_size} is too small for {len(widths)} poolings"
                )
            self.feat_size = (h, w)
            self.global_pool = nn.Flatten(1)
            head_in = chs * h * w

        if hidden_dim > 0:
            layers: list[tuple[str, nn.Module]] = [
                ("fc", nn.Linear(head_in, hidden_dim, bias=not hidden_norm))
            ]
            if hidden_norm:
                layers.append(("norm", nn.BatchNorm1d(hidden_dim)))
            layers.append(("act", nn.ReLU(inplace=True)))
            self.pre_logits: nn.Module = nn.Sequential(OrderedDict(layers))
            self.head_hidden_size = hidden_dim
        else:
            self.pre_logits = nn.Identity()
            self.head_hidden_size = head_in
        self.head_drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = self._make_fc(num_classes)

        self._init_weights()
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        # He init suits ReLU networks trained from scratch better than PyTorch's default
        # (kaiming_uniform with a=sqrt(5)); BN starts as identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise LR decay / freezing helpers (as timm's VGG)."""
        return dict(stem=r"^stages\.0", blocks=r"^stages\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute stage activations in backward to save memory (timm API)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The final classifier layer (timm API); the hidden dense layer is not part of it."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs (0: identity).

        ``global_pool`` may change the pooling of ``head_type="pool"`` models; flatten-head models
        only accept ``None``/``"flatten"``/``""`` because pooling would invalidate the dense layer.
        """
        self.num_classes = num_classes
        if global_pool is not None:
            if self.head_type == "flatten":
                if global_pool not in ("flatten", ""):
                    raise ValueError(
                        f"global_pool={global_pool!r} is not supported by a flatten-head model"
                    )
            else:
                pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
                if isinstance(self.pre_logits, nn.Identity):
                    self.global_pool = pool
                    self.head_hidden_size = self.num_features * pool.feat_mult()
                elif not global_pool or pool.feat_mult() != self.global_pool.feat_mult():
                    raise ValueError(
                        f"global_pool={global_pool!r} changes the hidden dense layer's input size"
                    )
                else:
                    self.global_pool = pool
        old = self.fc.weight if isinstance(self.fc, nn.Linear) else None
        self.fc = self._make_fc(num_classes)
        if old is not None:
            self.fc.to(device=old.device, dtype=old.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv blocks only: ``(B, in_chans, H, W) -> (B, num_features, H/2^n, W/2^n)``."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.stages, x)
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool/flatten, hidden dense layer, dropout and (unless ``pre_logits``) the classifier."""
        if (
            self.feat_size is not None
            and not isinstance(x, torch.fx.Proxy)
            and tuple(x.shape[-2:]) != self.feat_size
        ):
            raise ValueError(
                f"feature map {tuple(x.shape[-2:])} does not match the {self.feat_size} this "
                f"flatten-head model was built for (img_size={self.img_size}); create the model "
                "with img_size matching the input resolution"
            )
        x = self.global_pool(x)
        x = self.pre_logits(x)
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``; apply softmax in the loss/metrics, not here."""
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs: Any) -> dict[str, Any]:
    """Default (pretrained) cfg shared by the custom CNNs.

    mean (0, 0, 0) / std (1, 1, 1): these models have no ImageNet weights and the papers trained
    them on images scaled to [0, 1] (Keras ``rescale=1/255``), so "normalisation" is the identity
    after ``ToTensor``-style scaling. crop_pct 1.0: resize the whole radiograph, do not centre-crop
    away the edges where fractures may be.
    """
    return {
        "url": "",
        "num_classes": 2,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "first_conv": "stages.0.conv1",
        "classifier": "fc",
        "license": "mit",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "xray_cnn_5m": _cfg(
            pool_size=(7, 7),
            paper_name="Hindocha et al. (paper B): custom CNN trained from scratch",
        ),
        "basic_cnn_52m": _cfg(
            fixed_input_size=True,
            paper_name="Paper C: basic CNN baseline",
        ),
        "small_cnn_128": _cfg(
            input_size=(3, 128, 128),
            fixed_input_size=True,
            first_conv="stages.0.conv",
            paper_name="Paper E: small CNN",
        ),
    }
)


def _create_plain_cnn(variant: str, pretrained: bool = False, **kwargs: Any) -> PlainCNN:
    """Build a registered custom CNN through timm's ``build_model_with_cfg``.

    Besides the usual timm handling (``pretrained_cfg``/``pretrained_cfg_overlay``,
    ``features_only``, ``cache_dir``), this rewrites the model's ``pretrained_cfg`` so that
    ``input_size`` (and the length of ``mean``/``std``) describes the model actually built, i.e.
    honours ``in_chans`` and ``img_size``. ``timm.data.resolve_model_data_config(model)`` then yields
    the resolution a flatten-head model needs.
    """
    if pretrained:
        raise ValueError(
            f"{variant} is a custom CNN trained from scratch and has no pretrained weights; set "
            "model.weights=none (to resume from your own weights, load a checkpoint instead, "
            "e.g. timm.create_model(..., checkpoint_path=...))"
        )
    # Work out the effective cfg (registry default + any user pretrained_cfg / overlay) to learn the
    # default in_chans / img_size, then overlay the values the model is really built with.
    base = get_pretrained_cfg(variant)
    user_cfg = kwargs.get("pretrained_cfg")
    if isinstance(user_cfg, dict):
        cfg = dict(user_cfg)
    elif user_cfg is not None and hasattr(user_cfg, "to_dict"):
        cfg = user_cfg.to_dict()
    else:
        cfg = base.to_dict() if base is not None else _cfg()
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    cfg.update(overlay)

    default_size = cfg.get("input_size") or (3, 224, 224)
    in_chans = int(kwargs.get("in_chans", default_size[0]))
    img_size = kwargs.get("img_size", default_size[-2:])
    h, w = to_2tuple(img_size)
    overlay["input_size"] = (in_chans, int(h), int(w))
    if cfg.get("fixed_input_size"):
        kwargs["img_size"] = (int(h), int(w))
    else:
        kwargs.pop("img_size", None)  # size-independent model: only recorded in the cfg
    for key in ("mean", "std"):
        stat = tuple(cfg[key])
        if len(stat) != in_chans and len(set(stat)) == 1:
            overlay[key] = stat[:1] * in_chans
    # features_only: expose every conv block; "stages" is an nn.Sequential to flatten into the list.
    feature_cfg = dict(flatten_sequential=True, out_indices=tuple(range(len(kwargs["depths"]))))
    return build_model_with_cfg(
        PlainCNN,
        variant,
        pretrained=False,
        pretrained_cfg_overlay=overlay,
        feature_cfg=feature_cfg,
        **kwargs,
    )


@register_model
def xray_cnn_5m(pretrained: bool = False, **kwargs: Any) -> PlainCNN:
    """Paper B (Hindocha et al.) custom CNN, ~5.57M parameters, trained from scratch.

    The paper only says "3x3 convs, batch norm, max-pool, dropout, fully connected, softmax" and
    "~5.6M parameters", so the layer layout is ours: five VGG-style blocks (widths 32/64/128/256/512,
    depths 2/2/2/3/2) of conv-BN-ReLU, each with max-pool 2 and dropout 0.1 (light, because batch
    norm already regularises); global average pooling (so any input size works and the count does
    not depend on it); FC 512 + BN + ReLU; dropout 0.5 (``drop_rate``); classifier.
    """
    model_args = dict(
        widths=(32, 64, 128, 256, 512),
        depths=(2, 2, 2, 3, 2),
        block_order="conv_bn_act",
        head_type="pool",
        hidden_dim=512,
        hidden_norm=True,
        stage_drop_rate=0.1,
        drop_rate=0.5,
    )
    return _create_plain_cnn("xray_cnn_5m", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def basic_cnn_52m(pretrained: bool = False, **kwargs: Any) -> PlainCNN:
    """Paper C's basic CNN, ~51.67M parameters at 224x224 (takes ``img_size``, default 224).

    Three blocks of two 3x3 conv-BN-ReLU (32, 64, 128 filters), max-pool 2, dropout 0.3; flatten
    (128x28x28 at 224); dense 512 + BN + ReLU; dropout 0.3 (``drop_rate``); classifier. The flatten
    into the dense layer holds 51.4M of the parameters, hence the fixed input size.
    """
    model_args = dict(
        widths=(32, 64, 128),
        depths=(2, 2, 2),
        block_order="conv_bn_act",
        head_type="flatten",
        global_pool="flatten",
        hidden_dim=512,
        hidden_norm=True,
        stage_drop_rate=0.3,
        drop_rate=0.3,
    )
    return _create_plain_cnn("basic_cnn_52m", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def small_cnn_128(pretrained: bool = False, **kwargs: Any) -> PlainCNN:
    """Paper E's small CNN for 128x128 input (takes ``img_size``, default 128), ~4.29M parameters.

    Paper E: three blocks of Conv2D + ReLU, batch norm, max-pool, dropout; flatten; dense; one
    output. It gives neither filter counts, dense width nor dropout rates, so we chose: 32/64/128
    filters (one 3x3 conv per block, with bias as in Keras), max-pool 2, dropout 0.25 per block;
    flatten (128x16x16); dense 128 + ReLU (no batch norm there, none is mentioned); no extra head
    dropout (``drop_rate`` 0); ``num_classes`` outputs instead of the single sigmoid unit so it
    plugs into the same softmax/CE pipeline as the other models.
    """
    model_args = dict(
        widths=(32, 64, 128),
        depths=(1, 1, 1),
        block_order="conv_act_bn",
        head_type="flatten",
        global_pool="flatten",
        hidden_dim=128,
        hidden_norm=False,
        stage_drop_rate=0.25,
        drop_rate=0.0,
    )
    return _create_plain_cnn("small_cnn_128", pretrained=pretrained, **dict(model_args, **kwargs))
