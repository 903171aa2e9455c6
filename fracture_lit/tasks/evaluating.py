"""Evaluate a checkpoint (or an ensemble) on one split: score, review, record.

Scores at the threshold the checkpoint's training run chose on *validation* (or one given),
with bootstrap 95% intervals and per-subgroup scores where the dataset records them; writes
the review (ROC/PR/confusion PNGs, predictions, Grad-CAM panels), ``metrics.json`` (also on
failure) and ``report.html``; ``logger=wandb`` logs it as a W&B run of job_type eval. An
ensemble is also compared, paired, with each of its members on the same images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import score, score_all_subgroups
from fracture_lit.layout import RunLayout
from fracture_lit.localization.wandb_log import log_localization
from fracture_lit.results.console import print_summary
from fracture_lit.results.html_run import try_write_run_report
from fracture_lit.results.job_record import job_record
from fracture_lit.results.paired import JobPredictions, compare
from fracture_lit.review.artifacts import write_review
from fracture_lit.review.wandb_log import log_review
from fracture_lit.tasks.checkpoints import configured_ensemble
from fracture_lit.tasks.eval_inputs import member_predictions, use_the_run_data
from fracture_lit.tasks.localizing import localize_evaluation
from fracture_lit.utils.environment import configure_wandb_mode
from fracture_lit.utils.precision import SCORE_PRECISION
from fracture_lit.validation import validate_eval

__all__ = ["evaluate", "run"]

log = logging.getLogger("fracture_lit.eval")


def _paired(
    ensemble_pred: SplitPredictions,
    member_preds: list[SplitPredictions],
    names: list[str],
    n_boot: int,
) -> dict[str, Any]:
    """The ensemble against each member on the same images (results/paired.py)."""

    def job(pred: SplitPredictions, name: str) -> JobPredictions:
        return JobPredictions(
            name=name,
            ids=list(pred.paths),
            labels=pred.labels,
            probs=pred.probs,
            predicted=pred.predicted,
            class_names=list(pred.class_names),
        )

    whole = job(ensemble_pred, "ensemble")
    return {
        name: compare(whole, job(pred, name), n_boot=n_boot).to_dict()
        for pred, name in zip(member_preds, names, strict=True)
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Predict, score and write the review of a checkpoint (or an ensemble) on one split."""
    validate_eval(cfg)
    out_dir = Path(cfg.paths.output_dir)
    ensemble = configured_ensemble(cfg)
    first = ensemble.members[0]
    for member in ensemble.members:
        log.info("Checkpoint %s: %s, classes %s", member.path, member.backbone, member.class_names)
    data_from = use_the_run_data(cfg, first.path)
    member_preds, datamodule = member_predictions(cfg, ensemble)
    base = member_preds[0]
    pred = SplitPredictions(
        split=base.split,
        class_names=base.class_names,
        paths=base.paths,
        labels=base.labels,
        probs=np.mean([p.probs for p in member_preds], axis=0),
        threshold=ensemble.threshold,
        meta=base.meta,
    )
    scored = score(pred, prefix="eval", n_bootstrap=cfg.n_bootstrap)
    single = len(ensemble.members) == 1
    results: dict[str, Any] = {
        "kind": "eval",
        "ckpt_path": str(first.path) if single else [str(m.path) for m in ensemble.members],
        "backbone": first.backbone if single else ensemble.name,
        "classes": first.class_names,
        "data": str(cfg.data._target_).rsplit(".", 1)[-1],
        # data.root as given, as training's config records it (the synthetic set's images
        # lie in a sub-folder keyed by their parameters: datamodule.root).
        "data_root": str(getattr(datamodule, "data_root", datamodule.root)),
        "data_from": data_from,
        "split": pred.split,
        "tta": ensemble.tta,
        # Scored in fp32 whatever the weights were trained in (utils/precision.py).
        "precision": {"train": first.trained_precision, "score": SCORE_PRECISION},
        "threshold": ensemble.threshold,
        "threshold_source": ensemble.threshold_source,
        # Each member's own temperature scales its logits before the average.
        "temperature": first.temperature if single else None,
        "eval": scored,
    }
    if results["temperature"] is None:
        del results["temperature"]
    if not single:
        names = [f"member {i}: {m.backbone}" for i, m in enumerate(ensemble.members)]
        # Each member alone, at its own checkpoint threshold, on the same images.
        results["members"] = [
            {
                "name": name,
                "ckpt_path": str(member.path),
                "threshold": member.threshold,
                "temperature": member.temperature,
                "eval": score(member_pred, prefix="eval", n_bootstrap=cfg.n_bootstrap),
            }
            for name, member, member_pred in zip(names, ensemble.members, member_preds, strict=True)
        ]
        results["paired_vs_members"] = _paired(pred, member_preds, names, cfg.n_bootstrap)
    subgroups = score_all_subgroups(pred, n_bootstrap=cfg.n_bootstrap)
    if subgroups:
        results["subgroups"] = subgroups
    files = write_review(
        pred,
        RunLayout(out_dir).review.folder,
        # Heatmaps explain the first member (an average of heatmaps explains no network).
        net=first.model.net if cfg.gradcam.enabled else None,
        pipeline=ensemble.pipeline(first),
        n_fixed=cfg.gradcam.n_fixed,
        n_worst=cfg.gradcam.n_worst,
        target_layer=cfg.gradcam.target_layer,
    )
    localized = localize_evaluation(
        cfg,
        first.model.net,
        ensemble.pipeline(first),
        datamodule,
        pred,
        RunLayout(out_dir).review.folder,
        ensemble.tta,
    )
    if localized is not None:  # Grad-CAM vs data.regions
        results["localization"] = {pred.split: localized}
    if cfg.get("logger") and "wandb" in cfg.logger:
        _log_wandb(cfg, results, pred, files)
    return results


