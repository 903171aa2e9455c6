"""``model_card.md``: what a run's model is, what it was trained on and how well it did.

Structured on the items of TRIPOD+AI and CLAIM that a training run can answer: intended
use, data (sources, counts, licences), split and leakage audit, preprocessing, model and
starting weights, training, performance with 95% intervals at the validation threshold,
calibration, subgroups, external validation and the limitations the data show. What a
run cannot know (clinical setting, eligibility, ethics, funding) is left to the authors.

Written at the end of every run and evaluation (beside ``report.html``; a failed run gets
a short card saying so), by ``python -m fracture_lit.report <folder>``, and shown on the
serve page. Every figure is copied from the run folder's files with its key
(:mod:`.card_lines`): nothing is recomputed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.card_data import (
    CardContext,
    data_section,
    evaluations_of,
    external_section,
    load_context,
    preprocessing_section,
    split_section,
    subgroup_section,
)
from fracture_lit.results.card_eval import eval_model_section, scored_externally, training_run
from fracture_lit.results.card_lines import bullet, count_key, figure, interval_figure
from fracture_lit.results.card_model import model_section, training_section, weights_line
from fracture_lit.results.job_errors import error_text
from fracture_lit.stats.catalogue import by_key
from fracture_lit.utils.atomic import write_text_atomic

__all__ = ["DISCLAIMER", "run_card", "try_write_model_card", "write_model_card"]

log = logging.getLogger("fracture_lit.report")

#: The research-only warning: on every card and on the serve page.
DISCLAIMER = (
    "**Research tool, not a diagnostic device.** What this model outputs is not a "
    "diagnosis and must not be used for clinical decisions: it is what one trained model "
    "computes for an image (on the serve page, with a heatmap of where it looked)."
)
#: Fewer positive test images than this make the card say the intervals are wide.
FEW_POSITIVES = 50
#: Fewer validation images than this make the card say the threshold is a rough choice.
FEW_VALIDATION = 200
#: Metrics shown at the decision threshold (``ci95_at_thr``), then threshold-free ones.
_AT_THRESHOLD = ("recall", "specificity", "acc", "f1", "precision", "balanced_acc", "kappa")
_THRESHOLD_FREE = ("auroc",)
_CALIBRATION = ("ece", "brier")


def _title(ctx: CardContext) -> str:
    backbone = ctx.summary.get("backbone") or ctx.section("model").get("backbone") or "?"
    task = " / ".join(ctx.classes)
    kind = "evaluation of " if ctx.summary.get("kind") == "eval" else ""
    return f"# Model card: {kind}{backbone}" + (f" · {task}" if task else "")


def _header(ctx: CardContext) -> list[str]:
    status = ctx.summary.get("status") or ("done" if ctx.summary else "no metrics.json")
    return [
        _title(ctx),
        "",
        f"Folder `{ctx.folder}` · status **{status}** · full report: "
        f"[{RunLayout.REPORT}]({RunLayout.REPORT}).",
        "",
        "Every figure below is copied from the run record: the key after it (in backticks) "
        "is where it lies in `metrics.json`, or `<file>: <key>` in another file of the "
        "folder. Sections follow the items of TRIPOD+AI and CLAIM a training run can "
        "answer; the clinical setting, eligibility, ethics and funding are the authors' "
        "to add.",
    ]


def _intended_use(ctx: CardContext) -> list[str]:
    task = (
        f"binary classification of a radiograph as `{ctx.positive}` or `{ctx.classes[0]}`"
        if ctx.positive
        else f"classification of a radiograph into {', '.join(ctx.classes) or 'its classes'}"
    )
    return [
        "## Intended use",
        "",
        f"> {DISCLAIMER}",
        "",
        f"- Task: {task}.",
        "- Users: researchers comparing fracture classifiers; not patients or clinicians.",
        "- Not validated prospectively, in a clinical workflow, or by a regulator.",
    ]


def _threshold(ctx: CardContext, stage: str) -> tuple[Any, str | None]:
    """The decision threshold a stage's ``*_at_thr`` figures use, and its key."""
    if stage == "eval":
        return ctx.summary.get("threshold"), "threshold"
    metrics = ctx.stage(stage).get("metrics") or {}
    for name in (f"{stage}/threshold", f"{stage}/youden_threshold"):
        if metrics.get(name) is not None:
            return metrics[name], f"{stage}.metrics.{name}"
    return None, None


