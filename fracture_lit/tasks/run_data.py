"""What a training run records about its data, once the best checkpoint is evaluated.

* ``metrics.json`` ``data``: the dataset, its sources with licences and counts per split
  (one source, or each source of a merged dataset), the held-out source and the images
  removed from training as its copies, and the leakage audit's summary of the split;
* ``label_mapping.json`` (a merged dataset) and ``leakage_audit.json`` in the run folder;
* per-subgroup scores of each stage block (``<stage>.subgroups``: source, region, view,
  hardware, as the dataset declares), from the predictions the block scored;
* leave-one-dataset-out: the held-out source (``external``) predicted by the best
  checkpoint at the validation threshold and scored like the test block, and the images
  of the internal test and external blocks written to ``scored/<stage>.csv``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.grouping import HashCache
from fracture_lit.data.leakage import audit_leakage
from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import score, score_all_subgroups
from fracture_lit.inference.split import predict_split
from fracture_lit.layout import RunLayout
from fracture_lit.results.folders import write_json
from fracture_lit.stats.splits import EXTERNAL_SPLIT, STAGES

__all__ = ["data_record", "evaluate_external", "record_stage_subgroups"]

log = logging.getLogger(__name__)

#: Leakage summary keys copied into metrics.json (the groups' file lists stay in the file).
_AUDIT_SUMMARY = ("split_counts", "max_hamming", "fine_max_hamming", "crossing", "twins",
                  "cross_source", "label_conflicts")  # fmt: skip


def data_record(datamodule: FractureDataModule, output_dir: Path) -> dict[str, Any]:
    """``metrics.json``'s ``data`` block; writes ``label_mapping.json`` and
    ``leakage_audit.json`` beside it (rank 0, after the datamodule is set up)."""
    layout = RunLayout(output_dir)
    record: dict[str, Any] = {
        "dataset": datamodule.dataset_name,
        "sources": datamodule.sources_record(),
    }
    held_out = getattr(datamodule, "held_out", None)
    if held_out is not None:
        record["held_out"] = held_out
        record["removed_from_training"] = list(getattr(datamodule, "removed", []))
    mapping = datamodule.label_mapping()
    if mapping is not None:
        write_json({"classes": datamodule.classes, "mapping": mapping}, layout.label_mapping)
        record["label_mapping"] = layout.label_mapping.name
    plan = datamodule.split_plan
    if plan.group_duplicates and plan.manifest is None:  # the grouping hashed these files
        report = audit_leakage(
            datamodule.samples,
            near_duplicates=plan.near_duplicates,
            cache=HashCache(plan.hash_cache) if plan.hash_cache else None,
            workers=datamodule.decode_workers,
        ).to_dict()
        write_json({"dataset": datamodule.dataset_name, **report}, layout.leakage_json)
        record["leakage"] = {k: report[k] for k in _AUDIT_SUMMARY if k in report}
    return record


def _gather_order(n: int, world_size: int) -> list[int]:
    """The split's image indices in the order a DDP epoch gathers their scores: rank after
    rank, rank ``r`` holding ``r, r + W, ...`` (Lightning's ``UnrepeatedDistributedSampler``)."""
    if world_size < 2:
        return list(range(n))
    return [i for rank in range(world_size) for i in range(rank, n, world_size)]


def kept_predictions(
    model: Any, datamodule: FractureDataModule, stage: str, world_size: int
) -> SplitPredictions | None:
    """The predictions a stage block scored, with the images' paths and metadata; None when
    they do not line up with the split (another order than expected: nothing is guessed)."""
    pred = getattr(model, "epoch_predictions", {}).get(stage)
    members = [s for s in datamodule.samples if s.split == stage]
    if pred is None or len(pred.labels) != len(members):
        return None
    members = [members[i] for i in _gather_order(len(members), world_size)]
    if [s.label for s in members] != [int(v) for v in pred.labels]:
        log.warning("The %s predictions do not line up with its images; no subgroups.", stage)
        return None
    return dataclasses.replace(
        pred, paths=[s.path for s in members], meta=[dict(s.meta) for s in members]
    )


def record_stage_subgroups(
    results: dict[str, Any],
    model: Any,
    datamodule: FractureDataModule,
    output_dir: Path,
    world_size: int,
) -> None:
    """Add ``subgroups`` to each stage block of ``results`` (where the dataset declares
    attributes); a held-out run also writes the internal test's images to ``scored/``."""
    attributes = tuple(datamodule.subgroup_attributes)
    n_bootstrap = int(getattr(model.hparams, "n_bootstrap", 1000))
    for stage in STAGES:
        if not isinstance(results.get(stage), dict):
            continue
        pred = kept_predictions(model, datamodule, stage, world_size)
        if pred is None:
            continue
        if stage == "test" and datamodule.has_split(EXTERNAL_SPLIT):
            pred.write_csv(RunLayout(output_dir).scored(stage))
        if attributes:
            scored = score_all_subgroups(pred, attributes, n_bootstrap=n_bootstrap)
            if scored:
                results[stage]["subgroups"] = scored


def evaluate_external(
    model: Any, datamodule: FractureDataModule, output_dir: Path
) -> dict[str, Any] | None:
    """The held-out source's block of metrics.json (None without one): the best checkpoint
    (loaded by the test before) at the threshold and temperature chosen on the training
    sources' validation split, scored like the test block, with its subgroups."""
    if not datamodule.has_split(EXTERNAL_SPLIT):
        return None
    was_training = model.training
    model.eval()
    try:
        pred = predict_split(
            model,
            datamodule,
            EXTERNAL_SPLIT,
            list(model.class_names),
            threshold=float(model.decision_threshold),
            batch_size=datamodule.eval_batch_size or datamodule.batch_size,
            temperature=float(model.temperature),
        )
    finally:
        model.train(was_training)
    n_bootstrap = int(getattr(model.hparams, "n_bootstrap", 1000))
    block = score(
        pred,
        prefix=EXTERNAL_SPLIT,
        n_bootstrap=n_bootstrap,
        threshold=0.5,
        at_threshold=True,
        metric_intervals=pred.binary,
    )
    pred.write_csv(RunLayout(output_dir).scored(EXTERNAL_SPLIT))
    scored = score_all_subgroups(pred, tuple(datamodule.subgroup_attributes), n_bootstrap)
    if scored:
        block["subgroups"] = scored
    log.info(
        "External test on the held-out source (%d images): AUROC %.3f",
        len(pred.labels),
        block["metrics"].get(f"{EXTERNAL_SPLIT}/auroc", float("nan")),
    )
    return block
