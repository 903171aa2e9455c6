"""Export a trained checkpoint to ONNX, check it against PyTorch, and record the result.

:func:`export` checks the request (one checkpoint file, a supported format), builds the
graph with :mod:`.onnx_model`, compares ONNX Runtime with PyTorch (``check=true``) and
writes ``export.json`` beside the model whatever happens once the output path is known
(status, error, traceback), so a failed export leaves its reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fracture_lit.layout import RunLayout
from fracture_lit.models.loading import load_checkpoint
from fracture_lit.results.job_record import job_record
from fracture_lit.tasks.onnx_model import (
    ExportError,
    check_onnx,
    deployment_metadata,
    export_onnx,
    exporter_name,
    io_shapes,
)
from fracture_lit.validation import validate_export

__all__ = ["FORMATS", "export", "run"]

log = logging.getLogger("fracture_lit.export")

FORMATS = ("onnx",)


def _output_path(cfg: DictConfig) -> Path:
    output = cfg.get("output")
    if output in (None, ""):
        return RunLayout(cfg.paths.output_dir).onnx_model
    return Path(str(output)).expanduser()


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export, check and report one checkpoint; returns what export.json holds.

    export.json is written whatever happens once the output path is known (status, error,
    traceback; :func:`~fracture_lit.results.job_record.job_record`), so a failed export
    leaves its reason.
    """
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ExportError(
            "ckpt_path is required: python -m fracture_lit.export "
            "ckpt_path=<run folder>/checkpoints/epoch_NNN.ckpt"
        )
    if not isinstance(cfg.ckpt_path, str) or Path(cfg.ckpt_path).expanduser().is_dir():
        raise ExportError(
            f"ckpt_path={cfg.ckpt_path}: export writes one network, from one checkpoint file; "
            "an ensemble (a list or a sweep folder) is not one graph. Export each member, "
            "or evaluate/predict with the ensemble."
        )
    fmt = str(cfg.get("format", "onnx")).lower()
    if fmt not in FORMATS:
        raise ExportError(
            f"format={cfg.format!r} is not supported; supported formats: {', '.join(FORMATS)}."
        )
    batch_size, atol = int(cfg.batch_size), float(cfg.atol)
    if batch_size < 1:
        raise ExportError(f"batch_size={batch_size}: the check needs at least one row.")

    path = _output_path(cfg)
    report: dict[str, Any] = {
        "status": "failed",
        "format": fmt,
        "path": str(path.resolve()),
        "source_checkpoint": str(Path(str(cfg.ckpt_path)).expanduser().resolve()),
        "opset": int(cfg.opset),
        "exporter": exporter_name(bool(cfg.dynamo)),
    }

    written = RunLayout.beside(path).export_report

    def write(record: dict[str, Any]) -> None:
        if record["status"] == "done" or path.parent.is_dir():
            written.write_text(json.dumps(record, indent=2) + "\n")

    with job_record(report, write):
        log.info("Loading %s", cfg.ckpt_path)
        loaded = load_checkpoint(cfg.ckpt_path)
        metadata = deployment_metadata(loaded)
        example_batch = batch_size + 1
        log.info(
            "Exporting %s (%s, %d x %d px, %d channels) to %s, opset %d",
            loaded.backbone,
            "/".join(loaded.class_names),
            loaded.image_size,
            loaded.image_size,
            loaded.in_chans,
            path,
            int(cfg.opset),
        )
        export_onnx(
            loaded,
            path,
            opset=int(cfg.opset),
            dynamo=bool(cfg.dynamo),
            example_batch=example_batch,
            metadata=metadata,
        )
        report["traced_batch_size"] = example_batch
        report["size_mb"] = round(path.stat().st_size / 2**20, 2)
        report.update(io_shapes(path))
        report["metadata"] = metadata
        if cfg.get("check", True):
            check = check_onnx(loaded, path, batch_size=batch_size, atol=atol)
            report.update(
                max_abs_diff=check.pop("max_abs_diff"),
                atol=atol,
                check=check,
            )
            log.info(
                "ONNX Runtime vs PyTorch on a batch of %d: max abs diff %.3g "
                "(probs %.3g, logits %.3g; atol %g)",
                batch_size,
                report["max_abs_diff"],
                check["max_abs_diff_by_output"]["probs"],
                check["max_abs_diff_by_output"]["logits"],
                atol,
            )
            if not check["passed"]:
                raise ExportError(
                    f"{path}: ONNX Runtime and PyTorch differ by up to "
                    f"{report['max_abs_diff']:.3g} (> atol={atol:g}) on a batch of "
                    f"{batch_size}. The file is kept for inspection but must not be deployed; "
                    "try dynamo=false or another opset=, or raise atol= if the gap is expected."
                )
        else:
            log.warning("check=false: the exported model was not compared with PyTorch.")
            report.update(max_abs_diff=None, atol=atol)
    log.info("Wrote %s (%.2f MB) and %s", path, report["size_mb"], written)
    return report


def run(cfg: DictConfig) -> dict[str, Any]:
    """``python -m fracture_lit.export``: every value checked, then :func:`export`."""
    validate_export(cfg)
    return export(cfg)