def _stage_figures(ctx: CardContext, stage: str) -> list[str]:
    block = ctx.stage(stage)
    metrics = block.get("metrics") or {}
    ci95, ci_thr = block.get("ci95") or {}, block.get("ci95_at_thr") or {}
    lines = bullet(figure("images", block.get("n"), f"{stage}.n"))
    for key in _THRESHOLD_FREE:
        label = by_key(key).label
        lines += bullet(interval_figure(label, ci95.get(key), f"{stage}.ci95.{key}"))
    threshold, _ = _threshold(ctx, stage)
    if ci_thr or any(k.endswith("_at_thr") for k in metrics):
        for key in _AT_THRESHOLD:
            label = f"{by_key(key).label} at the threshold"
            line = interval_figure(label, ci_thr.get(key), f"{stage}.ci95_at_thr.{key}")
            name = f"{stage}/{key}_at_thr"
            line = line or figure(label, metrics.get(name), f"{stage}.metrics.{name}")
            lines += bullet(line)
    elif stage == "val" and threshold is not None:
        for key in ("sensitivity", "specificity"):
            name = f"val/youden_{key}"
            lines += bullet(
                figure(f"{key} at the threshold", metrics.get(name), f"val.metrics.{name}")
            )
    else:  # multi-class (argmax), or no threshold recorded: the plain metrics
        rule = "argmax" if len(ctx.classes) > 2 else "p > 0.5"
        for key in _AT_THRESHOLD:
            label = f"{by_key(key).label} ({rule})"
            lines += bullet(interval_figure(label, ci95.get(key), f"{stage}.ci95.{key}"))
    return lines


_STAGE_TITLES = {"val": "Validation (best checkpoint)", "test": "Test", "eval": "Evaluation"}


def _performance_section(ctx: CardContext, stages: list[str]) -> list[str]:
    lines = ["## Performance", ""]
    rule_stage = "eval" if "eval" in stages else "val"
    threshold, key = _threshold(ctx, rule_stage if rule_stage == "eval" else "val")
    if threshold is not None and key is not None:
        source = ctx.summary.get("threshold_source") or "Youden's J on the validation split"
        lines += bullet(figure(f"Decision threshold on p({ctx.positive})", threshold, key))
        lines.append(f"  - chosen by: {source}; never tuned on the split it is applied to.")
    elif len(ctx.classes) > 2:
        lines.append("- Decision rule: the most probable class (argmax).")
    for stage in stages:
        lines += ["", f"### {_STAGE_TITLES.get(stage, stage)}", *_stage_figures(ctx, stage)]
    return lines


def _calibration_section(ctx: CardContext, stages: list[str]) -> list[str]:
    lines = ["## Calibration", ""]
    for stage in stages:
        ci95 = ctx.stage(stage).get("ci95") or {}
        for key in _CALIBRATION:
            label = f"{by_key(key).label}, {stage}"
            lines += bullet(interval_figure(label, ci95.get(key), f"{stage}.ci95.{key}"))
    temperature = ctx.summary.get("temperature")
    lines += bullet(figure("Temperature applied to the logits", temperature, "temperature"))
    plot = ctx.layout.review.reliability(stages[-1]) if stages else None
    if plot is not None and plot.is_file():
        lines.append(
            f"- Reliability diagram: [{plot.relative_to(ctx.folder)}]({plot.relative_to(ctx.folder)})"
        )
    if len(lines) == 2:
        lines.append("Not recorded (no ECE or Brier score in metrics.json).")
    return lines


def _limitations(ctx: CardContext, stages: list[str], external: bool) -> list[str]:
    lines = ["## Limitations", ""]
    if not external:
        lines.append(
            "- No external test set: the test images come from the same source(s) and split "
            "procedure as the training images; how the model does on radiographs from "
            "elsewhere is not known."
        )
    scored = "eval" if "eval" in stages else "test"
    split = str(ctx.summary.get("split") or "test") if scored == "eval" else "test"
    if ctx.positive and ctx.manifest and scored == "test":
        n = sum(r.get("split") == split and r.get("class") == ctx.positive for r in ctx.manifest)
        if n < FEW_POSITIVES:
            key = count_key(RunLayout.SPLIT_MANIFEST, split=split, **{"class": ctx.positive})
            lines += bullet(
                figure(
                    f"Fewer than {FEW_POSITIVES} positive test images, so wide intervals", n, key
                )
            )
    if scored not in stages:
        lines.append("- No test split was scored: every figure above is from validation.")
    n_val = ctx.stage("val").get("n")
    if ctx.positive and "val" in stages and isinstance(n_val, int) and n_val < FEW_VALIDATION:
        label = "Decision threshold chosen on few validation images (its error carries to test)"
        lines += bullet(figure(label, n_val, "val.n"))
    weights = ctx.summary.get("starting_weights")
    if isinstance(weights, dict) and weights.get("licence") == "unknown":
        lines.append("- The starting weights' licence is unknown (no sidecar declares it).")
    if not any(True for _ in _sources_recorded(ctx)):
        lines.append("- The data sources' licences are not recorded in metrics.json.")
    if not ctx.layout.leakage_json.is_file():
        lines.append("- No leakage audit in this folder: duplicates across splits are unchecked.")
    return lines


