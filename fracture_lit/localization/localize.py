"""Score where a model looks on one split: Grad-CAM against the radiologists' regions.

:func:`localize_split` takes the split's predictions (for each image: its path, label and
the prediction at the validation-chosen threshold), the regions matched to the data's
files (:func:`~fracture_lit.localization.regions.match_regions`) and a source of the
model's input images. It scores the fractured images that have regions, with the
random and centre-prior baselines on the same images, and returns a
:class:`SplitLocalization`: its :meth:`~SplitLocalization.block` is what ``metrics.json``
keeps under ``localization.<split>``, :meth:`~SplitLocalization.save_heatmaps` the file
the scores can be recomputed from.

For a binary model the heatmap explains the positive (fracture) class, whatever the
model decided, as the review's panels do; for a multi-class model, the image's labelled
class (where the model finds the evidence for the fracture that is there).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from fracture_lit.errors import ConfigError
from fracture_lit.layout import ReviewLayout
from fracture_lit.localization.baselines import centre_prior, random_heatmaps
from fracture_lit.localization.files import save_heatmaps
from fracture_lit.localization.geometry import InputGeometry
from fracture_lit.localization.heatmaps import (
    BatchSource,
    compute_heatmaps,
    datamodule_batches,
    pipeline_batches,
)
from fracture_lit.localization.names import IMAGE_SCORES, METHODS, MODEL_METHOD, THRESHOLD_SWEEP
from fracture_lit.localization.regions import ImageRegions
from fracture_lit.localization.scores import (
    ImageTarget,
    ScoreSettings,
    is_flat,
    largest_boxes,
    score_heatmap,
)
from fracture_lit.localization.scoring import MethodScores, summarize_groups

__all__ = [
    "LocalizationSettings",
    "Predictions",
    "SplitLocalization",
    "localize_datamodule_split",
    "localize_files",
    "localize_split",
]

log = logging.getLogger(__name__)


class Predictions(Protocol):
    """What is read from a split's predictions (``SplitPredictions`` has it)."""

    split: str
    class_names: list[str]
    paths: list[str]
    labels: np.ndarray
    threshold: float  # the validation-chosen decision threshold ``predicted`` applies

    @property
    def predicted(self) -> np.ndarray: ...


@dataclass(frozen=True)
class LocalizationSettings:
    """Every knob of the scores; all of them are reported with the results."""

    tolerance_px: float = 15.0  # pointing game, original-image pixels (TorchRay: 15)
    threshold: float = 0.15  # heatmap threshold, fraction of its maximum (Grad-CAM paper)
    box_min_iou: float = 0.5  # box hit at this IoU
    target_layer: str | None = None  # Grad-CAM layer; None: the review's default
    tta: str = "none"  # "flip": average the mirrored view's map, as the prediction does
    random_draws: int = 10
    centre_sigma: float = 0.25  # of the input side
    n_bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        # Checked before any heatmap is made, naming the setting (config: localization.*).
        checks = {
            "tolerance_px": self.tolerance_px >= 0,
            "threshold": 0 < self.threshold < 1,
            "box_min_iou": 0 < self.box_min_iou <= 1,
            "tta": self.tta in ("none", "flip"),
            "random_draws": self.random_draws >= 1,
            "centre_sigma": self.centre_sigma > 0,
            "n_bootstrap": self.n_bootstrap >= 0,
            "batch_size": self.batch_size >= 1,
        }
        for key, fine in checks.items():
            if not fine:
                raise ConfigError(f"localization.{key}", getattr(self, key), _LIMITS[key])

    @property
    def scoring(self) -> ScoreSettings:
        return ScoreSettings(self.tolerance_px, self.threshold, self.box_min_iou)


_LIMITS = {
    "tolerance_px": "must be >= 0 (original-image pixels; TorchRay uses 15)",
    "threshold": "must lie between 0 and 1 (a fraction of the heatmap's maximum)",
    "box_min_iou": "must lie in (0, 1]",
    "tta": "must be none or flip",
    "random_draws": "must be >= 1",
    "centre_sigma": "must be > 0 (a fraction of the input side)",
    "n_bootstrap": "must be >= 0 (0: no intervals)",
    "batch_size": "must be >= 1",
}


