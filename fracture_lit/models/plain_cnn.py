"""The plain (non-residual) CNN family behind the papers' from-scratch models.

One configurable class: blocks of 3x3 conv-BN-ReLU with max-pool and dropout, then a head
(global pooling or flatten, an optional dense layer, the classifier). timm's interface
(``forward_features``/``forward_head``, ``reset_classifier``, ``feature_info``, gradient
checkpointing) so freezing, head swapping and Grad-CAM treat it like any timm backbone. The
registered variants and their paper sources are in :mod:`fracture_lit.models.custom_cnns`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import SelectAdaptivePool2d, to_2tuple
from timm.models import checkpoint_seq
from torch import nn

__all__ = ["IGNORED_TIMM_KWARGS", "PlainCNN"]

# Keyword arguments that timm (or configs written for timm backbones) may pass but that have no
# meaning for plain CNNs without residual blocks; they are dropped silently. Anything else that is
# unknown is dropped with a warning so a typo in a config does not pass unnoticed.
IGNORED_TIMM_KWARGS = frozenset(
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
        unknown = sorted(set(kwargs) - IGNORED_TIMM_KWARGS)
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
