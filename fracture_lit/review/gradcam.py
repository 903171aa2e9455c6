"""Grad-CAM heatmaps for any timm backbone, with pytorch-grad-cam doing the maths.

What is model specific is *where* to look and *how* to read that layer's output:

* CNNs: the last feature stage timm lists in ``feature_info`` (``layer4`` for ResNets,
  ``blocks.6`` for EfficientNets), whose output is ``(B, C, H, W)``;
* ViT-style models: the last block's ``norm1``, whose output is tokens ``(B, N, C)``: the
  class/register tokens are dropped and the patch tokens folded back into their grid;
* channels-last stages (Swin, some ConvNeXt variants) give ``(B, H, W, C)``: permuted.

The reshape is chosen by probing the layer's output once, so a backbone nobody listed
still works; ``target_layer`` (a module name, e.g. ``layer3``) overrides the choice.

pytorch-grad-cam is imported where a map is computed, not with this module: its package
import loads every CAM method and their dependencies (seconds), which predict, serve and
a training run without Grad-CAM never need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from fracture_lit.utils.import_guard import import_without

__all__ = ["CamExplainer", "find_target_layer", "overlay", "captioned_overlay"]

Reshape = Callable[[torch.Tensor], torch.Tensor] | None


@dataclass
class TargetLayer:
    name: str
    module: nn.Module
    reshape: Reshape


def _named(net: nn.Module, name: str) -> nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError:
        pass
    # timm's feature_info sometimes names modules with "_" where the path has ".".
    alt = name.replace("_", ".")
    try:
        return net.get_submodule(alt)
    except AttributeError as error:
        names = [n for n, _ in net.named_modules() if n][-12:]
        raise ValueError(
            f"gradcam target_layer={name!r} is not a module of {type(net).__name__}; "
            f"its last modules are: {', '.join(names)}."
        ) from error


def _default_layer_name(net: nn.Module) -> str:
    if hasattr(net, "patch_embed") and hasattr(net, "blocks") and len(net.blocks):
        last = len(net.blocks) - 1
        if hasattr(net.blocks[last], "norm1"):
            return f"blocks.{last}.norm1"
        return f"blocks.{last}"
    info = getattr(net, "feature_info", None)
    if info:
        entries = info if isinstance(info, list) else list(info.get_dicts())
        module = entries[-1].get("module")
        if module:
            return str(module)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"{type(net).__name__} has no feature_info, no ViT blocks and no Conv2d: set "
            "the Grad-CAM target layer (gradcam.target_layer=<module name>)."
        )
    return convs[-1]


def _token_reshape(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    prefix = int(getattr(net, "num_prefix_tokens", 1))

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        n = patches.shape[1]
        grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
        h, w = (int(grid[0]), int(grid[1])) if grid and grid[0] * grid[1] == n else (0, 0)
        if not h:
            h = w = int(math.isqrt(n))
            if h * w != n:
                raise ValueError(f"cannot fold {n} patch tokens into a square grid")
        return patches.reshape(patches.shape[0], h, w, -1).permute(0, 3, 1, 2)

    return reshape


def _nhwc_reshape(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def find_target_layer(
    net: nn.Module, example: torch.Tensor, name: str | None = None
) -> TargetLayer:
    """The layer Grad-CAM reads, and how to turn its output into ``(B, C, H, W)``."""
    name = name or _default_layer_name(net)
    module = _named(net, name)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            net(example[:1])
    finally:
        handle.remove()
    out = seen[0] if seen else None
    if isinstance(out, tuple | list):
        out = out[0]
    if out is None or out.ndim not in (3, 4):
        raise ValueError(f"gradcam target layer {name!r} gives no (B,C,H,W) or token output")
    reshape: Reshape = None
    if out.ndim == 3:
        reshape = _token_reshape(net)
    else:
        channels = _channels(net)
        if channels and out.shape[-1] == channels and out.shape[1] != channels:
            reshape = _nhwc_reshape
    return TargetLayer(name=name, module=module, reshape=reshape)


def _channels(net: nn.Module) -> int | None:
    info = getattr(net, "feature_info", None)
    if not info:
        return None
    entries = info if isinstance(info, list) else list(info.get_dicts())
    return int(entries[-1].get("num_chs", 0)) or None


class CamExplainer:
    """Grad-CAM maps in [0, 1] at the input resolution for a batch and chosen classes."""

    def __init__(
        self, net: nn.Module, example: torch.Tensor, target_layer: str | None = None
    ) -> None:
        # pytorch-grad-cam loads scikit-learn, which imports pandas (~1 s on 2 cores) only
        # to recognise DataFrames: imported without it (utils/import_guard.py).
        GradCAM = import_without("pytorch_grad_cam", "pandas").GradCAM  # noqa: N806

        self.net = net
        self.layer = find_target_layer(net, example, target_layer)
        self._cam = GradCAM(
            model=net, target_layers=[self.layer.module], reshape_transform=self.layer.reshape
        )
        # A gradient on the input makes the layer's activations require grad, so the maps
        # exist even when the backbone is frozen (GradCAM's constructor does not take it).
        self._cam.compute_input_gradient = True

    def __call__(self, batch: torch.Tensor, classes: Sequence[int]) -> np.ndarray:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        was_training = self.net.training
        self.net.eval()
        try:
            # inference_mode(False): callers may sit inside Lightning's evaluation loop.
            with torch.inference_mode(False), torch.enable_grad():
                batch = batch.clone()  # a normal tensor, even if made in inference mode
                maps = self._cam(
                    input_tensor=batch, targets=[ClassifierOutputTarget(int(c)) for c in classes]
                )
        finally:
            self.net.zero_grad(set_to_none=True)
            self.net.train(was_training)
        return np.nan_to_num(maps.astype(np.float32))

    def close(self) -> None:
        """Remove pytorch-grad-cam's hooks from the network."""
        self._cam.activations_and_grads.release()


def overlay(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """RGB uint8 heatmap over a greyscale (or RGB) uint8 image of the same size."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    if cam.shape != rgb.shape[:2]:
        cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(
        rgb.astype(np.float32) / 255.0, cam, use_rgb=True, image_weight=image_weight
    )


OUTLINE_RGB = (0, 255, 0)  # the radiologists' regions: green reads over the jet colours


def captioned_overlay(
    image: np.ndarray,
    cam: np.ndarray,
    caption: str,
    min_side: int = 224,
    outlines: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """The image and its heatmap side by side, with a caption bar (RGB uint8).

    ``outlines``: polygons ``(K, 2)`` in image pixels (the annotated fracture regions,
    mapped to the model input) drawn on both halves, so a reader sees heatmap and truth.
    """
    scale = max(1.0, min_side / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    left = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    left = np.repeat(left[..., None], 3, axis=2) if left.ndim == 2 else left
    right = cv2.resize(overlay(image, cam), size, interpolation=cv2.INTER_LINEAR)
    if len(outlines):
        # Pixel-edge coordinates to cv2's pixel centres, with 4 fractional bits.
        fixed = [np.round((np.asarray(p) * scale - 0.5) * 16).astype(np.int32) for p in outlines]
        for half in (left, right):
            cv2.polylines(half, fixed, True, OUTLINE_RGB, 1, cv2.LINE_8, shift=4)
    panel = np.concatenate([left, np.full((size[1], 4, 3), 255, np.uint8), right], axis=1)
    bar = np.full((26, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, caption[:80], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return np.concatenate([bar, panel], axis=0)
