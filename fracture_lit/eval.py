"""Evaluate a checkpoint: ``python -m fracture_lit.eval ckpt_path=... [data=...] [split=...]``.

Scores the model on a split of any dataset whose classes match (binary fracture datasets
all do: train on FracAtlas, evaluate on multi-region for external validation), at the
threshold its training run chose on *validation* (or one you give), with bootstrap 95%
intervals, per-subgroup metrics where the dataset records region / view / hardware
(FracAtlas), ROC/PR/confusion PNGs, predictions, Grad-CAM panels and an offline HTML
report, all in ``outputs/eval/<date>/<time>_<id>/``. ``logger=wandb`` logs it as a W&B run of job_type eval.

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

log = logging.getLogger("fracture_lit.eval")
register_resolvers()

SPLITS = ("train", "val", "test")


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


def _build_datamodule(cfg: DictConfig, loaded: Any) -> Any:
    from fracture_lit.models.loading import match_classes

    ckpt_path = Path(cfg.ckpt_path)
    overrides = loaded.data_overrides()
    with open_dict(cfg):
        for key, value in overrides.items():
            shown = key in ("image_size", "resize_mode", "normalize")
            before = cfg.data.get(key) if shown else value
            if before != value:
                log.info("data.%s=%s -> %s (the checkpoint's input pipeline)", key, before, value)
            cfg.data[key] = value
        if not cfg.data.get("manifest"):
            manifest = _training_manifest(cfg, ckpt_path)
            if manifest is not None:
                cfg.data.manifest = str(manifest)
                log.info("Same data as training: reusing its split manifest %s", manifest)
            elif cfg.split != "all":
                log.warning(
                    "No split manifest of the training run applies to this data: split=%s is "
                    "drawn now. If the checkpoint was trained on these images, pass "
                    "data.manifest=<run folder>/split_manifest.csv or its test set may "
                    "overlap training.",
                    cfg.split,
                )
    datamodule = hydra.utils.instantiate(cfg.data)
    match_classes(loaded.class_names, datamodule.classes, f"data={cfg.data.root}")
    return datamodule


def _threshold(cfg: DictConfig, loaded: Any) -> tuple[float, str]:
    if cfg.get("threshold") is not None:
        value = float(cfg.threshold)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(
                "threshold", cfg.threshold, "must be a probability in [0, 1], or null"
            )
        return value, "given (threshold=...)"
    return float(loaded.threshold), "checkpoint (Youden J on its training run's validation split)"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Predict, score and write the review of one checkpoint on one split."""
    import torch

    from fracture_lit.evaluation import score, score_all_subgroups
    from fracture_lit.inference import InputPipeline
    from fracture_lit.models.loading import load_checkpoint
    from fracture_lit.review.artifacts import write_review
    from fracture_lit.review.predictions import SplitPredictions, predict_split
    from fracture_lit.validation import validate_eval

    validate_eval(cfg)
    out_dir = Path(cfg.paths.output_dir)
    device = "cuda" if torch.cuda.is_available() and cfg.get("device", "auto") != "cpu" else "cpu"
    loaded = load_checkpoint(cfg.ckpt_path, device=device)
    log.info("Checkpoint %s: %s, classes %s", loaded.path, loaded.backbone, loaded.class_names)
    datamodule = _build_datamodule(cfg, loaded)
    datamodule.setup("test")
    threshold, source = _threshold(cfg, loaded)

    split = str(cfg.split)
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
    parts = [
        predict_split(
            loaded.model,
            datamodule,
            s,
            loaded.class_names,
            threshold,
            cfg.batch_size,
            temperature=loaded.temperature,
        )
        for s in wanted
    ]
    pred = parts[0] if len(parts) == 1 else SplitPredictions.concat(parts, split)
    pred.split = split
    scored = score(pred, prefix="eval", n_bootstrap=cfg.n_bootstrap)
    results: dict[str, Any] = {
        "kind": "eval",
        "ckpt_path": str(loaded.path),
        "backbone": loaded.backbone,
        "classes": loaded.class_names,
        "data": str(cfg.data._target_).rsplit(".", 1)[-1],
        "data_root": str(datamodule.root),
        "split": split,
        "threshold": threshold,
        "threshold_source": source,
        "temperature": loaded.temperature,
        "eval": scored,
    }
    subgroups = score_all_subgroups(pred, n_bootstrap=cfg.n_bootstrap)
    if subgroups.get("region"):
        results["per_region"] = subgroups["region"]  # kept where earlier evaluations had it
    if subgroups:
        results["subgroups"] = subgroups
    files = write_review(
        pred,
        out_dir / "review",
        net=loaded.model.net if cfg.gradcam.enabled else None,
        pipeline=InputPipeline.from_checkpoint(loaded),
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
    try_write_run_report(out_dir)
    log.info("Evaluation folder: %s", out_dir)
    return results


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    with clean_exit(also=(FileNotFoundError,)):
        run(cfg)


if __name__ == "__main__":
    check_command_line("eval")
    main()
