"""eval and predict score where the model looks when the images have annotated regions.

``python -m fracture_lit.eval ... data.regions=<COCO file>`` scores the evaluated split
(an external annotated set with ``split=all``) exactly as the training review scores val
and test; ``python -m fracture_lit.predict ... regions=<COCO file>`` treats the inputs with
regions as fractured and scores them, writing ``review/predict/localization.json``. Both
write the heatmaps file and the outlined panels (:class:`~fracture_lit.localization.
outputs.LocalizationRun`). Heatmaps explain an ensemble's first member, as its panels do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich.console import Console

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.layout import RunLayout
from fracture_lit.localization.outputs import LocalizationRun
from fracture_lit.localization.regions import match_regions, read_coco_regions
from fracture_lit.results.console import print_tables
from fracture_lit.results.folders import write_json
from fracture_lit.results.localization import localization_tables

__all__ = ["PREDICT_SPLIT", "localize_evaluation", "localize_predictions"]

log = logging.getLogger(__name__)
#: The name predict's scored images go by (review/predict/, the block's split).
PREDICT_SPLIT = "predict"


def localize_evaluation(
    cfg: DictConfig,
    net: Any,
    pipeline: Any,
    datamodule: Any,
    pred: SplitPredictions,
    review_folder: Path,
    tta: str = "none",
) -> dict[str, Any] | None:
    """eval's block for ``pred``'s split (None without regions): the data's own regions
    (``data.regions``) matched to every image of the datamodule."""
    run = LocalizationRun(
        cfg.get("localization"), target_layer=cfg.gradcam.get("target_layer"), tta=tta
    )
    regions = run.datamodule_regions(datamodule)
    if regions is None:
        return None
    return run.score(net, pred, regions, review_folder, pipeline, datamodule)


def localize_predictions(
    cfg: DictConfig,
    net: Any,
    pipeline: Any,
    settings: Any,
    scored: Sequence[tuple[str, np.ndarray]],
    out: RunLayout,
    tta: str = "none",
) -> dict[str, Any] | None:
    """predict's block over the readable inputs (``(path, probabilities)``) that have
    regions (``regions=``), which count as fractured; None without regions."""
    run = LocalizationRun(
        cfg.get("localization"),
        regions_key="regions",
        target_layer=cfg.gradcam.get("target_layer"),
        tta=tta,
    )
    if not run.use_regions(cfg.get("regions"), None) or not scored:
        return None
    if not settings.binary:
        log.warning(
            "regions=: predict scores binary (fracture) models only, %s has classes %s; "
            "score a labelled set with eval ... data.regions= instead.",
            cfg.ckpt_path,
            list(settings.class_names),
        )
        return None
    paths = [path for path, _ in scored]
    regions = match_regions(read_coco_regions(run.regions_path), paths)
    pred = SplitPredictions(
        split=PREDICT_SPLIT,
        class_names=list(settings.class_names),
        paths=paths,
        labels=np.array([int(p in regions) for p in paths], dtype=np.int64),
        probs=np.stack([probs for _, probs in scored]),
        threshold=float(settings.threshold),
    )
    block = run.score(net, pred, regions, out.review.folder, pipeline)
    write_json(block, out.review.localization_block(PREDICT_SPLIT))
    tables = localization_tables({"localization": {PREDICT_SPLIT: block}}, console=True)
    print_tables(tables, Console())
    return block
