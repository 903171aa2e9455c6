"""Paper C's two-stage pipeline: ``python -m fracture_lit.pipeline [overrides]``.

1. Stage 1 trains a binary fracture detector (``stage1`` overrides of ``conf/train.yaml``,
   by default ``experiment=fracatlas_inception_detector``) and picks its Youden threshold
   on validation.
2. The best stage-1 checkpoint scores every image of the stage-2 dataset, decoded and
   normalised the way stage 1 saw its own images; ``p(fractured) >= threshold`` passes
   (the Youden threshold is a midpoint between validation scores, so ``>=`` and the
   metrics' ``>`` agree there, and ``threshold=0`` passes everything: stage 2 unfiltered).
3. Stage 2 (``stage2`` overrides, by default ``experiment=bone_break_subtypes``) trains and
   tests the subtype classifier on the passed images only (``data.subset_file``).
4. ``pipeline.json`` and a table summarise both stages and the end-to-end estimate.

Each stage is an ordinary :func:`fracture_lit.train.run` in ``<run>/stage1`` and
``<run>/stage2``, so its folder is the same as a ``python -m fracture_lit.train`` run's.
Stages run in this process: multi-device (DDP) trainers are refused, since DDP would
relaunch this script in every rank.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.data.input_settings import InputSettings
from fracture_lit.errors import UserError

log = logging.getLogger("fracture_lit.pipeline")
register_resolvers()

SCORES_CSV = "stage1_scores_on_stage2.csv"
SUBSET_CSV = "stage2_subset.csv"


class PipelineError(UserError, RuntimeError):
    """A stage cannot go on; the message says what to change."""


@dataclass
class Stage:
    """One stage's composed ``train`` config (resolved) and the Hydra node it came with,
    which ``train.run`` reads (job name, run mode) while the stage runs."""

    name: str
    cfg: DictConfig
    hydra_cfg: DictConfig

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)


@contextmanager
def _hydra_config(hydra_cfg: DictConfig) -> Iterator[None]:
    """Make ``hydra_cfg`` the global HydraConfig for a while, then restore the pipeline's.

    ``${hydra:...}`` interpolations (``recipe: ${recipes.${hydra:runtime.choices.model}}``
    in bone_break_subtypes, ``paper.model``) read the global HydraConfig, which inside this
    app is the pipeline's own, not the stage's.
    """
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(hydra_cfg)
    try:
        yield
    finally:
        if saved is not None:
            HydraConfig.instance().set_config(saved)
        else:  # called outside a Hydra app (tests): leave no stage config behind
            HydraConfig.instance().cfg = None


def compose_stage(name: str, overrides: Sequence[str], output_dir: Path) -> Stage:
    """Compose ``conf/train.yaml`` as ``python -m fracture_lit.train <overrides>`` would.

    The config is resolved now, under the stage's own Hydra node, so a typo in an override
    fails before any training and the stage's ``${hydra:...}`` values are its own.
    """
    try:
        cfg = hydra.compose(
            config_name="train", overrides=list(overrides), return_hydra_config=True
        )
    except Exception as error:
        raise PipelineError(
            f"{name}: cannot compose train with {list(overrides)}: {error}"
        ) from error
    if OmegaConf.select(cfg, "hydra.sweeper.params"):
        # Presets written as sweeps (e.g. bone_break_subtypes over three models) run as
        # their single composed config: the pipeline chains one detector into one model.
        # Pick another of the grid's models with e.g. stage2=[...,model=efficientnet_b0].
        log.info("%s: the preset is a sweep; running its single composed config.", name)
    hydra_cfg = OmegaConf.masked_copy(cfg, "hydra")
    with _hydra_config(hydra_cfg), open_dict(cfg):
        # As in a real run, the job's config does not carry the hydra node.
        del cfg["hydra"]
        cfg.paths.output_dir = str(output_dir)
        try:
            OmegaConf.resolve(cfg)
        except Exception as error:
            raise PipelineError(
                f"{name}: the config with {list(overrides)} does not resolve: {error}"
            ) from error
    trainer = cfg.trainer
    if "ddp" in str(trainer.get("strategy") or "") or _devices(trainer.get("devices")) > 1:
        raise PipelineError(
            f"{name}: the pipeline runs its stages in one process; use one device "
            "(trainer=default trainer.devices=1), or run the stages with fracture_lit.train."
        )
    return Stage(name, cfg, hydra_cfg)


def _devices(devices: Any) -> int:
    if isinstance(devices, int):
        return devices
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)
    return 1  # "auto", or a string like "1"; a multi-device string needs an explicit strategy


def run_stage(stage: Stage) -> dict[str, Any]:
    """``train.run`` on the stage's config; a failed stage stops the pipeline."""
    from fracture_lit.train import run

    log.info("=== %s -> %s", stage.name, stage.output_dir)
    with _hydra_config(stage.hydra_cfg):
        results = run(stage.cfg)
    if results.get("status") != "done":
        raise PipelineError(f"{stage.name} failed: {results.get('error')}")
    return results


