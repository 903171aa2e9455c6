"""FractureClassifier: one LightningModule for every backbone and every dataset.

Every epoch logs the torchmetrics collection of its stage (synchronised across ranks).
Validation and test epochs also keep their logits: validation fits what is chosen on it
(the temperature, the Youden threshold), and both are scored by
:func:`fracture_lit.evaluation.scoring.score`, the function eval uses, into the blocks of
metrics.json. Validation, test and predict steps compute in fp32 whatever the trainer's
precision (:func:`~fracture_lit.utils.precision.fp32_scoring`): training may run under bf16
autocast, but what is reported and chosen comes from the probabilities eval, predict,
serve and the ONNX model compute for the same checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from torchmetrics import MaxMetric, MinMetric

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import score
from fracture_lit.metrics import metric_inputs
from fracture_lit.models.factory import create_backbone
from fracture_lit.models.freeze import freeze_backbone, set_frozen_bn_eval
from fracture_lit.models.stage_metrics import StageMetrics
from fracture_lit.stats.splits import SPLITS
from fracture_lit.stats.temperature import CALIBRATE_CHOICES, fit_temperature
from fracture_lit.stats.youden import youden_threshold
from fracture_lit.utils.precision import (
    SCORE_PRECISION,
    fp32_scoring,
    refuse_half_weights,
    scoring_dtype,
)

# Epoch values are computed by torchmetrics after it synchronised the ranks' states, so
# Lightning's advice to reduce them again with sync_dist does not apply.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")

__all__ = ["FractureClassifier", "StageMetrics"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def _plain(value: Any) -> Any:
    """Hydra hands nested configs over as DictConfig; checkpoints must hold plain types
    (they are loaded with ``weights_only=True``)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