def _log_wandb(cfg: DictConfig, results: dict[str, Any], pred: Any, files: Any) -> None:
    configure_wandb_mode()
    name = (
        cfg.logger.wandb.get("name")
        or f"{results['backbone']} on {results['data']}/{results['split']}"
    )
    logger = hydra.utils.instantiate(
        cfg.logger.wandb,
        job_type="eval",
        name=name,
        group=cfg.logger.wandb.get("group") or cfg.task_name,
    )
    experiment = logger.experiment
    experiment.config.update(OmegaConf.to_container(cfg, resolve=True), allow_val_change=True)
    experiment.log(results["eval"]["metrics"])
    log_review(experiment, pred, files)
    for split, block in results.get("localization", {}).items():
        log_localization(experiment, split, block, RunLayout(cfg.paths.output_dir).review.folder)
    experiment.summary.update(
        {k: v for k, v in results["eval"]["metrics"].items() if isinstance(v, float)}
    )
    offline, run_dir = bool(experiment.offline), Path(experiment.dir).parent
    experiment.finish()
    if offline:
        log.info("W&B run recorded offline; upload it with: wandb sync %s", run_dir)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate, then write metrics.json (also on failure), print the table and report."""
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"kind": "eval", "ckpt_path": str(cfg.ckpt_path)}
    with job_record(results, out_dir):
        results.update(evaluate(cfg))
    print_summary(results, title=f"fracture_lit eval · {results['backbone']} on {results['split']}")
    _log_members(results)
    try_write_run_report(out_dir)
    log.info("Evaluation folder: %s", out_dir)
    return results


def _log_members(results: dict[str, Any]) -> None:
    """An ensemble's members beside it: each alone, then the paired comparison."""
    for member in results.get("members", []):
        metrics = member["eval"]["metrics"]
        auroc, acc = metrics.get("eval/auroc", float("nan")), metrics.get("eval/acc", float("nan"))
        log.info(
            "%s alone: AUROC %.4f, acc %.4f (its threshold %.4f)",
            member["name"],
            auroc,
            acc,
            member["threshold"],
        )
    for comparison in results.get("paired_vs_members", {}).values():
        log.info("%s", comparison.get("sentence") or comparison.get("skipped"))
