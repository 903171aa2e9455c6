"""Evaluate a checkpoint: ``python -m fracture_lit.eval ckpt_path=... [data=...] [split=...]``.

Scores the model on a split of any dataset whose classes match (binary fracture datasets
all do: train on FracAtlas, evaluate on multi-region for external validation), at the
threshold its training run chose on *validation* (or one you give), with bootstrap 95%
intervals, per-region metrics where the dataset records regions (FracAtlas), ROC/PR/
confusion PNGs, predictions, Grad-CAM panels and an offline HTML report, all in
``outputs/eval/<date>/<time>_<id>/``. ``logger=wandb`` logs it as a W&B run of job_type eval.

Evaluating on the dataset the checkpoint was trained on reuses that run's
``split_manifest.csv``, so "test" means the same images it meant during training; a test
split redrawn with another seed would contain training images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.errors import ConfigError, check_command_line, clean_exit
from fracture_lit.stats.splits import SPLITS

log = logging.getLogger("fracture_lit.eval")
register_resolvers()


def _training_manifest(cfg: DictConfig, ckpt_path: Path) -> Path | None:
    """The training run's split manifest, when ``cfg.data`` is the data it trained on."""
    run_dir = ckpt_path.resolve().parent.parent
    manifest, config = run_dir / "split_manifest.csv", run_dir / "config.yaml"
    if not (manifest.is_file() and config.is_file()):
        return None
    trained = OmegaConf.load(config).get("data", {})
    same_kind = trained.get("_target_") == cfg.data.get("_target_")
    same_root = Path(str(trained.get("root", ""))).resolve() == Path(str(cfg.data.root)).resolve()
    return manifest if same_kind and same_root else None


def _build_datamodule(
    cfg: DictConfig, settings: Any, ckpt_path: Path, *, first: bool = True
) -> Any:
    """``cfg.data`` fed with ``settings`` (the checkpoint's input pipeline), set up.

    The first call (the first member) also writes its choices into ``cfg`` (saved with
    the run); members with other pixel settings get their own copy of the data config.
    """
    from fracture_lit.models.loading import match_classes

    data = cfg.data if first else cfg.data.copy()
    with open_dict(data):
        for key, value in settings.data_overrides().items():
            shown = key in ("image_size", "resize_mode", "normalize")
            before = data.get(key) if shown else value
            if before != value:
                log.info("data.%s=%s -> %s (the checkpoint's input pipeline)", key, before, value)
            data[key] = value
        if not data.get("manifest"):
            manifest = _training_manifest(cfg, ckpt_path)
            if manifest is not None:
                data.manifest = str(manifest)
                log.info("Same data as training: reusing its split manifest %s", manifest)
            elif cfg.split != "all":
                log.warning(
                    "No split manifest of the training run applies to this data: split=%s is "
                    "drawn now. If the checkpoint was trained on these images, pass "
                    "data.manifest=<run folder>/split_manifest.csv or its test set may "
                    "overlap training.",
                    cfg.split,
                )
    datamodule = hydra.utils.instantiate(data)
    match_classes(list(settings.class_names), datamodule.classes, f"data={data.root}")
    datamodule.setup("test")
    return datamodule


def _wanted_splits(split: str, datamodule: Any) -> list[str]:
    if split not in (*SPLITS, "all"):
        raise ConfigError("split", split, "must be one of train, val, test, all")
    wanted = [s for s in SPLITS if datamodule.has_split(s)] if split == "all" else [split]
    if not wanted or not all(datamodule.has_split(s) for s in wanted):
        present = [s for s in SPLITS if datamodule.has_split(s)]
        raise ConfigError(
            "split",
            split,
            f"{datamodule.root} has only {present}",
            "Pick one of them or split=all (every image, e.g. for external validation).",
        )
    return wanted