# ------------------------------------------------------------------------------ stage 1
def load_detector(checkpoint: Path) -> tuple[Any, InputSettings]:
    """The stage-1 model and its :class:`InputSettings` (image size, resize mode,
    preprocessing, normalisation, threshold), which the stage-2 images must be fed with."""
    from fracture_lit.models.loading import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    if not loaded.settings.binary:
        raise PipelineError(
            f"stage 1 must be a binary detector; {checkpoint} has "
            f"{len(loaded.class_names)} classes ({loaded.class_names})."
        )
    return loaded.model, loaded.settings


def score_images(
    model: Any,
    paths: Sequence[str],
    settings: InputSettings,
    *,
    cache_dir: Path,
    batch_size: int,
    decode_workers: int | None = None,
) -> list[float]:
    """p(fractured) for each path (NaN for files that cannot be decoded).

    Images go through the same decode-once cache and the same eval transform and
    normaliser (:class:`~fracture_lit.inference.pipeline.InputPipeline`) as in a stage-1
    evaluation, at stage 1's image size: the stage-2 config's own size, jet colour map or
    normalisation would feed the detector images it never saw.
    """
    import torch
    from torch.utils.data import DataLoader

    from fracture_lit.data.cache import build_cache
    from fracture_lit.data.image_datasets import CachedImageDataset, collate_images
    from fracture_lit.inference.pipeline import InputPipeline, predict_probs

    pipeline = InputPipeline(settings)
    cached = build_cache(
        list(paths),
        size=settings.image_size,
        mode=settings.resize_mode,
        cache_dir=cache_dir,
        workers=decode_workers,
    )
    rows = list(range(len(paths)))
    dataset = CachedImageDataset(cached.array, rows, [0] * len(rows), pipeline.transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    scores: list[float] = []
    for images, _ in loader:
        probs = predict_probs(
            model, pipeline.normalizer(images.to(device)), temperature=settings.temperature
        )
        scores.extend(probs[:, 1].tolist())
    for i in cached.bad:
        scores[i] = math.nan
    if cached.bad:
        log.warning("%d stage-2 images could not be decoded; they do not pass.", len(cached.bad))
    return scores


def stage1_threshold(results: dict[str, Any], settings: InputSettings) -> float:
    """The Youden threshold stage 1 chose on validation for its best checkpoint."""
    value = results.get("val", {}).get("metrics", {}).get("val/youden_threshold")
    stored = settings.threshold
    if value is None:
        return float(stored)
    if abs(float(stored) - float(value)) > 1e-6:
        log.warning(
            "checkpoint threshold %.6f != validation's %.6f; using validation's.", stored, value
        )
    return float(value)


# ------------------------------------------------------------------------------ filter
def write_scores(
    run_dir: Path,
    paths: Sequence[str],
    classes: Sequence[str],
    scores: Sequence[float],
    threshold: float,
) -> tuple[Path, list[bool]]:
    """Write every image's score and verdict, and the passed paths (stage 2's subset)."""
    passed = [not math.isnan(s) and s >= threshold for s in scores]
    with (run_dir / SCORES_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class", "p_fractured", "passed"])
        for row in zip(paths, classes, scores, passed, strict=True):
            writer.writerow([row[0], row[1], f"{row[2]:.6f}", str(row[3]).lower()])
    subset = run_dir / SUBSET_CSV
    with subset.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([p] for p, ok in zip(paths, passed, strict=True) if ok)
    return subset, passed


def pass_counts(
    class_names: Sequence[str], classes: Sequence[str], passed: Sequence[bool]
) -> dict[str, Any]:
    """Images and passed images, overall and per class (every class listed, even empty)."""

    def entry(flags: list[bool]) -> dict[str, Any]:
        n, k = len(flags), sum(flags)
        return {"n": n, "passed": k, "pass_rate": k / n if n else math.nan}

    per_class = {
        name: entry([ok for c, ok in zip(classes, passed, strict=True) if c == name])
        for name in class_names
    }
    return {**entry(list(passed)), "per_class": per_class}


def check_enough_passed(
    counts: dict[str, Any],
    classes: Sequence[str],
    scores: Sequence[float],
    threshold: float,
    minimum: int,
) -> None:
    """Stop before stage 2 when a class kept too few images to split and train on, and say
    which threshold would keep ``minimum`` of every class."""
    per_class = counts["per_class"]
    short = {c: v for c, v in per_class.items() if v["passed"] < minimum}
    if not short:
        return
    listing = ", ".join(f"{c}: {v['passed']}/{v['n']}" for c, v in per_class.items())
    ranked = {
        name: sorted(
            (s for s, c in zip(scores, classes, strict=True) if c == name and not math.isnan(s)),
            reverse=True,
        )
        for name in per_class
    }
    too_small = [c for c, r in ranked.items() if len(r) < minimum]
    if too_small:
        hint = (
            f"{', '.join(too_small)}: fewer than {minimum} readable images in all. Lower "
            "min_per_class=<n> or choose other classes."
        )
    else:
        # passed is p >= threshold: the lowest k-th score, rounded down, keeps k of each.
        kth = [r[minimum - 1] for r in ranked.values()]
        suggestion = max(0.0, math.floor(min(kth) * 1e4) / 1e4)
        hint = f"A lower threshold keeps {minimum} of every class: threshold={suggestion:g}."
    raise PipelineError(
        f"At threshold {threshold:.4g} the detector passed too few images for stage 2 to "
        f"split (min_per_class={minimum}); passed per class: {listing}. {hint}"
    )


# ------------------------------------------------------------------------------ summary
def end_to_end_estimate(pass_rate: float, stage2_test_acc: float | None) -> float | None:
    """Share of stage-2 images the whole pipeline would type correctly: an *estimate*.

    An image the detector rejects never gets a subtype, so it counts as wrong; of those it
    passes, stage 2 gets its test accuracy right. The product assumes the detector passes
    stage 2's test images at the rate it passes all of them, and that stage 2 is as
    accurate on every passed image as on its test split.
    """
    if stage2_test_acc is None or math.isnan(pass_rate):
        return None
    return pass_rate * stage2_test_acc


def _metric(results: dict[str, Any], split: str, key: str) -> float | None:
    value = results.get(split, {}).get("metrics", {}).get(f"{split}/{key}")
    return None if value is None else float(value)


def stage1_summary(stage: Stage, results: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": results["status"],
        "output_dir": str(stage.output_dir),
        "backbone": results.get("backbone"),
        "best_model_path": results.get("best_model_path"),
        "val_auroc": _metric(results, "val", "auroc"),
        "test_auroc": _metric(results, "test", "auroc"),
        "youden_threshold": _metric(results, "val", "youden_threshold"),
        "val_sensitivity_at_youden": _metric(results, "val", "youden_sensitivity"),
        "val_specificity_at_youden": _metric(results, "val", "youden_specificity"),
        "test_sensitivity_at_youden": _metric(results, "test", "recall_at_thr"),
        "test_specificity_at_youden": _metric(results, "test", "specificity_at_thr"),
    }


def stage2_summary(stage: Stage, results: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": results["status"],
        "output_dir": str(stage.output_dir),
        "backbone": results.get("backbone"),
        "classes": results.get("classes"),
        "best_model_path": results.get("best_model_path"),
        "val_acc": _metric(results, "val", "acc"),
        "test_acc": _metric(results, "test", "acc"),
        "test_macro_f1": _metric(results, "test", "f1"),
        "n_test": results.get("test", {}).get("n"),
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def summary_table(summary: dict[str, Any]) -> Any:
    """The pipeline at a glance: detector, filter, subtype classifier, end to end."""
    from rich.table import Table

    s1, thr = summary.get("stage1", {}), summary.get("threshold", {})
    table = Table(title=f"fracture_lit · {summary['task_name']}", title_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("[bold]stage 1[/] detector", str(s1.get("backbone", "-")))
    table.add_row(
        "  AUROC val / test", f"{_fmt(s1.get('val_auroc'))} / {_fmt(s1.get('test_auroc'))}"
    )
    table.add_row("  Youden threshold (val)", _fmt(s1.get("youden_threshold")))
    table.add_row(
        "  sens / spec at Youden, val",
        f"{_fmt(s1.get('val_sensitivity_at_youden'), 3)} / "
        f"{_fmt(s1.get('val_specificity_at_youden'), 3)}",
    )
    table.add_row(
        "  sens / spec at Youden, test",
        f"{_fmt(s1.get('test_sensitivity_at_youden'), 3)} / "
        f"{_fmt(s1.get('test_specificity_at_youden'), 3)}",
    )
    if thr:
        table.add_section()
        table.add_row(f"[bold]filter[/] threshold ({thr['source']})", _fmt(thr["used"]))
    if "detector_on_stage2" in summary:
        counts = summary["detector_on_stage2"]
        table.add_row(
            "  passed, all stage-2 images",
            f"{counts['passed']}/{counts['n']} ({_fmt(counts['pass_rate'], 3)})",
        )
        for name, c in counts["per_class"].items():
            table.add_row(
                f"  passed, {name}", f"{c['passed']}/{c['n']} ({_fmt(c['pass_rate'], 3)})"
            )
    if "stage2" in summary:
        s2 = summary["stage2"]
        table.add_section()
        table.add_row("[bold]stage 2[/] subtypes (passed images)", str(s2.get("backbone", "-")))
        table.add_row("  test accuracy", f"{_fmt(s2.get('test_acc'))} (n={s2.get('n_test')})")
        table.add_row("  test macro-F1", _fmt(s2.get("test_macro_f1")))
    if summary.get("end_to_end_accuracy_estimate") is not None:
        table.add_section()
        table.add_row(
            "[bold]end to end[/] accuracy, estimate", _fmt(summary["end_to_end_accuracy_estimate"])
        )
        table.add_row("  = pass rate x stage-2 test acc", "rejected images count as wrong")
    return table


def _write_json(summary: dict[str, Any], run_dir: Path) -> None:
    # Not sorted: per-class entries stay in label order, sections in pipeline order.
    (run_dir / "pipeline.json").write_text(json.dumps(summary, indent=2))


# ------------------------------------------------------------------------------ pipeline
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
    from fracture_lit.results.job_record import job_record

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
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
        _write_json(record, run_dir)
        if "stage1" in record:
            from rich.console import Console

            Console().print(summary_table(record))
        log.info("Pipeline folder: %s", run_dir)

    with job_record(summary, write):
        if cfg.threshold is not None and not 0.0 <= float(cfg.threshold) <= 1.0:
            raise PipelineError(f"threshold={cfg.threshold}: a probability in [0, 1], or null.")
        if int(cfg.min_per_class) < 1:
            raise PipelineError(f"min_per_class={cfg.min_per_class}: must be at least 1.")
        # Both compose first: a bad stage-2 override fails before stage 1 trains.
        stage1 = compose_stage("stage1", [*common, *_overrides(cfg.stage1)], run_dir / "stage1")
        stage2 = compose_stage("stage2", [*common, *_overrides(cfg.stage2)], run_dir / "stage2")

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
            "scores_csv": str(run_dir / SCORES_CSV),
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="pipeline")
def main(cfg: DictConfig) -> None:
    from fracture_lit.errors import clean_exit
    from fracture_lit.validation import validate_pipeline

    with clean_exit():
        validate_pipeline(cfg)
        run_pipeline(cfg)


if __name__ == "__main__":
    from fracture_lit.errors import check_command_line

    check_command_line("pipeline")
    main()
