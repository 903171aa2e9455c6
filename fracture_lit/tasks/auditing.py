"""Audit a dataset split for leakage: split the files as a run would, and report twins.

:func:`audit` builds the datamodule, lets it group and split the files exactly as a
training run would (:meth:`~fracture_lit.data.base.FractureDataModule.prepare_split`;
nothing is decoded into the image cache), runs
:func:`~fracture_lit.data.leakage.audit_leakage` on the result, prints the duplicate groups
within and across splits and the share of test and val images with a twin in train, and
writes ``leakage_audit.json`` and ``leakage_audit.txt`` to the run folder. Which split is
audited (``audit.split``: ``given`` or ``ours``, or ``data.manifest``'s) is explained in
``fracture_lit/audit.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fracture_lit.data.grouping import FINE_MAX_HAMMING, NEAR_MAX_HAMMING, HashCache
from fracture_lit.data.leakage import KINDS, SPLIT_PAIRS, audit_leakage
from fracture_lit.layout import RunLayout
from fracture_lit.validation import validate_audit

__all__ = ["SPLIT_MODES", "audit", "run"]

log = logging.getLogger("fracture_lit.audit")

SPLIT_MODES = ("given", "ours")


def _rich_tables(report: Any, show_groups: int) -> list[Table]:
    """The report as rich tables: groups per level and split pair, twin shares, examples."""
    counts = ", ".join(f"{k} {v:,}" for k, v in report.split_counts.items())
    groups = Table(
        title=f"Duplicate groups: {report.n_images:,} images ({counts})",
        caption=(
            f"near = {report.near_rule()}, beyond byte-identical copies; name = same "
            "source name and label"
        ),
        title_style="bold",
    )
    pairs = [f"{a}/{b}" for a, b in SPLIT_PAIRS]
    for column in ("level", "groups", "images", "within 1 split", *pairs, "mixed labels"):
        groups.add_column(column, justify="left" if column == "level" else "right")
    for kind in KINDS:
        if kind not in report.crossing:
            continue
        gs = report.groups(kind)
        crossing = report.crossing[kind]
        cells = [f"{crossing.get(p, 0):,}" for p in pairs]
        groups.add_row(
            kind,
            f"{len(gs):,}",
            f"{sum(len(g.paths) for g in gs):,}",
            f"{crossing.get('within', 0):,}",
            *[f"[bold red]{c}[/]" if c != "0" else c for c in cells],
            f"{sum(g.mixed_labels for g in gs):,}",
        )

    twins = Table(title="Images with a twin in train", title_style="bold")
    for column in ("split", "images", "exact", "exact + near", "any (+ name)"):
        twins.add_column(column, justify="left" if column == "split" else "right")
    for split in ("test", "val"):
        t = report.twins.get(split, {})
        if not t.get("n"):
            twins.add_row(split, "0", "-", "-", "-")
            continue
        twins.add_row(
            split,
            f"{t['n']:,}",
            *[
                f"{t[level]:,} ({100 * report.twin_share(split, level):.1f}%)"
                for level in ("exact", "visual", "any")
            ],
        )
    tables = [groups, twins]
    if report.cross_source:
        across = Table(title="Images that appear in another source", title_style="bold")
        for column in ("source", "also in", "images", "exact", "near"):
            across.add_column(
                column, justify="left" if column in ("source", "also in") else "right"
            )
        for pair, c in report.cross_source.items():
            a, b = pair.split("/", 1)
            share = f"{c['images']:,} of {c['of']:,}"
            across.add_row(a, b, share, f"{c['exact']:,}", f"{c['near']:,}")
        tables.append(across)

    if show_groups > 0:
        examples = Table(title="Examples of groups crossing train and test/val", title_style="bold")
        for column in ("level", "files (split)"):
            examples.add_column(column)
        shown = 0
        for kind in ("exact", "near"):
            crossing_groups = [
                g
                for g in report.groups(kind)
                if g.crosses("train", "test") or g.crosses("train", "val")
            ]
            for g in crossing_groups[:show_groups]:
                files = ", ".join(
                    f"{Path(p).parent.name}/{Path(p).name} ({s})"
                    for p, s in zip(g.paths, g.splits, strict=True)
                )
                examples.add_row(kind, files)
                shown += 1
        if shown:
            tables.append(examples)
    return tables


def audit(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """Split the configured dataset as a run would, audit it and write the report files.

    Returns the JSON-able result (also written to ``leakage_audit.json``).
    """
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: wide enough that no column is cut
            console = Console(width=max(console.width, 120))
    mode = str(cfg.audit.get("split", "given"))
    if mode not in SPLIT_MODES:
        raise ValueError(f"audit.split={mode!r}; use one of {', '.join(SPLIT_MODES)}.")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    # "given": the datamodule keeps the dataset's split and logs the groups crossing it; the
    # val it also carves out of given train is undone below (back to given_split).
    datamodule = hydra.utils.instantiate(cfg.data, use_given_split=mode == "given")
    samples = datamodule.prepare_split()
    has_given = any(s.given_split is not None for s in samples)
    if datamodule.manifest_in is not None:
        audited = f"manifest {datamodule.manifest_in}"
    elif mode == "given" and has_given:
        for s in samples:
            if s.given_split is not None:
                s.split = s.given_split
        audited = "given (the dataset's own split)"
    else:
        audited = "ours (group-aware split)"
        if mode == "given":
            audited += "; the dataset has no given split"

    report = audit_leakage(
        samples,
        max_hamming=int(cfg.audit.get("max_hamming", NEAR_MAX_HAMMING)),
        fine_max_hamming=cfg.audit.get("fine_max_hamming", FINE_MAX_HAMMING),
        near_duplicates=True,
        # The datamodule's grouping hashed the same files into this cache.
        cache=HashCache(datamodule.cache_dir / "hashes.json"),
        workers=datamodule.decode_workers,
    )
    result: dict[str, Any] = {
        "dataset": datamodule.dataset_name,
        "root": str(datamodule.root),
        "classes": datamodule.classes,
        "split_mode": mode,
        "audited_split": audited,
        "skipped_files": [list(item) for item in datamodule.index.skipped],
        **report.to_dict(),
    }
    written = RunLayout(output_dir)
    json_path = written.leakage_json
    json_path.write_text(json.dumps(result, indent=2))
    table = report.format_table()
    written.leakage_text.write_text(
        f"dataset: {datamodule.dataset_name} ({datamodule.root})\nsplit: {audited}\n\n{table}\n"
    )

    console.print(f"[bold]Leakage audit[/] of {datamodule.dataset_name} at {datamodule.root}")
    console.print(f"split audited: {audited}")
    for rich_table in _rich_tables(report, int(cfg.audit.get("show_groups", 5))):
        console.print(rich_table)
    for line in report.cross_source_lines():
        console.print(line, highlight=False)
    console.print(
        f"Report written to {json_path} (table: {written.leakage_text.name})", soft_wrap=True
    )
    return result


def run(cfg: DictConfig) -> dict[str, Any]:
    """``python -m fracture_lit.audit``: every value checked, then :func:`audit`."""
    log.debug("Config:\n%s", OmegaConf.to_yaml(cfg))
    validate_audit(cfg)
    return audit(cfg)