@dataclass
class SplitLocalization:
    """One split's scored images: heatmaps, per-image scores per method, and settings."""

    split: str
    ids: list[str]  # image paths, in the predictions' order
    correct: np.ndarray  # (N,) bool: the model called the fracture at its threshold
    heatmaps: np.ndarray  # (N, S, S) float16
    methods: dict[str, MethodScores]  # "gradcam", "random", "centre"
    info: dict[str, Any]  # settings, layer, explained class, geometry
    targets: list[ImageTarget] = field(default_factory=list, repr=False)
    skipped: dict[str, int] = field(default_factory=dict)
    _block: dict[str, Any] | None = field(default=None, repr=False)

    def block(self) -> dict[str, Any]:
        """JSON-ready summary: ``info``, counts and ``groups`` -> method -> score ->
        ``{value, low, high}`` (computed once: the bootstrap is not free)."""
        if self._block is None:
            settings = self.info["settings"]
            self._block = {
                **self.info,
                "n_images": len(self.ids),
                "skipped": dict(self.skipped),
                "groups": summarize_groups(
                    self.methods, self.correct, settings["n_bootstrap"], settings["seed"]
                ),
            }
        return self._block

    def per_image(self, score: str, method: str = MODEL_METHOD) -> dict[str, float]:
        """``{image path: score}`` (the input of the sweep's paired comparison)."""
        return dict(zip(self.ids, self.methods[method].column(score).tolist(), strict=True))

    def ranked(self, score: str = "energy") -> list[int]:
        """Image positions from the best to the worst ``score`` (for the best/worst panels)."""
        return [
            int(i) for i in np.argsort(-self.methods[MODEL_METHOD].column(score), kind="stable")
        ]

    def save_heatmaps(self, review_folder: str | Path) -> Path:
        """The review folder's ``<split>/localization.npz``: heatmaps, per-image scores of
        every method and what recomputing the scores needs (see :mod:`.files`)."""
        meta = {**self.info, "correct": self.correct.astype(int).tolist()}
        return save_heatmaps(
            ReviewLayout(Path(review_folder)).localization(self.split),
            self.ids,
            self.heatmaps,
            meta,
            scores={name: scores.values for name, scores in self.methods.items()},
            columns=IMAGE_SCORES,
        )

    def outlines(self, position: int) -> list[np.ndarray]:
        """The regions of image ``position`` as polygons in model-input pixels (for
        panels: ``captioned_overlay(..., outlines=result.outlines(i))``)."""
        target = self.targets[position]
        return [target.geometry.to_input(p.reshape(-1, 2)) for p in target.polygons]


def _explained(predictions: Predictions) -> np.ndarray:
    labels = np.asarray(predictions.labels, dtype=np.int64)
    return np.ones_like(labels) if len(predictions.class_names) == 2 else labels


def _select(
    predictions: Predictions, regions: Mapping[str, ImageRegions]
) -> tuple[list[int], Counter[str]]:
    """Positions of the fractured images with regions, and why the others were left out."""
    binary = len(predictions.class_names) == 2
    chosen, skipped = [], Counter[str]()
    for i, path in enumerate(predictions.paths):
        positive = not binary or int(predictions.labels[i]) == 1
        found = regions.get(path)
        if found is None or not found.regions:
            if positive and binary:
                skipped["fractured without regions"] += 1
        elif not positive:
            skipped["regions on an image labelled not fractured"] += 1
        else:
            chosen.append(i)
    return chosen, skipped


def _score_methods(
    heatmaps: np.ndarray,
    targets: list[ImageTarget],
    ids: Sequence[str],
    settings: LocalizationSettings,
) -> dict[str, MethodScores]:
    """Per-image scores of the model's maps and of the baselines on the same images.

    The random baseline's scores are means over its draws; its box sweep uses the first
    draw only (an unbiased estimate per image: each sweep costs 19 connected-component
    passes, and noise has many components).
    """
    n, k, t = len(ids), len(IMAGE_SCORES), len(THRESHOLD_SWEEP)
    if n == 0:
        return {m: MethodScores(np.zeros((0, k)), np.zeros((0, t))) for m in METHODS}
    resolution = heatmaps.shape[-1]
    scoring = settings.scoring
    centre = centre_prior(resolution, settings.centre_sigma)
    centre_boxes = largest_boxes(centre, (scoring.threshold, *THRESHOLD_SWEEP))
    values: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    sweeps: dict[str, list[np.ndarray]] = {m: [] for m in values}

    def add(method: str, scored: list[tuple[dict[str, float], np.ndarray]]) -> None:
        values[method].append(np.mean([[s[k] for k in IMAGE_SCORES] for s, _ in scored], 0))
        sweeps[method].append(scored[0][1])

    for heatmap, target, key in zip(heatmaps, targets, ids, strict=True):
        add(MODEL_METHOD, [score_heatmap(heatmap.astype(np.float32), target, scoring)])
        draws = random_heatmaps(resolution, Path(key).name, settings.random_draws, settings.seed)
        add(
            "random",
            [
                score_heatmap(d, target, scoring, THRESHOLD_SWEEP if k == 0 else ())
                for k, d in enumerate(draws)
            ],
        )
        add("centre", [score_heatmap(centre, target, scoring, boxes=centre_boxes)])
    return {
        m: MethodScores(np.array(values[m]).reshape(n, k), np.array(sweeps[m]).reshape(n, t))
        for m in values
    }


