"""What the page says about the model: name, classes, training data, test metrics, limits.

A reader must be able to judge a prediction without the command line: which network,
trained on what, how well it did on held-out test images (with 95% intervals), and that
this is a research tool. The numbers come from the run folder the checkpoint sits in
(``<run>/checkpoints/*.ckpt``), read by the run-folder reader; a checkpoint copied out of
its run still works, the page then says the metrics are unknown. Below the summary the
page shows the run's ``model_card.md``, the same text the run wrote
(:mod:`fracture_lit.results.model_card`; rendered now for a run older than the card).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.model_card import DISCLAIMER, run_card
from fracture_lit.stats.catalogue import by_key

__all__ = ["DISCLAIMER", "ModelCard", "card_text", "run_folder_of"]

# A markdown link: the card's links are relative to its run folder, not to the page.
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")

# Metric keys shown on the page (labels from the catalogue), in this order.
_SHOWN_METRICS = ("auroc", "acc", "recall", "specificity")


def run_folder_of(ckpt_path: str | Path) -> Path | None:
    """``<run>`` of ``<run>/checkpoints/<name>.ckpt`` when that run finished writing its
    ``metrics.json`` (:meth:`~fracture_lit.layout.RunLayout.of_checkpoint`)."""
    run = RunLayout.of_checkpoint(ckpt_path)
    return run.folder if run is not None and run.metrics.is_file() else None


def _training_data(run_dir: Path | None) -> str:
    """``FracAtlas (/data/FracAtlas)`` from the run's resolved ``config.yaml``."""
    config = RunLayout(run_dir).config if run_dir is not None else None
    if config is None or not config.is_file():
        return "unknown (the checkpoint is not inside its run folder)"
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(config)).get("data", {})
    except Exception:  # noqa: BLE001 - an unreadable config only costs this line
        return f"unknown ({config} is unreadable)"
    kind = str(data.get("_target_", "?")).rsplit(".", 1)[-1].removesuffix("DataModule")
    root = data.get("root")
    return f"{kind} ({root})" if root else kind


def card_text(run_dirs: Sequence[Path | None]) -> str:
    """The ``model_card.md`` of each distinct run (the file, else rendered from the run
    folder), links reduced to their text; a sentence when no checkpoint is in a run."""
    cards = []
    for run_dir in dict.fromkeys(d for d in run_dirs if d is not None):
        written = RunLayout(run_dir).model_card
        text = written.read_text(errors="replace") if written.is_file() else run_card(run_dir)
        cards.append(_LINK.sub(r"\1", text))
    if not cards:
        return "No model card: the checkpoint is not inside the run folder that trained it."
    return "\n\n---\n\n".join(cards)


@dataclass
class ModelCard:
    """The facts the page shows above the upload box, and the run's full card below."""

    title: str
    checkpoint: str
    classes: list[str]
    training_data: str
    metrics: str
    threshold: str
    #: The training run's model_card.md (each member's, for an ensemble).
    text: str = ""

    @classmethod
    def build(cls, predictor: Any, runs: Sequence[tuple[Path | None, Any | None]]) -> ModelCard:
        """From a :class:`~fracture_lit.serving.predictor.Predictor` and, per member, its run
        folder and job record (``(None, None)`` for a checkpoint outside a finished run)."""
        members = predictor.members
        first_dir = runs[0][0] if runs else None
        if len(members) == 1:
            metrics = _metrics_line(runs[0][1] if runs else None)
        else:
            parts = [
                f"member {i} ({m.backbone}): {_metrics_line(job, short=True)}"
                for i, (m, (_, job)) in enumerate(zip(members, runs, strict=True), start=1)
            ]
            metrics = (
                "of the members (the ensemble itself: `python -m fracture_lit.eval "
                "ckpt_path=[...]`): " + "; ".join(parts)
            )
        return cls(
            title=f"{predictor.ensemble.name} fracture classifier",
            checkpoint=", ".join(str(m.path) for m in members),
            classes=list(predictor.class_names),
            training_data=_training_data(first_dir),
            metrics=metrics,
            threshold=predictor.threshold_meaning(),
            text=card_text([run_dir for run_dir, _ in runs]),
        )

    def markdown(self) -> str:
        classes = ", ".join(f"`{c}`" for c in self.classes)
        return "\n".join(
            [
                f"**Model:** {self.title} — checkpoint `{self.checkpoint}`  ",
                f"**Classes:** {classes}  ",
                f"**Training data:** {self.training_data}  ",
                f"**Test metrics:** {self.metrics}  ",
                f"**Decision threshold:** {self.threshold}",
            ]
        )


def _metrics_line(job: Any | None, short: bool = False) -> str:
    if job is None:
        return "unknown (no metrics.json next to the checkpoint's run folder)"
    if job.status != "done":
        return f"unknown: the training run did not finish ({job.status}: {job.error})"
    test = job.metrics.get("test") or {}
    if not test:
        return "not measured (the run had no test split)"
    parts = []
    for key in _SHOWN_METRICS:
        label = by_key(key).title
        point, low, high = test.get(key, (None, None, None))
        if point is None:
            continue
        ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        parts.append(f"{label} {point:.3f}{ci}")
    n = job.n.get("test")
    size = f" on {n} held-out test images" if n else ""
    if short:
        return f"{', '.join(parts[:1])}{size}"
    return (
        f"{', '.join(parts)}{size} (95% bootstrap intervals; accuracy, sensitivity and "
        "specificity at p = 0.5, AUROC over all thresholds)"
    )