def _member_predictions(cfg: DictConfig, ensemble: Any) -> tuple[list[Any], Any]:
    """Each member's predictions on the split (each fed with its own input settings)."""
    from fracture_lit.evaluation.predictions import SplitPredictions
    from fracture_lit.inference.split import predict_split

    split = str(cfg.split)
    modules: dict[Any, Any] = {}
    preds = []
    for member in ensemble.members:
        key = member.settings.pixels
        if key not in modules:
            modules[key] = _build_datamodule(
                cfg, member.settings, ensemble.members[0].path, first=not modules
            )
        datamodule = modules[key]
        parts = [
            predict_split(
                member.model,
                datamodule,
                s,
                member.class_names,
                member.threshold,
                cfg.batch_size,
                temperature=member.settings.temperature,
                tta=ensemble.tta,
            )
            for s in _wanted_splits(split, datamodule)
        ]
        pred = parts[0] if len(parts) == 1 else SplitPredictions.concat(parts, split)
        pred.split = split
        if preds and pred.paths != preds[0].paths:
            raise ConfigError(
                "ckpt_path",
                str(member.path),
                f"its input settings select other {split} images than the first member's",
                "Ensemble checkpoints trained on the same data.",
            )
        preds.append(pred)
    return preds, modules[ensemble.members[0].settings.pixels]


def _paired(ensemble_pred: Any, member_preds: list[Any], names: list[str], n_boot: int) -> Any:
    """The ensemble against each member on the same images (results/paired.py)."""
    from fracture_lit.results.paired import JobPredictions, compare

    def job(pred: Any, name: str) -> JobPredictions:
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
    import numpy as np
    import torch

    from fracture_lit.evaluation.predictions import SplitPredictions
    from fracture_lit.evaluation.scoring import score, score_all_subgroups
    from fracture_lit.inference.ensemble import load_ensemble
    from fracture_lit.review.artifacts import write_review
    from fracture_lit.validation import validate_eval

    validate_eval(cfg)
    out_dir = Path(cfg.paths.output_dir)
    device = "cuda" if torch.cuda.is_available() and cfg.get("device", "auto") != "cpu" else "cpu"
    ensemble = load_ensemble(
        cfg.ckpt_path,
        tta=cfg.get("tta", "none"),
        threshold=cfg.get("threshold"),
        device=device,
        batch_size=int(cfg.batch_size),
    )
    first = ensemble.members[0]
    for member in ensemble.members:
        log.info("Checkpoint %s: %s, classes %s", member.path, member.backbone, member.class_names)
    member_preds, datamodule = _member_predictions(cfg, ensemble)
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
        "data_root": str(datamodule.root),
        "split": pred.split,
        "tta": ensemble.tta,
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
        out_dir / "review",
        # Heatmaps explain the first member (an average of heatmaps explains no network).
        net=first.model.net if cfg.gradcam.enabled else None,
        pipeline=ensemble.pipeline(first),
        n_fixed=cfg.gradcam.n_fixed,
        n_worst=cfg.gradcam.n_worst,
        target_layer=cfg.gradcam.target_layer,
    )
    if cfg.get("logger") and "wandb" in cfg.logger:
        _log_wandb(cfg, results, pred, files)
    return results


def _log_wandb(cfg: DictConfig, results: dict[str, Any], pred: Any, files: Any) -> None:
    from fracture_lit.review.wandb_log import log_review
    from fracture_lit.utils.environment import configure_wandb_mode

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
    experiment.summary.update(
        {k: v for k, v in results["eval"]["metrics"].items() if isinstance(v, float)}
    )
    offline, run_dir = bool(experiment.offline), Path(experiment.dir).parent
    experiment.finish()
    if offline:
        log.info("W&B run recorded offline; upload it with: wandb sync %s", run_dir)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate, then write metrics.json (also on failure), print the table and report."""
    from fracture_lit.results.console import print_summary
    from fracture_lit.results.html_run import try_write_run_report
    from fracture_lit.results.job_record import job_record

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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    with clean_exit(also=(FileNotFoundError,)):
        run(cfg)


if __name__ == "__main__":
    check_command_line("eval")
    main()