def localize_split(
    net: nn.Module,
    predictions: Predictions,
    regions: Mapping[str, ImageRegions],
    batches: BatchSource,
    *,
    image_size: int,
    resize_mode: str,
    settings: LocalizationSettings = LocalizationSettings(),
) -> SplitLocalization:
    """Grad-CAM and baseline scores of the split's fractured images that have regions.

    ``batches`` gives the model input of prediction positions (see
    :func:`localize_datamodule_split` and :func:`localize_files`); ``image_size`` and
    ``resize_mode`` are the settings those inputs were made with.
    """
    chosen, skipped = _select(predictions, regions)
    ids = [predictions.paths[i] for i in chosen]
    explained = _explained(predictions)
    maps, layer = compute_heatmaps(
        net,
        batches,
        chosen,
        [int(explained[i]) for i in chosen],
        target_layer=settings.target_layer,
        tta=settings.tta,
        batch_size=settings.batch_size,
    )
    resolution = maps.shape[-1] if len(maps) else int(image_size)
    targets = []
    for path in ids:
        image = regions[path]
        geometry = InputGeometry.of_image(image.width, image.height, image_size, resize_mode)
        targets.append(ImageTarget.build(image, geometry, resolution))
    binary = len(predictions.class_names) == 2
    labels = np.asarray(predictions.labels)[chosen]
    correct = np.asarray(predictions.predicted)[chosen] == labels
    info = {
        "split": predictions.split,
        "method": MODEL_METHOD,
        "target_layer": layer,
        "explains": predictions.class_names[1] if binary else "the labelled class",
        "image_size": int(image_size),
        "resize_mode": resize_mode,
        "heatmap_size": int(resolution),
        "decision_threshold": float(predictions.threshold),
        "n_regions": sum(len(regions[p].regions) for p in ids),
        "n_flat": sum(is_flat(m) for m in maps),  # Grad-CAM found nothing: points nowhere
        "settings": asdict(settings),
    }
    if skipped:
        log.info("Localization on %s leaves out: %s", predictions.split, dict(skipped))
    return SplitLocalization(
        split=predictions.split,
        ids=ids,
        correct=correct,
        heatmaps=maps,
        methods=_score_methods(maps, targets, ids, settings),
        info=info,
        targets=targets,
        skipped=dict(skipped),
    )


def localize_datamodule_split(
    net: nn.Module,
    datamodule: Any,
    predictions: Predictions,
    regions: Mapping[str, ImageRegions],
    settings: LocalizationSettings = LocalizationSettings(),
) -> SplitLocalization:
    """:func:`localize_split` on a set-up datamodule's split, whose order ``predictions``
    follow (``predict_split``): the training review and eval."""
    return localize_split(
        net,
        predictions,
        regions,
        datamodule_batches(datamodule, predictions.split),
        image_size=int(datamodule.image_size),
        resize_mode=str(datamodule.resize_mode),
        settings=settings,
    )


def localize_files(
    net: nn.Module,
    pipeline: Any,
    predictions: Predictions,
    regions: Mapping[str, ImageRegions],
    settings: LocalizationSettings = LocalizationSettings(),
) -> SplitLocalization:
    """:func:`localize_split` on files read by an ``InputPipeline`` (predict, eval)."""
    return localize_split(
        net,
        predictions,
        regions,
        pipeline_batches(pipeline, predictions.paths),
        image_size=int(pipeline.settings.image_size),
        resize_mode=str(pipeline.settings.resize_mode),
        settings=settings,
    )
