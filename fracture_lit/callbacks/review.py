"""Review artefacts of the best checkpoint: curves, confusion matrix, Grad-CAM, mistakes.

After fitting, ``train`` evaluates the best checkpoint on validation and test; this
callback runs right then (not every epoch), on rank 0 only, with the weights that are
reported. It reviews the scores that evaluation computed (the module keeps every image's
fp32 probability, :attr:`FractureClassifier.epoch_predictions`), so the figures show the
reported numbers and no image is predicted twice; only where those scores cannot be
matched to the images (a limited evaluation) is the split predicted again. Grad-CAM runs
its forward/backward on the chosen images only. It writes ``<run folder>/review/`` (see :mod:`fracture_lit.review.artifacts`), the
split's per-subgroup scores (``review/<split>/subgroups.json``: region, view, hardware) and,
when the run logs to W&B, the same confusion matrix, ROC/PR curves, Grad-CAM gallery and
misclassified-image table into the W&B run. With annotated regions (``data.regions``;
``localization.*``) it also scores where Grad-CAM looks on both splits
(:mod:`fracture_lit.localization`): :attr:`ReviewCallback.localized` holds the blocks
``train`` records in ``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from fracture_lit.data.input_settings import InputSettings
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import score_all_subgroups
from fracture_lit.evaluation.subgroups import SUBGROUP_ATTRIBUTES
from fracture_lit.inference.pipeline import InputPipeline
from fracture_lit.inference.split import predict_split, with_split_images
from fracture_lit.layout import ReviewLayout
from fracture_lit.localization.outputs import LocalizationRun
from fracture_lit.localization.wandb_log import log_localization
from fracture_lit.results.folders import write_json
from fracture_lit.review.artifacts import ReviewFiles, write_review
from fracture_lit.review.wandb_log import log_review

log = logging.getLogger(__name__)


class ReviewCallback(Callback):
    """Write (and log to W&B) the review of each split in ``splits`` once it is evaluated."""

    def __init__(
        self,
        output_dir: str,
        splits: Sequence[str] = ("val", "test"),
        n_fixed: int = 8,
        n_worst: int = 8,
        gradcam: bool = True,
        target_layer: str | None = None,
        log_to_wandb: bool = True,
        batch_size: int = 64,
        localization: Mapping[str, Any] | None = None,
        reuse_scores: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.splits = tuple(splits)
        self.n_fixed, self.n_worst = int(n_fixed), int(n_worst)
        self.gradcam, self.target_layer = gradcam, target_layer
        self.log_to_wandb, self.batch_size = log_to_wandb, int(batch_size)
        # False predicts every image again (what the review did before; bench_main compares).
        self.reuse_scores = bool(reuse_scores)
        self.written: dict[str, object] = {}
        self.localization = (
            LocalizationRun(localization, target_layer=target_layer) if localization else None
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only the evaluation of the chosen checkpoint, not every epoch of fitting.
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self._review(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._review(trainer, pl_module, "test")

    def _review(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        datamodule = trainer.datamodule
        if split not in self.splits or not trainer.is_global_zero or datamodule is None:
            return
        if not datamodule.has_split(split) or trainer.fast_dev_run:
            return
        try:
            self._write(trainer, pl_module, split)
        except Exception:  # noqa: BLE001 - the review is extra; the evaluation must go on
            log.warning(
                "The review of %s failed; its metrics are unaffected (disable it with "
                "~callbacks.review):",
                split,
                exc_info=True,
            )

    def _predictions(
        self, trainer: L.Trainer, pl_module: L.LightningModule, split: str
    ) -> SplitPredictions:
        """The scores the evaluation just computed, matched to the split's images; the
        split predicted again on rank 0 only where they cannot be (logged, with why)."""
        kept = getattr(pl_module, "epoch_predictions", {}).get(split) if self.reuse_scores else None
        if kept is not None:
            try:
                pred = with_split_images(kept, trainer.datamodule, split, trainer.world_size)
            except ValueError as why:
                log.info("Review of %s: predicting it again on rank 0 (%s).", split, why)
            else:
                log.info(
                    "Review of %s: the evaluation's %d fp32 scores (from %d rank(s)), not "
                    "predicted again.",
                    split,
                    len(pred.labels),
                    trainer.world_size,
                )
                return pred
        return predict_split(
            pl_module,
            trainer.datamodule,
            split,
            list(pl_module.class_names),
            threshold=float(pl_module.decision_threshold),
            batch_size=self.batch_size,
            temperature=float(pl_module.temperature),
        )

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        datamodule = trainer.datamodule
        started = time.perf_counter()
        # Lightning evaluates under inference_mode, which Grad-CAM's backward cannot run in.
        with torch.inference_mode(False):
            pred = self._predictions(trainer, pl_module, split)
            pipeline = InputPipeline(
                InputSettings.from_datamodule(
                    datamodule, pl_module.class_names, float(pl_module.decision_threshold)
                )
            )
            files = write_review(
                pred,
                self.output_dir,
                net=pl_module.net if self.gradcam else None,
                pipeline=pipeline,
                n_fixed=self.n_fixed,
                n_worst=self.n_worst,
                target_layer=self.target_layer,
            )
            self._localize(trainer, pl_module, pred, pipeline)
        self.written[split] = files
        self._write_subgroups(pred, pl_module, datamodule)
        log.info(
            "Review of %s written to %s in %.1f s",
            split,
            self.output_dir,
            time.perf_counter() - started,
        )
        if self.log_to_wandb:
            self._log_wandb(trainer, pred, files)

    @property
    def localized(self) -> dict[str, dict[str, Any]]:
        """split -> localization block (empty without regions)."""
        return self.localization.blocks if self.localization else {}

    def _localize(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        pred: SplitPredictions,
        pipeline: Any,
    ) -> None:
        """Grad-CAM scored against the regions; a failure is a warning, as for the review."""
        if self.localization is None:
            return
        try:
            regions = self.localization.datamodule_regions(trainer.datamodule)
            if regions is None:
                return
            block = self.localization.score(
                pl_module.net, pred, regions, self.output_dir, pipeline, trainer.datamodule
            )
        except Exception:  # noqa: BLE001 - extra, like the review: the metrics must go on
            log.warning("The localization of %s failed:", pred.split, exc_info=True)
            return
        for logger in trainer.loggers if self.log_to_wandb else ():
            if isinstance(logger, WandbLogger):
                log_localization(logger.experiment, pred.split, block, self.output_dir)

    def _write_subgroups(
        self, pred: SplitPredictions, pl_module: L.LightningModule, datamodule: object
    ) -> None:
        """``review/<split>/subgroups.json``: n, sensitivity, specificity, AUROC with 95% CIs
        per subgroup attribute the dataset declares (FracAtlas: region, view, hardware)."""
        n_bootstrap = int(getattr(pl_module.hparams, "n_bootstrap", 1000))
        attributes = getattr(datamodule, "subgroup_attributes", SUBGROUP_ATTRIBUTES)
        scored = score_all_subgroups(pred, tuple(attributes), n_bootstrap=n_bootstrap)
        if scored:
            write_json(scored, ReviewLayout(self.output_dir).subgroups(pred.split))

    @staticmethod
    def _log_wandb(trainer: L.Trainer, pred: SplitPredictions, files: ReviewFiles) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                log_review(logger.experiment, pred, files)
