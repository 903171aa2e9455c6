"""A model card's data sections: sources, split, leakage audit, preprocessing, subgroups,
external validation (TRIPOD+AI's data and participants items; CLAIM's data, ground truth
and partition items).

Read from the run folder only: ``metrics.json`` (``data.sources`` when the run recorded
them), the resolved config, ``split_manifest.csv`` (counted, per split and class), the
leakage audit's ``leakage_audit.json`` when one was written into the folder, and the
evaluation folders whose checkpoint lies in this run. Figures use :mod:`.card_lines`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_lit.layout import RunLayout
from fracture_lit.results.card_lines import (
    bullet,
    count_key,
    figure,
    interval_figure,
    json_key,
    plain,
)
from fracture_lit.results.folders import read_csv, read_json, read_yaml
from fracture_lit.stats import MIN_IMAGES_FOR_CI
from fracture_lit.stats.catalogue import by_key, subgroup_metrics
from fracture_lit.stats.splits import SPLITS

__all__ = [
    "EVAL_OUTPUTS",
    "CardContext",
    "data_section",
    "evaluations_of",
    "external_section",
    "load_context",
    "preprocessing_section",
    "split_section",
    "subgroup_section",
]

#: Where ``python -m fracture_lit.eval`` writes below ``paths.root_dir`` (conf/eval.yaml's
#: hydra.run.dir: ``outputs/eval/<date>/<time>_<id>``): searched for this run's evaluations.
EVAL_OUTPUTS = ("outputs", "eval")
#: The manifest's column a merged dataset fills with each image's source.
SOURCE_COLUMN = "source"
#: The manifest's column naming each image's duplicate group.
GROUP_COLUMN = "group"


@dataclass
class CardContext:
    """Everything a card is written from, read once."""

    folder: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    manifest: list[dict[str, str]] = field(default_factory=list)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.folder)

    @property
    def classes(self) -> list[str]:
        found = self.summary.get("classes")
        return [str(c) for c in found] if isinstance(found, list) else []

    @property
    def positive(self) -> str | None:
        """The positive class of a binary task (fracture_lit keeps it last)."""
        return self.classes[-1] if len(self.classes) == 2 else None

    def section(self, name: str) -> dict[str, Any]:
        found = self.config.get(name)
        return found if isinstance(found, dict) else {}

    def stage(self, name: str) -> dict[str, Any]:
        found = self.summary.get(name)
        return found if isinstance(found, dict) else {}


def load_context(folder: Path) -> CardContext:
    layout = RunLayout(folder)
    config: dict[str, Any] = {}
    for path in layout.configs():
        loaded = read_yaml(path)
        if isinstance(loaded, dict):
            config = loaded
            break
    return CardContext(
        folder=Path(folder),
        summary=read_json(layout.metrics),
        config=config,
        manifest=read_csv(layout.split_manifest),
    )


def _dataset_line(ctx: CardContext) -> str:
    data = ctx.section("data")
    kind = str(data.get("_target_", "?")).rsplit(".", 1)[-1]
    root = data.get("root")
    return f"Dataset: {kind}" + (f", root `{root}`" if root else "") + " (config `data`)."


def _sources(ctx: CardContext) -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, key prefix, record)`` of metrics.json ``data.sources`` (a list or a dict)."""
    data = ctx.summary.get("data")
    found = data.get("sources") if isinstance(data, dict) else None
    if isinstance(found, list):
        return [
            (str(s.get("name", i)), json_key("data", "sources", i), s)
            for i, s in enumerate(found)
            if isinstance(s, dict)
        ]
    if isinstance(found, dict):
        return [
            (str(name), json_key("data", "sources", name), s)
            for name, s in found.items()
            if isinstance(s, dict)
        ]
    return []


def _split_counts(ctx: CardContext) -> list[str]:
    manifest = RunLayout.SPLIT_MANIFEST
    rows = ctx.manifest
    lines: list[str] = []
    splits = Counter(r.get("split", "") for r in rows)
    by_source = any(r.get(SOURCE_COLUMN) for r in rows)
    for split in (*SPLITS, *sorted(set(splits) - set(SPLITS))):
        if not splits.get(split):
            continue
        lines += bullet(figure(f"{split} images", splits[split], count_key(manifest, split=split)))
        for name in ctx.classes:
            n = sum(r.get("split") == split and r.get("class") == name for r in rows)
            key = count_key(manifest, split=split, **{"class": name})
            lines += bullet(figure(f"{split} `{name}`", n, key), indent=1)
        if by_source:
            for source in sorted({r.get(SOURCE_COLUMN, "") for r in rows} - {""}):
                n = sum(r.get("split") == split and r.get(SOURCE_COLUMN) == source for r in rows)
                key = count_key(manifest, split=split, **{SOURCE_COLUMN: source})
                lines += bullet(figure(f"{split} from {source}", n, key), indent=1)
    return lines


