"""The ONNX graph of a checkpoint: built with the deployment metadata, and checked.

:func:`export_onnx` writes a graph that takes the normalised float batch ``images``
(N, in_chans, S, S), N dynamic, and returns ``probs`` (softmax, temperature inside) and
``logits``; everything a deployment needs to preprocess and threshold without the
checkpoint goes into its ``metadata_props`` (JSON strings, :func:`deployment_metadata`).
:func:`check_onnx` runs it with ONNX Runtime against PyTorch on a batch of another size
than the one traced. ``read_metadata(path)`` reads the metadata of an exported file.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from fracture_lit import __version__
from fracture_lit.data.transforms import Normalizer
from fracture_lit.errors import UserError

__all__ = ["ExportError", "INPUT_NAME", "OUTPUT_NAMES", "check_onnx", "deployment_metadata",
           "export_onnx", "exporter_name", "io_shapes", "read_metadata"]  # fmt: skip

log = logging.getLogger("fracture_lit.export")

INPUT_NAME = "images"
OUTPUT_NAMES = ("probs", "logits")
# Bumped when the meaning of a metadata key changes, so deployments can tell.
METADATA_VERSION = 1


class ExportError(UserError, RuntimeError):
    """The export cannot be made, or what it made does not compute what PyTorch does."""


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def deployment_metadata(loaded: Any) -> dict[str, Any]:
    """What a deployment must know to feed the graph and read its output.

    The training pipeline decodes greyscale, resizes to ``image_size`` (``resize_mode``),
    applies ``preprocess``, then :class:`~fracture_lit.data.transforms.Normalizer` scales
    uint8 to [0, 1], repeats grey to ``in_chans`` and standardises with ``mean``/``std``;
    the graph starts after that, so these values must travel with it.
    """
    settings = loaded.settings
    normalizer = Normalizer(settings.normalize, settings.in_chans)
    class_names = list(settings.class_names)
    return {
        "metadata_version": METADATA_VERSION,
        "class_names": class_names,
        "num_classes": len(class_names),
        # Binary models flag probs[:, 1] > threshold; multi-class ones take the argmax.
        "decision_threshold": float(settings.threshold),
        "positive_class": settings.positive_class,
        "image_size": settings.image_size,
        "resize_mode": settings.resize_mode,
        "preprocess": settings.to_dict()["preprocess"],
        "normalize": settings.normalize,
        "mean": [round(float(v), 6) for v in normalizer.mean.flatten()],
        "std": [round(float(v), 6) for v in normalizer.std.flatten()],
        "in_chans": settings.in_chans,
        # The graph's probs are softmax(logits / temperature): the threshold applies to them.
        "temperature": float(settings.temperature),
        "input": (
            f"{INPUT_NAME}: float32 (N, in_chans, image_size, image_size); per image: decode "
            "greyscale, fit to image_size (resize_mode), apply preprocess, x = pixels / 255 "
            "repeated to in_chans channels, then (x - mean) / std per channel"
        ),
        "outputs": list(OUTPUT_NAMES),
        "backbone": loaded.backbone,
        "source_checkpoint": str(Path(loaded.path).resolve()),
        "fracture_lit_version": __version__,
    }


def _probs_and_logits(net: Any, temperature: float = 1.0) -> Any:
    """The timm network with the (temperature-scaled) softmax inside the graph: deployments
    then never get the probabilities wrong, and the logits stay available."""

    class ProbsAndLogits(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.net(images).float()
            return torch.softmax(logits / temperature, dim=1), logits

    return ProbsAndLogits(net).eval()


def export_onnx(
    loaded: Any,
    path: Path,
    *,
    opset: int,
    dynamo: bool,
    example_batch: int,
    metadata: dict[str, Any],
) -> None:
    """Write ``loaded``'s network to ``path`` as ONNX, batch axis dynamic, with metadata."""
    size, chans = loaded.image_size, loaded.in_chans
    example = torch.randn(
        example_batch, chans, size, size, generator=torch.Generator().manual_seed(1)
    )
    wrapper = _probs_and_logits(loaded.model.net, loaded.settings.temperature)
    if dynamo:
        # torch.export specialises axes of size 0/1, hence an example batch of 2 or more.
        shapes: dict[str, Any] = {
            "dynamic_shapes": {"images": {0: torch.export.Dim("batch", min=1)}}
        }
    else:
        shapes = {"dynamic_axes": {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        with (
            torch.no_grad(),
            _quiet_loggers("onnxscript", "onnx_ir", "torch.onnx"),
            warnings.catch_warnings(),
        ):
            # dynamo=false is an explicit choice; its deprecation notice is no news.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamo=dynamo,
                external_data=False,
                verbose=False,
                **shapes,
            )
    except Exception as error:
        other = "dynamo=false (the legacy TorchScript exporter)" if dynamo else "dynamo=true"
        raise ExportError(
            f"torch.onnx.export (dynamo={str(dynamo).lower()}, opset {opset}) failed for "
            f"backbone {loaded.backbone!r}: {_first_line(error)}. Try {other}, or another "
            "opset=; export.json holds the full traceback."
        ) from error
    log.info("Exported in %.1f s (%s exporter)", time.time() - started, exporter_name(dynamo))

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.doc_string = (
        f"fracture_lit {loaded.backbone} classifier ({', '.join(loaded.class_names)}); "
        "see metadata_props for preprocessing and the decision threshold."
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The exporter's optimiser logs every pass at INFO, which Hydra's root logger shows."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def exporter_name(dynamo: bool) -> str:
    return "torch.export (dynamo)" if dynamo else "TorchScript (legacy)"


def io_shapes(path: str | Path) -> dict[str, dict[str, list[int | str]]]:
    """Inputs' and outputs' shapes as declared by the graph (a name for a dynamic axis)."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def shape(value: Any) -> list[int | str]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims]

    return {
        "inputs": {v.name: shape(v) for v in graph.input},
        "outputs": {v.name: shape(v) for v in graph.output},
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The deployment metadata of an exported model, decoded from its JSON strings."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def check_onnx(loaded: Any, path: Path, *, batch_size: int, atol: float) -> dict[str, Any]:
    """Run ONNX Runtime (CPU) and PyTorch on one random batch; raise when they disagree.

    The batch is normalised-scale noise of ``batch_size`` rows (not the traced size), so a
    batch axis frozen by the exporter fails here rather than in deployment.
    """
    size, chans = loaded.image_size, loaded.in_chans
    images = torch.randn(batch_size, chans, size, size, generator=torch.Generator().manual_seed(0))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are about its own tuning
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        results = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
        got = dict(zip(OUTPUT_NAMES, results, strict=True))
    except Exception as error:
        raise ExportError(
            f"ONNX Runtime {ort.__version__} cannot run {path} on a batch of {batch_size}: "
            f"{_first_line(error)}"
        ) from error
    with torch.inference_mode():  # the fp32 logits every scoring path computes
        logits = loaded.model.score_logits(images)
        probs = torch.softmax(logits / loaded.settings.temperature, dim=1)
        want = {"probs": probs.numpy(), "logits": logits.numpy()}

    diffs: dict[str, float] = {}
    for name in OUTPUT_NAMES:
        if got[name].shape != want[name].shape:
            raise ExportError(
                f"{path}: output {name!r} has shape {list(got[name].shape)} in ONNX Runtime "
                f"but {list(want[name].shape)} in PyTorch (batch of {batch_size})."
            )
        diffs[name] = float(np.abs(got[name] - want[name]).max())
    max_diff = max(diffs.values())
    return {
        "batch_size": batch_size,
        "max_abs_diff": max_diff,
        "max_abs_diff_by_output": diffs,
        "passed": max_diff <= atol,
        "onnxruntime": ort.__version__,
    }