def _sources_recorded(ctx: CardContext) -> list[Any]:
    data = ctx.summary.get("data")
    found = data.get("sources") if isinstance(data, dict) else None
    return list(found) if isinstance(found, list | dict) else []


def _unfinished(ctx: CardContext) -> list[str]:
    """A short card for a run that did not finish: what was asked and why it stopped."""
    status = ctx.summary.get("status") or "failed"
    error = error_text(ctx.summary) if ctx.summary else "no metrics.json (the process died)"
    model = ctx.section("model")
    return [
        *_intended_use(ctx),
        "",
        "## This run did not finish",
        "",
        f"- Status: {status}" + (f": {error.splitlines()[0]}" if error else "") + ".",
        f"- Asked for: backbone `{ctx.summary.get('backbone') or model.get('backbone', '?')}`, "
        f"starting weights {weights_line(ctx.summary.get('starting_weights'), model)}.",
        "- No figures: a model that did not finish training has no performance to report.",
    ]


def _eval_sections(ctx: CardContext, stages: list[str]) -> list[list[str]]:
    """An evaluation folder: its data, the checkpoint (and its training run), the scores."""
    run = training_run(ctx)
    external, sentence = scored_externally(ctx, run)
    return [
        _intended_use(ctx),
        [*data_section(ctx), "", f"- {sentence}"],
        preprocessing_section(ctx),
        eval_model_section(ctx, run),
        _performance_section(ctx, stages),
        _calibration_section(ctx, stages),
        subgroup_section(ctx),
        _limitations(ctx, stages, external),
    ]


def _run_sections(ctx: CardContext, stages: list[str]) -> list[list[str]]:
    evaluations = evaluations_of(ctx)
    external = bool(evaluations or ctx.summary.get("held_out"))
    return [
        _intended_use(ctx),
        data_section(ctx),
        split_section(ctx),
        preprocessing_section(ctx),
        model_section(ctx),
        training_section(ctx),
        _performance_section(ctx, stages),
        _calibration_section(ctx, stages),
        subgroup_section(ctx),
        external_section(ctx, evaluations),
        _limitations(ctx, stages, external),
    ]


def run_card(folder: Path | str) -> str:
    """The card of a run, sweep-job or evaluation folder, as markdown."""
    ctx = load_context(Path(folder))
    is_eval = ctx.summary.get("kind") == "eval"
    status = ctx.summary.get("status") or ("done" if is_eval else "")
    lines = _header(ctx) + [""]
    if status != "done":
        return "\n".join(lines + _unfinished(ctx)) + "\n"
    stages = [s for s in ("val", "test", "eval") if isinstance(ctx.stage(s).get("metrics"), dict)]
    sections = _eval_sections(ctx, stages) if is_eval else _run_sections(ctx, stages)
    for section in sections:
        lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(folder: Path | str, out: Path | str | None = None) -> Path:
    """Write ``model_card.md`` into ``folder`` (or ``out``: a file, or a folder to put it in)."""
    folder = Path(folder).expanduser().resolve()
    target = RunLayout(folder).model_card
    if out is not None:
        out = Path(out).expanduser()
        target = out / RunLayout.MODEL_CARD if out.is_dir() else out
    return write_text_atomic(target, run_card(folder))


def try_write_model_card(folder: Path | str) -> Path | None:
    """:func:`write_model_card` at the end of a run: a card that cannot be written is a
    warning, never a failed run (the results are on disk)."""
    try:
        path = write_model_card(folder)
    except Exception as error:  # noqa: BLE001 - the run is done; the card is extra
        log.warning("Could not write %s: %s: %s", RunLayout.MODEL_CARD, type(error).__name__, error)
        return None
    log.info("Model card: %s", path)
    return path
