"""Several checkpoints (and test-time augmentation) as one model, for every inference path.

``ckpt_path`` may be one checkpoint, a list of them, or a sweep folder (every job of it
whose ``metrics.json`` says ``done``, through its best checkpoint). The members must share
their classes; their probabilities are averaged (each member fed with its own
:class:`InputSettings`, so a sweep over image sizes still ensembles), and with ``tta=flip``
each member's own probabilities are first averaged over the image and its mirror.

Averaging moves the probabilities, so a member's own threshold no longer means what it
did: the ensemble's threshold is chosen again (Youden J) on the members' *shared*
validation split, rebuilt from their run folders (``config.yaml`` + ``split_manifest.csv``),
or given with ``threshold=``. Members trained on different validation splits are refused
unless a threshold is given: choosing it on images some members trained on would be
leakage.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import OmegaConf, open_dict

from fracture_lit.data.cache import BadImageError
from fracture_lit.data.input_settings import InputSettings
from fracture_lit.errors import ConfigError, UserError
from fracture_lit.inference.pipeline import InputPipeline, check_tta, predict_probs
from fracture_lit.layout import RunLayout
from fracture_lit.models.loading import LoadedCheckpoint, load_checkpoint
from fracture_lit.stats.youden import youden_threshold

__all__ = [
    "Ensemble",
    "EnsembleError",
    "FilePrediction",
    "checkpoint_paths",
    "load_ensemble",
]

log = logging.getLogger(__name__)
CHECKPOINT_SOURCE = "checkpoint (Youden J on its training run's validation split)"


class EnsembleError(UserError, ValueError):
    """The checkpoints cannot form one model (classes, folders, validation splits)."""


def _entries(value: Any) -> list[str]:
    if isinstance(value, str | Path):
        return [str(value)]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def _sweep_jobs(folder: Path) -> list[Path]:
    """The best checkpoints of a sweep (or run) folder's done jobs, in folder order."""
    found = []
    for record in sorted(folder.rglob(RunLayout.METRICS)):
        try:
            results = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        best = results.get("best_model_path")
        if results.get("status") == "done" and best and Path(best).is_file():
            found.append(Path(best))
    return found


def checkpoint_paths(value: Any) -> list[Path]:
    """``ckpt_path`` as a list of checkpoint files: a file, a list, or a sweep folder."""
    paths: list[Path] = []
    for entry in _entries(value):
        path = Path(entry).expanduser()
        if path.is_dir():
            jobs = _sweep_jobs(path)
            if not jobs:
                raise ConfigError(
                    "ckpt_path",
                    entry,
                    "a folder without any done job (no metrics.json with status done and a "
                    "best_model_path)",
                    "Pass a sweep folder of finished jobs, or checkpoint files.",
                )
            paths.extend(jobs)
        else:
            paths.append(path)  # load_checkpoint names a missing or unsafe file
    if not paths:
        raise ConfigError("ckpt_path", value, "an empty list", "Pass at least one checkpoint.")
    return list(dict.fromkeys(paths))


@dataclass
class FilePrediction:
    """One input file: probabilities of the ensemble, or why it could not be read."""

    path: Path
    probs: np.ndarray | None = None
    image: np.ndarray | None = None  # the first member's input, for Grad-CAM and display
    note: str = ""
    error: str = ""


