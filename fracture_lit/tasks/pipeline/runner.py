"""Paper C's two-stage pipeline, end to end: stage 1, the filter, stage 2, the summary.

``pipeline.json`` is written even when a step fails, with ``status: failed`` and the
error, so a pipeline folder always says how far it got.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from fracture_lit.layout import RunLayout
from fracture_lit.results.job_record import job_record
from fracture_lit.tasks.pipeline.detector import load_detector, score_images, stage1_threshold
from fracture_lit.tasks.pipeline.stage2_filter import (
    check_enough_passed,
    pass_counts,
    write_scores,
)
from fracture_lit.tasks.pipeline.stages import PipelineError, compose_stage, run_stage
from fracture_lit.tasks.pipeline.summary import (
    end_to_end_estimate,
    stage1_summary,
    stage2_summary,
    summary_table,
    write_json,
)
from fracture_lit.validation import validate_pipeline

__all__ = ["run", "run_pipeline"]

log = logging.getLogger("fracture_lit.pipeline")


def _overrides(value: Any) -> list[str]:
    return [
        str(v)
        for v in (OmegaConf.to_container(value) if OmegaConf.is_config(value) else value or [])
    ]


def run_pipeline(cfg: DictConfig) -> dict[str, Any]:
    """Run both stages and the filter between them; returns what pipeline.json holds.

    pipeline.json is written even when a step fails, with ``status: failed`` and the
    error, so a run folder always says how far it got.
    """
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = RunLayout(run_dir)
    common = _overrides(cfg.common)
    summary: dict[str, Any] = {
        "task_name": str(cfg.task_name),
        "run_dir": str(run_dir),
        "status": "running",
        "overrides": {
            "common": common,
            "stage1": _overrides(cfg.stage1),
            "stage2": _overrides(cfg.stage2),
        },
    }

    def write(record: dict[str, Any]) -> None:
        write_json(record, run_dir)
        if "stage1" in record:
            Console().print(summary_table(record))
        log.info("Pipeline folder: %s", run_dir)

    with job_record(summary, write):
        if cfg.threshold is not None and not 0.0 <= float(cfg.threshold) <= 1.0:
            raise PipelineError(f"threshold={cfg.threshold}: a probability in [0, 1], or null.")
        if int(cfg.min_per_class) < 1:
            raise PipelineError(f"min_per_class={cfg.min_per_class}: must be at least 1.")
        # Both compose first: a bad stage-2 override fails before stage 1 trains.
        stage1 = compose_stage(
            "stage1", [*common, *_overrides(cfg.stage1)], folder.stage("stage1").folder
        )
        stage2 = compose_stage(
            "stage2", [*common, *_overrides(cfg.stage2)], folder.stage("stage2").folder
        )

        results1 = run_stage(stage1)
        summary["stage1"] = stage1_summary(stage1, results1)
        checkpoint = results1.get("best_model_path")
        if not checkpoint or not Path(checkpoint).is_file():
            raise PipelineError(f"stage 1 saved no best checkpoint ({checkpoint!r}).")
        model, settings = load_detector(Path(checkpoint))
        youden = stage1_threshold(results1, settings)
        threshold = youden if cfg.threshold is None else float(cfg.threshold)
        summary["threshold"] = {
            "used": threshold,
            "source": "Youden, val" if cfg.threshold is None else "override",
            "youden_val": youden,
        }

        datamodule = hydra.utils.instantiate(stage2.cfg.data)
        samples = datamodule.prepare_split()
        class_names = datamodule.classes
        paths = [s.path for s in samples]
        classes = [class_names[s.label] for s in samples]
        log.info(
            "Scoring %d stage-2 images with the stage-1 detector (%d px, threshold %.4g)",
            len(paths),
            settings.image_size,
            threshold,
        )
        scores = score_images(
            model,
            paths,
            settings,
            cache_dir=datamodule.cache_dir,
            batch_size=int(cfg.batch_size),
            decode_workers=datamodule.decode_workers,
        )
        subset, passed = write_scores(run_dir, paths, classes, scores, threshold)
        counts = pass_counts(class_names, classes, passed)
        summary["detector_on_stage2"] = {
            **counts,
            "scores_csv": str(folder.stage_scores),
            "subset_csv": str(subset),
        }
        check_enough_passed(counts, classes, scores, threshold, int(cfg.min_per_class))

        with open_dict(stage2.cfg):
            stage2.cfg.data.subset_file = str(subset)
        results2 = run_stage(stage2)
        summary["stage2"] = stage2_summary(stage2, results2)
        summary["end_to_end_accuracy_estimate"] = end_to_end_estimate(
            counts["pass_rate"], summary["stage2"]["test_acc"]
        )
    return summary


def run(cfg: DictConfig) -> dict[str, Any]:
    """``python -m fracture_lit.pipeline``: every value checked, then :func:`run_pipeline`."""
    validate_pipeline(cfg)
    return run_pipeline(cfg)
