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

from typing import Any

from timm.layers import to_2tuple
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    get_pretrained_cfg,
    register_model,
)

from fracture_lit.models.plain_cnn import PlainCNN

__all__ = ["PlainCNN", "basic_cnn_52m", "small_cnn_128", "xray_cnn_5m"]


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