@dataclass
class Ensemble:
    """Members (one or more checkpoints), ``tta``, and the threshold the whole uses."""

    members: list[LoadedCheckpoint]
    tta: str = "none"
    threshold: float = 0.5
    threshold_source: str = CHECKPOINT_SOURCE
    max_pixels: int | None = None
    _pipelines: dict[tuple[Any, ...], InputPipeline] = field(default_factory=dict, repr=False)

    @property
    def settings(self) -> InputSettings:
        """The first member's settings with the ensemble's threshold (what is reported)."""
        return self.members[0].settings.replace(threshold=self.threshold)

    @property
    def class_names(self) -> list[str]:
        return list(self.members[0].settings.class_names)

    @property
    def name(self) -> str:
        if len(self.members) == 1:
            return self.members[0].backbone + ("" if self.tta == "none" else f" (tta={self.tta})")
        backbones = ", ".join(m.backbone for m in self.members)
        tta = "" if self.tta == "none" else f", tta={self.tta}"
        return f"ensemble of {len(self.members)} ({backbones}{tta})"

    def pipeline(self, member: LoadedCheckpoint) -> InputPipeline:
        """One pipeline per distinct pixel settings: members that agree read a file once."""
        key = member.settings.pixels
        if key not in self._pipelines:
            kwargs = {} if self.max_pixels is None else {"max_pixels": self.max_pixels}
            self._pipelines[key] = InputPipeline(member.settings, **kwargs)
        return self._pipelines[key]

    def member_probs(self, member: LoadedCheckpoint, batch: torch.Tensor) -> np.ndarray:
        return predict_probs(
            member.model, batch, temperature=member.settings.temperature, tta=self.tta
        ).numpy()

    def predict_files(
        self, paths: Sequence[str | Path], window: tuple[float, float] | None = None
    ) -> list[FilePrediction]:
        """Read and score files; an unreadable file gets its error, the others go on."""
        out = [FilePrediction(Path(p)) for p in paths]
        total = [np.zeros(len(self.class_names)) for _ in out]
        for member in self.members:
            pipeline = self.pipeline(member)
            images, rows = [], []
            for row, item in enumerate(out):
                if item.error:
                    continue
                try:
                    image, note = pipeline.read(item.path, window)
                except (BadImageError, OSError, ValueError) as error:
                    item.error = str(error)
                    continue
                if item.image is None:
                    item.image, item.note = image, note
                images.append(image)
                rows.append(row)
            if images:
                probs = self.member_probs(member, pipeline.to_tensor(images))
                for row, p in zip(rows, probs, strict=True):
                    total[row] += p
        for item, summed in zip(out, total, strict=True):
            if not item.error:
                item.probs = summed / len(self.members)
        return out


def _same_classes(members: Sequence[LoadedCheckpoint]) -> None:
    first = members[0]
    for member in members[1:]:
        if member.class_names != first.class_names:
            raise EnsembleError(
                f"ckpt_path: {member.path} has classes {member.class_names} but {first.path} "
                f"has {first.class_names}; an ensemble averages the same classes. Pass "
                "checkpoints (or a sweep folder) of one task."
            )


# ----------------------------------------------------------------------- validation split
def _val_paths(manifest: Path) -> list[str]:
    with manifest.open(newline="", encoding="utf-8") as stream:
        return sorted(row["path"] for row in csv.DictReader(stream) if row["split"] == "val")


def shared_validation(members: Sequence[LoadedCheckpoint]) -> Path:
    """The run folder whose validation split every member shares, or a clear refusal."""
    first = None
    for member in members:
        run = RunLayout.of_checkpoint(member.path)
        if run is None or not (run.split_manifest.is_file() and run.config.is_file()):
            where = (
                RunLayout.checkpoint_hint(member.path)
                if run is None
                else f"its run folder {run.folder} has no "
                f"{RunLayout.SPLIT_MANIFEST}/{RunLayout.CONFIG}"
            )
            raise EnsembleError(
                f"{member.path}: {where}, so the validation split to choose the ensemble's "
                "threshold on is unknown. Pass threshold=<p> (chosen on validation data, "
                "never on the data scored)."
            )
        val = _val_paths(run.split_manifest)
        if first is None:
            first = (run.folder, val)
        elif val != first[1]:
            raise EnsembleError(
                f"{member.path} was validated on other images than {members[0].path} "
                f"({len(val)} vs {len(first[1])} validation images, not the same set): no "
                "shared validation split to choose the ensemble's threshold on. Ensemble "
                "jobs of one split (same data and split seed), or pass threshold=<p>."
            )
    if first is None or not first[1]:
        raise EnsembleError("The members' runs have no validation images; pass threshold=<p>.")
    return first[0]


