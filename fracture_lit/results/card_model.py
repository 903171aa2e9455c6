"""A model card's model and training sections: backbone, starting weights, optimiser,
schedule, precision (TRIPOD+AI's model-building items; CLAIM's model and training items).

From the resolved config and ``metrics.json`` (``starting_weights``, ``epochs``,
``wall_time_s``, and ``precision`` when the run recorded it). Figures use :mod:`.card_lines`.
"""

from __future__ import annotations

from typing import Any

from fracture_lit.results.card_data import CardContext
from fracture_lit.results.card_lines import bullet, figure, plain

__all__ = ["model_section", "training_section", "weights_line"]


def weights_line(record: Any, model: dict[str, Any]) -> str:
    if not isinstance(record, dict):
        if "weights" not in model:
            return "not recorded (no `starting_weights` in metrics.json, no model config)"
        return f"{plain(model['weights'])} (config; metrics.json has no `starting_weights`)"
    kind = record.get("weights")
    licence = record.get("licence") or "none (random initialisation)"
    if kind == "file":
        source = f"; {record['source']}" if record.get("source") else ""
        return (
            f"file `{record.get('file')}` (sha256 `{record.get('sha256')}`{source}); "
            f"licence {licence}"
            + (f" (from `{record['licence_from']}`)" if record.get("licence_from") else "")
        )
    if kind == "imagenet":
        tag = f", tag {record['tag']}" if record.get("tag") else ""
        return f"ImageNet, {record.get('source')}{tag}; licence {licence}"
    return "none: trained from scratch (random initialisation)"


def model_section(ctx: CardContext) -> list[str]:
    model = ctx.section("model")
    return [
        "## Model and starting weights",
        "",
        f"- Backbone: `{ctx.summary.get('backbone') or model.get('backbone')}` (timm), "
        f"{plain(model.get('in_chans'))} input channel(s), a {len(ctx.classes) or '?'}-class "
        f"head, dropout {plain(model.get('drop_rate'))}.",
        f"- Starting weights: {weights_line(ctx.summary.get('starting_weights'), model)}.",
        f"- Frozen: {plain(model.get('freeze'))}; probability calibration: "
        f"{plain(model.get('calibrate'))}.",
    ]


def _target_name(block: Any) -> str:
    if not isinstance(block, dict):
        return "none"
    return str(block.get("_target_", "?")).rsplit(".", 1)[-1]


def _precision_line(ctx: CardContext) -> str:
    recorded = ctx.summary.get("precision")
    if isinstance(recorded, dict):
        parts = [f"{k} {plain(v)}" for k, v in recorded.items()]
        return "; ".join(parts)
    if isinstance(recorded, str):
        return recorded
    asked = ctx.section("trainer").get("precision")
    return f"not recorded (config trainer.precision={plain(asked)})"


def training_section(ctx: CardContext) -> list[str]:
    model, data, trainer = ctx.section("model"), ctx.section("data"), ctx.section("trainer")
    optimizer = model.get("optimizer") if isinstance(model.get("optimizer"), dict) else {}
    stopping = ctx.section("callbacks").get("early_stopping")
    patience = stopping.get("patience") if isinstance(stopping, dict) else None
    stopped = ctx.summary.get("stopped_early")
    lines = [
        "## Training",
        "",
        f"- Optimiser {_target_name(optimizer)} (learning rate {plain(optimizer.get('lr'))}, "
        f"weight decay {plain(optimizer.get('weight_decay'))}); scheduler "
        f"{_target_name(model.get('scheduler'))}; batch size {plain(data.get('batch_size'))}.",
        f"- Loss: cross-entropy, class weights {plain(model.get('class_weights'))}, label "
        f"smoothing {plain(model.get('label_smoothing'))}; seed {plain(ctx.config.get('seed'))}.",
        f"- Up to {plain(trainer.get('max_epochs'))} epochs, best checkpoint by "
        f"{plain(ctx.config.get('monitor'))} ({plain(ctx.config.get('monitor_mode'))})"
        + (f", early stopping after {patience} epochs without progress" if patience else "")
        + (f"; stopped early: {plain(stopped)}" if stopped is not None else "")
        + ".",
        f"- Hardware: {plain(trainer.get('accelerator'))} × {plain(trainer.get('devices'))}; "
        f"precision: {_precision_line(ctx)}.",
    ]
    lines += bullet(figure("Epochs trained", ctx.summary.get("epochs"), "epochs"))
    lines += bullet(figure("Wall time (s)", ctx.summary.get("wall_time_s"), "wall_time_s"))
    return lines
