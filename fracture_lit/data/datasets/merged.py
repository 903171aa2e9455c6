"""Several datasets trained on together: ``data=merged data.sources=[fracatlas,multiregion]``.

One binary fracture-vs-intact task (:mod:`fracture_lit.data.merging`: each source's labels
go through the mapping its module declares; Bone Break's ten fracture types are refused).
Duplicates are grouped across sources before splitting (the same bytes, or a confirmed near
copy: :mod:`fracture_lit.data.hashing`), so no copy straddles two splits, and the split is
stratified by (source, label), so every split holds each source in proportion.

``data.held_out=<source>`` (leave-one-dataset-out, ``experiment=leave_one_dataset_out``):
that source becomes the ``external`` split, tested whole after training; the others are
split into train / val / test (the internal test) as usual. Training-source images in a
duplicate group with a held-out image are removed from training (split ``excluded``,
logged with their held-out twin): training on them would be training on the test set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fracture_lit.data.base import FractureDataModule, source_record
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.merging import (
    SHARED_CLASSES,
    SOURCE_CLASS_KEY,
    SOURCE_KEY,
    MergedIndex,
    SourceSpec,
    format_mapping,
    merge_sources,
    parse_sources,
)
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.errors import ConfigError
from fracture_lit.stats.splits import EXCLUDED_SPLIT, EXTERNAL_SPLIT

__all__ = ["MergedDataModule", "index_merged"]

log = logging.getLogger(__name__)


def index_merged(
    root: str | Path, sources: Any = None, data_dir: str | Path | None = None
) -> DatasetIndex:
    """The merged index of ``sources`` (see :func:`~fracture_lit.data.merging.parse_sources`;
    a source given by name alone lives in ``data_dir``, else in ``root``)."""
    specs = parse_sources(sources, data_dir if data_dir is not None else root)
    return merge_sources(specs).index


def _source_of(sample: Sample) -> str:
    return str(sample.meta.get(SOURCE_KEY))


def _by_source_and_label(sample: Sample) -> tuple[str, int]:
    return _source_of(sample), sample.label


@register_dataset("merged")
class MergedDataModule(FractureDataModule):
    """Several registered datasets as one binary task (``data.sources``), optionally with one
    held out as the external test set (``data.held_out``)."""

    class_roles = ClassRoles.binary(negative=SHARED_CLASSES[0], positive=SHARED_CLASSES[1])
    # The instance adds "source" and its sources' attributes (the class declares none, as
    # the registry requires of a dataset without metadata of its own).
    subgroup_attributes = ()
    indexer = staticmethod(index_merged)
    manifest_columns = (SOURCE_KEY, SOURCE_CLASS_KEY)

    def __init__(
        self,
        root: str | Path,
        *,
        sources: Any = ("fracatlas", "multiregion"),
        data_dir: str | Path | None = None,
        held_out: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.specs: list[SourceSpec] = parse_sources(sources, data_dir or root)
        names = [s.name for s in self.specs]
        self.held_out = _check_held_out(held_out, names, bool(kwargs.get("group_duplicates", 1)))
        attributes = [SOURCE_KEY]
        for spec in self.specs:
            attributes += [a for a in spec.datamodule.subgroup_attributes if a not in attributes]
        self.subgroup_attributes = tuple(attributes)
        self.split_plan = replace(
            self.split_plan,
            split_args={**self.split_plan.split_args, "stratum": _by_source_and_label},
            set_aside=self._set_aside,
        )
        self.merged: MergedIndex | None = None
        self.removed: list[dict[str, str]] = []

    @classmethod
    def check_config(cls, data: Mapping[str, Any], prefix: str = "data") -> None:
        specs = parse_sources(data.get("sources"), data.get("data_dir") or data.get("root"))
        _check_held_out(
            data.get("held_out"), [s.name for s in specs], bool(data.get("group_duplicates", 1))
        )

    def build_index(self) -> DatasetIndex:
        self.merged = merge_sources(self.specs)
        log.info("Label mapping of the merged dataset:\n%s", format_mapping(self.merged.mapping))
        return self.merged.index

    def _set_aside(self, samples: list[Sample]) -> list[Sample]:
        """The held-out source is the external split; its copies among the training sources
        are excluded. Returns the pool the splitter divides into train / val / test."""
        if self.held_out is None:
            return samples
        external = [s for s in samples if _source_of(s) == self.held_out]
        twin_of = {s.group: s for s in external}
        pool: list[Sample] = []
        self.removed = []
        for sample in samples:
            if _source_of(sample) == self.held_out:
                sample.split = EXTERNAL_SPLIT
            elif sample.group in twin_of:
                sample.split = EXCLUDED_SPLIT
                twin = twin_of[sample.group].path
                self.removed.append(
                    {"path": sample.path, "source": _source_of(sample), "twin": twin}
                )
            else:
                pool.append(sample)
        if self.removed:
            shown = "; ".join(f"{r['path']} (copy of {r['twin']})" for r in self.removed[:5])
            more = f"; ... and {len(self.removed) - 5} more" if len(self.removed) > 5 else ""
            log.warning(
                "Removed %d image(s) of the training sources from training, validation and the "
                "internal test: they are copies (same bytes or a confirmed near copy) of images "
                "of the held-out source '%s', its external test set, and training on them "
                "would leak it: %s%s",
                len(self.removed),
                self.held_out,
                shown,
                more,
            )
        return pool

    # ------------------------------------------------------------------ run record
    def sources_record(self) -> list[dict[str, Any]]:
        """One entry per source, with how many of its images each split holds (and, for a
        held-out source, which role it played)."""
        records = []
        for spec in self.specs:
            members = [s for s in self.samples if _source_of(s) == spec.name]
            record = source_record(spec.name, spec.root, spec.datamodule.dataset_info, members)
            record["role"] = "external test" if spec.name == self.held_out else "training"
            records.append(record)
        return records

    def label_mapping(self) -> list[dict[str, Any]] | None:
        if self.merged is None:
            self.index  # noqa: B018 - builds (and caches) the merged index and its mapping
        assert self.merged is not None
        return [row.to_dict() for row in self.merged.mapping]


def _check_held_out(held_out: str | None, names: Sequence[str], grouped: bool) -> str | None:
    """``data.held_out``: null, or one of at least two sources, with duplicates grouped."""
    if held_out is None:
        return None
    if held_out not in names:
        raise ConfigError(
            "data.held_out", held_out, f"is not one of data.sources ({', '.join(names)})"
        )
    if len(names) < 2:
        raise ConfigError(
            "data.held_out", held_out, "leaves no source to train on", "List at least two sources."
        )
    if not grouped:
        raise ConfigError(
            "data.group_duplicates",
            False,
            "a held-out source needs its copies among the training sources found",
            "Set data.group_duplicates=true.",
        )
    return held_out