def data_section(ctx: CardContext) -> list[str]:
    lines = ["## Data", "", _dataset_line(ctx), ""]
    sources = _sources(ctx)
    if sources:
        lines.append("Sources (metrics.json `data.sources`):")
        for name, prefix, record in sources:
            licence = record.get("licence") or record.get("license") or "not recorded"
            root = f", root `{record['root']}`" if record.get("root") else ""
            lines.append(f"- {name}: licence {licence}{root}")
            lines += bullet(figure("images", record.get("n"), f"{prefix}.n"), indent=1)
            key = f"{prefix}.n_positive"
            lines += bullet(figure("positive images", record.get("n_positive"), key), indent=1)
    else:
        lines.append(
            "Sources with their counts and licences: not recorded (metrics.json has no "
            "`data.sources`)."
        )
    lines.append("")
    classes = ", ".join(f"`{c}`" for c in ctx.classes) or "not recorded"
    positive = f"; positive class `{ctx.positive}`" if ctx.positive else ""
    lines.append(
        f"Classes: {classes}{positive}. Reference standard: the labels as the dataset's "
        "publishers distribute them; no re-reading is recorded by this run."
    )
    counts = _split_counts(ctx)
    if counts:
        lines += ["", f"Images per split ({RunLayout.SPLIT_MANIFEST}):", *counts]
    else:
        lines += ["", f"Images per split: not recorded (no {RunLayout.SPLIT_MANIFEST})."]
    return lines


def _split_method(data: dict[str, Any]) -> str:
    if data.get("manifest"):
        return f"reused exactly from the manifest `{data['manifest']}`"
    if data.get("n_folds"):
        return (
            f"fold {data.get('fold')} of {data['n_folds']} (cross-validation), split seed "
            f"{data.get('split_seed')}"
        )
    fractions = (
        f"validation {plain(data.get('val_fraction'))}, test {plain(data.get('test_fraction'))}"
    )
    if data.get("use_given_split"):
        return f"the dataset's own split where it has one; otherwise stratified ({fractions})"
    return f"seeded, stratified ({fractions}), split seed {plain(data.get('split_seed'))}"


def _groups_across(ctx: CardContext) -> list[str]:
    """How many of the manifest's duplicate groups have images in more than one split."""
    rows = [r for r in ctx.manifest if r.get(GROUP_COLUMN)]
    if not rows:
        return []
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row[GROUP_COLUMN], set()).add(row.get("split", ""))
    manifest = RunLayout.SPLIT_MANIFEST
    return [
        *bullet(
            figure(
                "image groups (an image with its duplicates)", len(splits), f"{manifest}: groups()"
            )
        ),
        *bullet(
            figure(
                "groups with images in more than one split",
                sum(len(s) > 1 for s in splits.values()),
                f"{manifest}: groups(across_splits)",
            )
        ),
    ]


def _leakage(ctx: CardContext) -> list[str]:
    path = ctx.layout.leakage_json
    audit = read_json(path)
    if not audit:
        return [
            "- Leakage audit: not run into this folder (`python -m fracture_lit.audit` with "
            "this run's data settings reports exact and near duplicates across splits)."
        ]
    name = path.name
    lines = [f"- Leakage audit ({name}, split audited: {audit.get('audited_split', '?')}):"]
    lines += bullet(figure("images audited", audit.get("n_images"), f"{name}: n_images"), 1)
    crossing = audit.get("crossing") if isinstance(audit.get("crossing"), dict) else {}
    for kind in ("exact", "near"):
        for pair, n in sorted((crossing.get(kind) or {}).items()):
            if pair != "within":
                key = json_key("crossing", kind, pair, file=name)
                lines += bullet(figure(f"{kind} duplicate groups across {pair}", n, key), 1)
    twins = audit.get("twins") if isinstance(audit.get("twins"), dict) else {}
    test = twins.get("test") if isinstance(twins.get("test"), dict) else {}
    key = json_key("twins", "test", "visual", file=name)
    lines += bullet(
        figure("test images with a train twin (exact or near)", test.get("visual"), key), 1
    )
    return lines


def split_section(ctx: CardContext) -> list[str]:
    data = ctx.section("data")
    grouping = (
        "byte-identical files, near duplicates and renamed copies are grouped and a group "
        "never straddles splits"
        if data.get("group_duplicates")
        else "duplicates are not grouped (data.group_duplicates=false)"
    )
    return [
        "## Split and leakage",
        "",
        f"- Split: {_split_method(data)}.",
        f"- Duplicates: {grouping}.",
        *_groups_across(ctx),
        *_leakage(ctx),
    ]