def validation_datamodule_factory(run: Path) -> Callable[[InputSettings], Any]:
    """Datamodules over ``run``'s data and split manifest, fed with given settings."""
    layout = RunLayout(run)
    data = OmegaConf.load(layout.config).data

    def make(settings: InputSettings) -> Any:
        cfg = data.copy()
        with open_dict(cfg):
            cfg.manifest = str(layout.split_manifest)
            cfg.manifest_out = None  # never rewrite the training run's manifest
            for key, value in settings.data_overrides().items():
                cfg[key] = value
        datamodule = hydra.utils.instantiate(cfg)
        datamodule.setup("validate")
        return datamodule

    return make


def split_member_probs(
    ensemble: Ensemble,
    make_datamodule: Callable[[InputSettings], Any],
    split: str,
    batch_size: int,
) -> tuple[list[Any], list[np.ndarray]]:
    """Each member's :class:`SplitPredictions`-ready probabilities on ``split``.

    Returns the first datamodule's predictions object (paths, labels, metadata) per member
    and each member's probabilities; members of the same pixel settings share a datamodule.
    """
    # Lazily: predict_split reads through the datamodules (lightning, slow to import), and
    # predict and serve load ensembles without ever choosing a threshold here.
    from fracture_lit.inference.split import predict_split

    modules: dict[tuple[Any, ...], Any] = {}
    preds = []
    for member in ensemble.members:
        key = member.settings.pixels
        if key not in modules:
            modules[key] = make_datamodule(member.settings)
        pred = predict_split(
            member.model,
            modules[key],
            split,
            member.class_names,
            member.threshold,
            batch_size,
            temperature=member.settings.temperature,
            tta=ensemble.tta,
        )
        if preds and pred.paths != preds[0].paths:
            raise EnsembleError(
                f"{member.path}: its {split} images differ from {ensemble.members[0].path}'s "
                "with its own input settings; ensemble members of one dataset and split."
            )
        preds.append(pred)
    return preds, [p.probs for p in preds]


def choose_threshold(ensemble: Ensemble, batch_size: int = 64) -> tuple[float, str]:
    """Youden J of the averaged probabilities on the members' shared validation split."""
    run = shared_validation(ensemble.members)
    preds, probs = split_member_probs(
        ensemble, validation_datamodule_factory(run), "val", batch_size
    )
    mean = np.mean(probs, axis=0)
    labels = preds[0].labels
    try:
        result = youden_threshold(torch.as_tensor(mean[:, 1]), torch.as_tensor(labels))
    except ValueError as error:
        raise EnsembleError(
            f"The shared validation split ({run}) cannot choose a threshold: {error} "
            "Pass threshold=<p>."
        ) from error
    what = "ensemble" if len(ensemble.members) > 1 else "model"
    tta = "" if ensemble.tta == "none" else f" with tta={ensemble.tta}"
    return float(result.threshold), (
        f"Youden J of the {what}{tta} on the members' shared validation split "
        f"(n={len(labels)}, {run})"
    )


def load_ensemble(
    ckpt_path: Any,
    *,
    tta: str | None = "none",
    threshold: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    max_pixels: int | None = None,
) -> Ensemble:
    """Load the members, check their classes, and settle the threshold.

    A single checkpoint without TTA keeps the threshold stored in it; otherwise (several
    members, or TTA) it is chosen on the shared validation split unless ``threshold`` is
    given. Multi-class models take the argmax; no threshold is chosen for them.
    """
    tta = check_tta(tta)
    members = [load_checkpoint(p, device=device) for p in checkpoint_paths(ckpt_path)]
    _same_classes(members)
    ensemble = Ensemble(members, tta=tta, max_pixels=max_pixels)
    if threshold is not None:
        ensemble.threshold, ensemble.threshold_source = float(threshold), "given (threshold=...)"
    elif not members[0].settings.binary:
        ensemble.threshold, ensemble.threshold_source = 0.5, "argmax (multi-class)"
    elif len(members) == 1 and tta == "none":
        ensemble.threshold = members[0].threshold
    else:
        ensemble.threshold, ensemble.threshold_source = choose_threshold(ensemble, batch_size)
    if len(members) > 1 or tta != "none":
        log.info(
            "%s: threshold %.4f, %s", ensemble.name, ensemble.threshold, ensemble.threshold_source
        )
    return ensemble
