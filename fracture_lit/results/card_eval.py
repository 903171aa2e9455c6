"""An evaluation folder's card sections: which checkpoint, trained where, and whether the
data it was scored on is external to that training (TRIPOD+AI's evaluation items).

The training run is the checkpoint's run folder (:meth:`RunLayout.of_checkpoint`); its own
card describes the training data, split and internal test, so this one links to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.card_data import CardContext, load_context
from fracture_lit.results.card_lines import plain
from fracture_lit.results.card_model import weights_line

__all__ = ["eval_model_section", "scored_externally", "training_run"]


def _checkpoints(ctx: CardContext) -> list[str]:
    found = ctx.summary.get("ckpt_path")
    return [str(c) for c in found] if isinstance(found, list) else [str(found or "?")]


def training_run(ctx: CardContext) -> Path | None:
    """The run folder the (first) evaluated checkpoint was trained in, when it has one."""
    run = RunLayout.of_checkpoint(_checkpoints(ctx)[0]) if ctx.summary.get("ckpt_path") else None
    return run.folder if run is not None else None


def _same_folder(a: Any, b: Any) -> bool:
    try:
        return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def scored_externally(ctx: CardContext, run: Path | None) -> tuple[bool, str]:
    """Whether the evaluated data is another dataset than training's, and the sentence."""
    root = ctx.summary.get("data_root")
    split = ctx.summary.get("split", "?")
    if run is None:
        return False, (
            f"Scored on `{root}`, split {split}; the checkpoint is outside its run folder, so "
            "whether this data is external to its training is unknown."
        )
    trained_on = load_context(run).section("data").get("root")
    if trained_on is not None and _same_folder(trained_on, root):
        return False, (
            f"Scored on the training dataset `{root}`, split {split}: internal, not external "
            "validation."
        )
    return True, (
        f"Scored on `{root}`, split {split}; the training run used `{plain(trained_on)}`: "
        "external validation."
    )


def eval_model_section(ctx: CardContext, run: Path | None) -> list[str]:
    checkpoints = ", ".join(f"`{c}`" for c in _checkpoints(ctx))
    lines = [
        "## Model",
        "",
        f"- Checkpoint(s): {checkpoints}; backbone `{ctx.summary.get('backbone', '?')}`; "
        f"test-time augmentation: {plain(ctx.summary.get('tta') or 'none')}.",
    ]
    if run is None:
        lines.append("- How it was trained is unknown: the checkpoint is not in a run folder.")
        return lines
    trained = load_context(run)
    card = RunLayout(run).model_card
    lines += [
        f"- Trained in `{run}`; its card ([{card.name}]({card})) gives the training data, "
        "split, settings and internal test.",
        "- Starting weights of that training: "
        f"{weights_line(trained.summary.get('starting_weights'), trained.section('model'))}.",
    ]
    return lines