class FractureClassifier(L.LightningModule):
    """A timm backbone with a ``num_classes`` head, trained with cross-entropy.

    Binary tasks log metrics of the positive class probability; on every validation
    epoch the Youden-J threshold is chosen on validation and stored in the checkpoint
    (``decision_threshold``), and the test epoch reports metrics at that threshold as well
    as at 0.5: the threshold is never tuned on test.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        num_classes: int = 2,
        in_chans: int = 3,
        weights: str | None = "none",
        pretrained: bool | None = None,
        pretrained_file: str | None = None,
        drop_rate: float = 0.0,
        freeze: str = "none",
        train_bn: bool = True,
        class_weights: str | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = True,
        compile: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        monitor: str = "val/auroc",
        monitor_mode: str = "max",
        class_names: Sequence[str] | None = None,
        n_bootstrap: int = 1000,
        calibrate: str = "none",
    ) -> None:
        super().__init__()
        if calibrate not in CALIBRATE_CHOICES:
            raise ValueError(
                f"model.calibrate={calibrate!r}: use one of {', '.join(CALIBRATE_CHOICES)}."
            )
        if num_classes is None or int(num_classes) < 2:
            raise ValueError(
                f"model.num_classes={num_classes!r}: need at least 2 classes (it is normally "
                "taken from the datamodule)."
            )
        backbone_kwargs = _plain(backbone_kwargs) or {}
        class_weights = _plain(class_weights)
        class_names = list(_plain(class_names) or [str(i) for i in range(num_classes)])
        self.save_hyperparameters(
            ignore=["optimizer", "scheduler"],
            logger=False,
        )
        self.hparams["backbone_kwargs"] = backbone_kwargs
        self.hparams["class_weights"] = class_weights
        self.hparams["class_names"] = class_names
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = int(num_classes)
        self.class_names = class_names
        self.net = create_backbone(
            backbone,
            num_classes=self.num_classes,
            in_chans=in_chans,
            weights=weights,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            drop_rate=drop_rate,
            **backbone_kwargs,
        )
        self.frozen_modules = freeze_backbone(self.net, freeze, train_bn)
        if channels_last:
            # NHWC before any strategy wraps the weights (DDP buckets them as they are);
            # moving to a device keeps the layout. Faster on GPUs and on CPUs alike (oneDNN):
            # 1.10-1.44x per train step here (README, Performance).
            self.net.to(memory_format=torch.channels_last)
        # Kept out of nn.Module's registry: a registered compiled wrapper would put every
        # weight in the checkpoint twice, the copy under "_forward_impl._orig_mod.", which a
        # model built without compile (eval, predict, export) then refuses to load.
        forward_impl = torch.compile(self.net) if compile else self.net
        object.__setattr__(self, "_forward_impl", forward_impl)
        # Weights of the loss; "balanced" is resolved from the train split in setup().
        initial = class_weights if isinstance(class_weights, list | tuple) else None
        self.register_buffer(
            "class_weight",
            torch.tensor(initial, dtype=torch.float32) if initial else torch.ones(num_classes),
        )
        # The decision threshold on the positive class (binary), chosen on validation.
        self.register_buffer("decision_threshold", torch.tensor(0.5))
        # Divides the logits before the softmax everywhere probabilities are reported (eval,
        # predict, export, the review); fitted on validation with model.calibrate=temperature.
        self.register_buffer("temperature", torch.tensor(1.0))

        for stage in SPLITS:
            setattr(self, f"{stage}_metrics", StageMetrics(self.num_classes, stage))
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.val_best = MaxMetric() if monitor_mode == "max" else MinMetric()
        # Plain Python results of the last val/test epoch (confusion matrices, intervals):
        # what train.py writes to the run folder and prints.
        self.epoch_summary: dict[str, dict[str, Any]] = {}
        # The predictions each of those blocks scored (calibrated, at the chosen threshold),
        # for whoever reviews the same epoch (see _kept_predictions on their order).
        self.epoch_predictions: dict[str, SplitPredictions] = {}

    # ----------------------------------------------------------------- forward / loss
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward_impl(x)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(),
            target,
            weight=self.class_weight,
            label_smoothing=self.hparams.label_smoothing,
        )

    def score_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in fp32 whatever the trainer's precision: what every score comes from."""
        with fp32_scoring(x.device.type):
            return self(x.to(scoring_dtype(self.net))).float()

    # ----------------------------------------------------------------- lifecycle hooks
    def setup(self, stage: str) -> None:
        refuse_half_weights(self.trainer.precision)
        if self.hparams.class_weights == "balanced" and stage == "fit":
            counts = self.trainer.datamodule.class_counts("train")
            counts_t = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
            self.class_weight.copy_(counts_t.sum() / (len(counts) * counts_t))

    def on_train_start(self) -> None:
        # The sanity check must not leave its values in the validation metrics.
        self.val_best.reset()
        self.val_metrics.reset()

    def on_train_epoch_start(self) -> None:
        if not self.hparams.train_bn:
            set_frozen_bn_eval(self.net)

    # ----------------------------------------------------------------- steps
    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x) if stage == "train" else self.score_logits(x)
        loss = self.loss(logits, y)
        scores = metric_inputs(logits, self.num_classes)
        kept = None if stage == "train" else logits
        self._stage(stage).update(scores, y, loss.detach(), kept)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("train/loss_step", loss, prog_bar=False, batch_size=batch[1].numel())
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return torch.softmax(self.score_logits(x) / self.temperature, dim=1)

    # ----------------------------------------------------------------- epoch ends
    def _stage(self, stage: str) -> StageMetrics:
        return getattr(self, f"{stage}_metrics")

    def _finish_epoch(self, stage: str) -> dict[str, float]:
        """Compute (synchronised across ranks), score and reset one stage's metrics; returns
        the values to log."""
        acc = self._stage(stage)
        acc.flush()
        logged = {k: float(v) for k, v in acc.collection.compute().items()}
        logged[f"{stage}/loss"] = float(acc.loss.compute())
        summary: dict[str, Any] = {
            "metrics": logged,
            "confusion_matrix": acc.confusion.compute().cpu().tolist(),
        }
        if acc.keep_scores:
            logits, targets = self._kept_predictions(acc)
            summary["n"] = int(targets.numel())
            if not self.trainer.sanity_checking:
                summary = self._score_epoch(stage, logits, targets, logged)
        acc.reset()
        self.epoch_summary[stage] = summary
        return summary["metrics"]

    @staticmethod
    def _kept_predictions(acc: StageMetrics) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's fp32 logits (uncalibrated) and targets, on the CPU.

        Under DDP these are every rank's, gathered rank after rank: with Lightning's
        ``UnrepeatedDistributedSampler`` rank ``r`` holds the split's images
        ``r, r + W, r + 2W, ...``, which is how they map back to image paths.
        """
        return acc.logits.compute().cpu(), acc.targets.compute().cpu().long()

    def _score_epoch(
        self, stage: str, logits: torch.Tensor, targets: torch.Tensor, logged: dict[str, float]
    ) -> dict[str, Any]:
        """The epoch's block of metrics.json, scored by
        :func:`~fracture_lit.evaluation.scoring.score` like eval's.

        Validation first fits what is chosen on it and stored in the checkpoint: the
        temperature (``model.calibrate=temperature``) and, for binary tasks, the Youden
        threshold. Probabilities are then calibrated, so the threshold and the test metrics
        at it live on the scale eval and predict report. Blocks are scored at 0.5, the
        threshold of the logged torchmetrics values, and the test block also at the
        validation threshold (``test/<metric>_at_thr``, ``ci95_at_thr``). Intervals come
        with the evaluation of the chosen checkpoint (``validate`` after fitting, and test).

        The block's metrics at 0.5 are the epoch's logged torchmetrics values (``logged``,
        what the checkpoint monitor saw), of the uncalibrated scores: for a binary task the
        same numbers (a temperature moves neither the ranking nor the 0.5 cut), while a
        multiclass AUROC ranks each class's probability across images, which a temperature
        does change.
        """
        fitted: dict[str, float] = {}
        summary: dict[str, Any] = {}
        binary = self.num_classes == 2
        if stage == "val" and self.hparams.calibrate == "temperature":
            fit = fit_temperature(metric_inputs(logits, self.num_classes), targets)
            self.temperature.fill_(fit.temperature)
            fitted["val/temperature"] = fit.temperature
            summary["temperature_fit"] = {
                "temperature": fit.temperature,
                "nll_before": fit.nll_before,
                "nll_after": fit.nll_after,
            }
        # softmax(logits / T), as eval and predict compute it (inference/pipeline.py).
        probs = torch.softmax(logits / float(self.temperature), 1)
        scores = probs[:, 1] if binary else probs
        if stage == "val" and binary and targets.unique().numel() == 2:
            youden = youden_threshold(scores, targets)
            self.decision_threshold.fill_(youden.threshold)
            fitted.update(
                {
                    "val/youden_threshold": youden.threshold,
                    "val/youden_sensitivity": youden.sensitivity,
                    "val/youden_specificity": youden.specificity,
                    "val/youden_j": youden.j,
                }
            )
        pred = SplitPredictions.from_scores(
            stage, self.class_names, probs.numpy(), targets.numpy(), float(self.decision_threshold)
        )
        self.epoch_predictions[stage] = pred
        final = stage == "test" or self.trainer.state.fn == "validate"
        block = score(
            pred,
            prefix=stage,
            n_bootstrap=int(self.hparams.n_bootstrap) if final else 0,
            threshold=0.5,
            at_threshold=stage == "test",
            metric_intervals=binary,
        )
        block["metrics"] = {**block["metrics"], **logged, **fitted}
        return {**block, **summary}

    def on_train_epoch_end(self) -> None:
        self._log_epoch(self._finish_epoch("train"), progress={"train/loss"})

    def on_validation_epoch_end(self) -> None:
        values = self._finish_epoch("val")
        if not self.trainer.sanity_checking and self.monitor in values:
            self.val_best.update(torch.tensor(values[self.monitor]))
            values[f"{self.monitor}_best"] = float(self.val_best.compute())
        self._log_epoch(values, progress={self.monitor, "val/acc"})

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self._finish_epoch("test"), progress=set())

    def _log_epoch(self, values: dict[str, float], progress: set[str]) -> None:
        """Log epoch values (already synchronised across ranks by torchmetrics)."""
        shown = {k: v for k, v in values.items() if k in progress}
        rest = {k: v for k, v in values.items() if k not in progress}
        if shown:
            self.log_dict(shown, prog_bar=True, sync_dist=False)
        self.log_dict(rest, sync_dist=False)

    # ----------------------------------------------------------------- optimisers
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("FractureClassifier needs an optimizer (the optimizer/ group).")
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.monitor,
                "interval": "epoch",
                "frequency": 1,
            },
        }

    # ----------------------------------------------------------------- checkpoints
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints written before temperature scaling existed carry no temperature: 1.0.
        checkpoint.get("state_dict", {}).setdefault("temperature", torch.tensor(1.0))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        checkpoint["fracture_lit"] = {
            "backbone": self.hparams.backbone,
            "class_names": list(self.class_names),
            "in_chans": int(self.hparams.in_chans),
            "decision_threshold": float(self.decision_threshold),
            "temperature": float(self.temperature),
            # What trained the weights, and what every score of them is computed in.
            "precision": {
                "train": str(trainer.precision if trainer else "?"),
                "score": SCORE_PRECISION,
            },
        }
        # Resuming from this checkpoint continues the same W&B run (see train.wandb_settings).
        for logger in trainer.loggers if trainer is not None else ():
            if isinstance(logger, WandbLogger) and logger.version:
                checkpoint["fracture_lit"]["wandb_run_id"] = str(logger.version)
