"""Predict new images with a checkpoint (or an ensemble) and write ``predictions.csv``.

Every file is fed exactly as the checkpoint was trained
(:class:`~fracture_lit.inference.InputPipeline`); the CSV holds the path, the probability
of the positive class, the label at the checkpoint's validation-chosen threshold and every
class's probability. A file that cannot be read gets a row with ``status=error`` and the
reason; the others are still predicted. ``gradcam.enabled=true`` adds a heatmap panel per
image. Rows are written batch by batch, so an interrupted run keeps what it predicted.
``regions=<COCO file>`` scores the Grad-CAM of the inputs with regions against them
(:mod:`fracture_lit.tasks.localizing`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS
from fracture_lit.data.readers import list_inputs
from fracture_lit.layout import RunLayout
from fracture_lit.review.panels import CamPanelWriter, cam_class
from fracture_lit.tasks.checkpoints import configured_ensemble
from fracture_lit.tasks.localizing import localize_predictions
from fracture_lit.validation import validate_predict

__all__ = ["predict"]

log = logging.getLogger("fracture_lit.predict")


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _columns(class_names: Sequence[str]) -> list[str]:
    probs = [f"prob_{name}" for name in class_names]
    return [
        "path",
        "status",
        "probability",
        "label",
        *probs,
        "threshold",
        "note",
        "gradcam",
        "error",
    ]


def predict(cfg: DictConfig) -> Path:
    """Write the CSV (rows in input order) and return its path."""
    validate_predict(cfg)
    out_dir = RunLayout(cfg.paths.output_dir)
    out_csv = Path(cfg.output) if cfg.get("output") else out_dir.predict_csv
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    files = list_inputs(cfg.input)
    if not files:
        raise FileNotFoundError(
            f"input={cfg.input}: no image or DICOM file found (suffixes .jpg .png .bmp .tif "
            ".dcm, or DICOM files without a suffix)."
        )
    ensemble = configured_ensemble(cfg, max_pixels=cfg.get("max_image_pixels", DEFAULT_MAX_PIXELS))
    settings = ensemble.settings
    first = ensemble.members[0]
    names = list(settings.class_names)
    window = tuple(float(v) for v in cfg.window) if cfg.get("window") else None
    cam_dir = out_dir.predict_gradcam
    # Heatmaps explain the first member (an average of heatmaps explains no network).
    panels = CamPanelWriter(first.model.net, cfg.gradcam.target_layer)
    n_ok = n_bad = 0
    scored: list[tuple[str, Any]] = []  # (path, probabilities) for regions=

    with out_csv.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=_columns(names))
        writer.writeheader()
        for chunk in _batches(files, int(cfg.batch_size)):
            rows: list[dict[str, Any]] = []
            images, image_rows = [], []
            for item in ensemble.predict_files(chunk, window):
                row: dict[str, Any] = {"path": str(item.path)}
                rows.append(row)
                if item.error:
                    row.update(status="error", error=item.error)
                    n_bad += 1
                    continue
                p = item.probs
                predicted = settings.label(p)
                row.update(
                    status="ok",
                    note=item.note,
                    probability=round(float(p[1] if settings.binary else p[predicted]), 6),
                    label=names[predicted],
                    threshold=round(settings.threshold, 6) if settings.binary else "",
                    **{f"prob_{n}": round(float(v), 6) for n, v in zip(names, p, strict=True)},
                )
                images.append(item.image)
                image_rows.append(row)
                if cfg.get("regions"):
                    scored.append((str(item.path), p))
            if images and cfg.gradcam.enabled:
                batch = ensemble.pipeline(first).to_tensor(images)
                _gradcam(panels, settings, batch, images, image_rows, cam_dir, first=n_ok)
            n_ok += len(images)
            writer.writerows(rows)
            stream.flush()  # rows already predicted survive an interruption
    panels.close()
    pipeline = ensemble.pipeline(first)
    localize_predictions(cfg, first.model.net, pipeline, settings, scored, out_dir, ensemble.tta)
    log.info(
        "Predicted %d image(s) with %s, %d unreadable: %s", n_ok, ensemble.name, n_bad, out_csv
    )
    if n_bad:
        log.warning("%d file(s) could not be read; see status=error rows in %s", n_bad, out_csv)
    return out_csv


def _gradcam(
    writer: Any,
    settings: Any,
    batch: Any,
    images: list[Any],
    rows: list[dict[str, Any]],
    cam_dir: Path,
    first: int = 0,
) -> None:
    """Heatmap panels for one batch, through the one panel writer."""
    names = list(settings.class_names)
    targets = [cam_class(settings.binary, names.index(row["label"])) for row in rows]
    captions, paths = [], []
    for number, (row, target) in enumerate(zip(rows, targets, strict=True), start=first):
        source = Path(row["path"])
        # Numbered: two inputs may share a file name in different folders.
        paths.append(cam_dir / f"{number:05d}_{source.stem}.png")
        prob = float(row[f"prob_{names[target]}"])
        captions.append(f"{source.name}: {row['label']} | p({names[target]})={prob:.2f}")
    for row, path in zip(rows, writer.write(batch, images, targets, captions, paths), strict=True):
        row["gradcam"] = str(path)