def preprocessing_section(ctx: CardContext) -> list[str]:
    data = ctx.section("data")
    augment = plain(data.get("augment"))
    return [
        "## Preprocessing",
        "",
        f"- Input: {plain(data.get('image_size'))} px ({plain(data.get('resize_mode'))}), "
        f"{plain(data.get('in_chans'))} channel(s), normalisation "
        f"{plain(data.get('normalize'))}.",
        f"- Preprocessing on every split: {plain(data.get('preprocess') or 'none')}.",
        f"- Augmentation (training only): {augment} at strength "
        f"{plain(data.get('augment_strength'))}; class balancing: {plain(data.get('balance'))}.",
        f"- Unreadable files are skipped and listed; the run stops past a share of "
        f"{plain(data.get('max_bad_fraction'))}.",
    ]


def _subgroup_blocks(ctx: CardContext) -> list[tuple[str, str | None, dict[str, Any]]]:
    """``(split, file or None for metrics.json, {attribute: {value: block}})``: an
    evaluation's own, and the review's of the last split a run scored (test, else val)."""
    found: list[tuple[str, str | None, dict[str, Any]]] = []
    own = ctx.summary.get("subgroups")
    if isinstance(own, dict) and own:
        found.append((str(ctx.summary.get("split") or "eval"), None, own))
    review = ctx.layout.review
    for split in reversed(SPLITS):  # the split the card reports on: test, else val
        blocks = read_json(review.subgroups(split))
        blocks = {k: v for k, v in blocks.items() if isinstance(v, dict) and v}
        if blocks:
            relative = review.subgroups(split).relative_to(ctx.folder)
            return [*found, (split, str(relative), blocks)]
    return found


def subgroup_section(ctx: CardContext) -> list[str]:
    lines = ["## Subgroups", ""]
    blocks = _subgroup_blocks(ctx)
    if not blocks:
        return [*lines, "No subgroup attribute (source, region, view) was recorded."]
    lines.append(
        f"95% intervals from {MIN_IMAGES_FOR_CI} images up; sensitivity needs a positive "
        "image and specificity a negative one."
    )
    keys = [m.key for m in subgroup_metrics()]
    for split, file, attributes in blocks:
        for attribute, groups in attributes.items():
            lines += ["", f"### {split}: per {attribute}"]
            prefix = ("subgroups",) if file is None else ()
            for value, block in groups.items():
                if not isinstance(block, dict):
                    continue
                lines.append(f"- {attribute} = {value}")
                base = (*prefix, attribute, value)
                lines += bullet(
                    figure("images", block.get("n"), json_key(*base, "n", file=file)), 1
                )
                key = json_key(*base, "n_positive", file=file)
                lines += bullet(figure("positive images", block.get("n_positive"), key), 1)
                ci95 = block.get("ci95") if isinstance(block.get("ci95"), dict) else {}
                for metric in keys:
                    key = json_key(*base, "ci95", metric, file=file)
                    lines += bullet(interval_figure(by_key(metric).label, ci95.get(metric), key), 1)
    return lines


def evaluations_of(ctx: CardContext) -> list[Path]:
    """Evaluation folders (``python -m fracture_lit.eval``) whose checkpoint is in this run."""
    root = ctx.section("paths").get("root_dir")
    if not root:
        return []
    base = Path(str(root)).joinpath(*EVAL_OUTPUTS)
    run = ctx.folder.resolve()
    found = []
    for metrics in sorted(base.glob(f"*/*/{RunLayout.METRICS}")):
        ckpts = read_json(metrics).get("ckpt_path")
        ckpts = ckpts if isinstance(ckpts, list) else [ckpts]
        if any(isinstance(c, str) and Path(c).resolve().is_relative_to(run) for c in ckpts):
            found.append(metrics.parent)
    return found


def external_section(ctx: CardContext, evaluations: list[Path]) -> list[str]:
    lines = ["## External validation", ""]
    held_out = ctx.summary.get("held_out") or ctx.section("data").get("held_out")
    if held_out:
        lines.append(f"- The test split is the held-out source `{plain(held_out)}`: external.")
    for folder in evaluations:
        summary = read_json(RunLayout(folder).metrics)
        block = summary.get("eval") if isinstance(summary.get("eval"), dict) else {}
        file = str(RunLayout(folder).metrics)
        data = f"{summary.get('data', '?')} `{summary.get('data_root', '?')}`"
        lines.append(f"- Evaluation `{folder}` on {data}, split {summary.get('split', '?')}:")
        lines += bullet(figure("images", block.get("n"), json_key("eval", "n", file=file)), 1)
        ci95 = block.get("ci95") if isinstance(block.get("ci95"), dict) else {}
        key = json_key("eval", "ci95", "auroc", file=file)
        lines += bullet(interval_figure("AUROC", ci95.get("auroc"), key), 1)
    if len(lines) == 2:
        lines.append(
            "None recorded: no evaluation of this run's checkpoints on other data was found "
            "(`python -m fracture_lit.eval ckpt_path=<this run>/checkpoints/<best>.ckpt "
            "data=<other dataset>`, then `python -m fracture_lit.report` on this folder)."
        )
    return lines
