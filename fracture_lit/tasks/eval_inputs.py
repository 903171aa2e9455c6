"""What an evaluation scores: the data fed as each checkpoint expects, and its predictions.

With no dataset named on the command line, eval scores the data the checkpoint's run
trained on (:func:`use_the_run_data`: its ``config.yaml`` data block), so
``python -m fracture_lit.eval ckpt_path=<ckpt>`` means "the run's own test split".
Evaluating on the dataset a checkpoint was trained on reuses that run's
``split_manifest.csv``, so "test" means the same images it meant during training; a test
split redrawn with another seed would contain training images. Members of an ensemble
with other pixel settings (image size, resize mode, normalisation) get their own copy of
the data, and must select the same images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fracture_lit.errors import ConfigError
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.inference.split import predict_split
from fracture_lit.layout import RunLayout
from fracture_lit.models.loading import match_classes
from fracture_lit.stats.splits import SPLITS

__all__ = [
    "build_datamodule",
    "data_overrides",
    "member_predictions",
    "training_manifest",
    "use_the_run_data",
    "wanted_splits",
]

log = logging.getLogger("fracture_lit.eval")


# Overrides that choose *which* dataset is scored; other data.* keys (cache_dir,
# num_workers, ...) tune how the run's own data is read.
_DATASET_KEYS = ("data", "data._target_", "data.root")


def data_overrides() -> list[str] | None:
    """The command line's ``data`` overrides as keys (``data``, ``data.root``, ``~data.x``
    kept with its ``~``), or None when no Hydra command line is known (a config built in
    code says what it means)."""
    if not HydraConfig.initialized():
        return None
    keys = []
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+")
        if key.lstrip("~") == "data" or key.lstrip("~").startswith("data."):
            keys.append(key)
    return keys


def use_the_run_data(cfg: DictConfig, ckpt_path: Path) -> str:
    """Score the data the checkpoint's run trained on unless the command line names one.

    ``data=...``, ``data.root=...`` (or a config built in code) keep ``cfg.data``: external
    validation. Otherwise ``cfg.data`` becomes the run's resolved data block (its
    ``config.yaml``), with the command line's other ``data.*`` values on top, and
    :func:`build_datamodule` then reuses the run's split manifest. Returns where the data
    came from (recorded in metrics.json); refuses a checkpoint outside its run folder.
    """
    keys = data_overrides()
    if keys is None or any(key.lstrip("~") in _DATASET_KEYS for key in keys):
        return "the command line"
    run = RunLayout.of_checkpoint(ckpt_path)
    trained = OmegaConf.load(run.config).get("data") if run and run.config.is_file() else None
    if trained is None:
        why = RunLayout.checkpoint_hint(ckpt_path) if run is None else f"{run.config} is missing"
        raise ConfigError(
            "ckpt_path",
            str(ckpt_path),
            f"no data was given and the data it was trained on is unknown ({why})",
            "Name the data to score: data=<dataset> data.root=<folder> (add "
            "data.manifest=<its run's split_manifest.csv> for the run's own test split).",
        )
    with open_dict(trained):
        for key in keys:
            path = key.lstrip("~").removeprefix("data.")
            if key.startswith("~"):
                trained.pop(path, None)
            else:
                OmegaConf.update(trained, path, OmegaConf.select(cfg, key), force_add=True)
    with open_dict(cfg):
        cfg.data = trained
    log.info("No data given: scoring the data of the checkpoint's run %s", run.folder)
    return f"the checkpoint's run ({run.folder})"


def training_manifest(cfg: DictConfig, ckpt_path: Path) -> Path | None:
    """The training run's split manifest, when ``cfg.data`` is the data it trained on (None
    for a checkpoint outside its run folder: :meth:`RunLayout.of_checkpoint`)."""
    run = RunLayout.of_checkpoint(ckpt_path)
    if run is None or not (run.split_manifest.is_file() and run.config.is_file()):
        return None
    trained = OmegaConf.load(run.config).get("data", {})
    same_kind = trained.get("_target_") == cfg.data.get("_target_")
    same_root = Path(str(trained.get("root", ""))).resolve() == Path(str(cfg.data.root)).resolve()
    return run.split_manifest if same_kind and same_root else None


def build_datamodule(cfg: DictConfig, settings: Any, ckpt_path: Path, *, first: bool = True) -> Any:
    """``cfg.data`` fed with ``settings`` (the checkpoint's input pipeline), set up.

    The first call (the first member) also writes its choices into ``cfg`` (saved with
    the run); members with other pixel settings get their own copy of the data config.
    """
    data = cfg.data if first else cfg.data.copy()
    with open_dict(data):
        for key, value in settings.data_overrides().items():
            shown = key in ("image_size", "resize_mode", "normalize")
            before = data.get(key) if shown else value
            if before != value:
                log.info("data.%s=%s -> %s (the checkpoint's input pipeline)", key, before, value)
            data[key] = value
        if not data.get("manifest"):
            manifest = training_manifest(cfg, ckpt_path)
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


def wanted_splits(split: str, datamodule: Any) -> list[str]:
    """The splits ``split=`` names (``all``: every split the data has), or a clear refusal."""
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


def member_predictions(cfg: DictConfig, ensemble: Any) -> tuple[list[SplitPredictions], Any]:
    """Each member's predictions on the split (each fed with its own input settings), and
    the first member's datamodule."""
    split = str(cfg.split)
    modules: dict[Any, Any] = {}
    preds: list[SplitPredictions] = []
    for member in ensemble.members:
        key = member.settings.pixels
        if key not in modules:
            modules[key] = build_datamodule(
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
            for s in wanted_splits(split, datamodule)
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
