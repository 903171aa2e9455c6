"""Several datasets as one binary fracture-vs-intact task: which sources, how their labels map.

Merging datasets silently misaligns labels when each keeps its own class order (label 1 is
"fractured" in one and "Avulsion fracture" in another). Here every source's labels go
through the mapping its registry module declares (:class:`~fracture_lit.data.class_roles.
ClassRoles`: ``binary_labels``, class name -> 0 intact / 1 fractured); a source whose classes
cannot be mapped (Bone Break's ten fracture types have no intact class) is refused with one
line naming it and why. Each image keeps its ``source`` (and its class in that source) in
``meta``: a subgroup of every report, a column of the split manifest.

``data.sources`` is a list of registry names (the root is ``<data_dir>/<download folder>``),
of ``{name, root, <indexer options>}`` entries, or a dict keyed by name::

    data.sources=[fracatlas,multiregion]
    'data.sources=[fracatlas,{name:multiregion,root:/data/mr}]'
    'data.sources={fracatlas:{root:/data/fa},bone_break:{classes:[...]}}'
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.dataset_info import DatasetLayoutError
from fracture_lit.data.folders import absolute
from fracture_lit.data.registry import dataset_class, registered_datasets
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.errors import ConfigError

__all__ = [
    "SHARED_CLASSES",
    "SOURCE_CLASS_KEY",
    "SOURCE_KEY",
    "LabelRow",
    "MergedIndex",
    "SourceSpec",
    "binary_labels_of",
    "format_mapping",
    "merge_sources",
    "parse_sources",
]

log = logging.getLogger(__name__)

#: The shared task's classes, in label order: 0 intact, 1 fractured.
SHARED_CLASSES: tuple[str, str] = ("intact", "fractured")
#: ``Sample.meta`` keys a merged dataset adds: the dataset an image comes from, and its class
#: name there.
SOURCE_KEY = "source"
SOURCE_CLASS_KEY = "source_class"
#: Keys of a ``data.sources`` entry that are not options of the source's indexer.
_ENTRY_KEYS = ("name", "root")


@dataclass(frozen=True)
class SourceSpec:
    """One entry of ``data.sources``: a registered dataset, its root and indexer options."""

    name: str
    root: Path
    options: dict[str, Any] = field(default_factory=dict)
    #: The config key it came from (``data.sources[1]``), for error messages.
    where: str = "data.sources"

    @property
    def datamodule(self) -> type[FractureDataModule]:
        return dataset_class(self.name)


def _plain(value: Any) -> Any:
    """A ListConfig / DictConfig as plain Python (imported lazily: data must not need it)."""
    if hasattr(value, "_metadata"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _entries(sources: Any, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    sources = _plain(sources)
    if isinstance(sources, Mapping):
        return [
            (f"{prefix}.{name}", {"name": name, **(_plain(options) or {})})
            for name, options in sources.items()
        ]
    if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
        raise ConfigError(
            prefix,
            sources,
            "must list the datasets to merge",
            "e.g. data.sources=[fracatlas,multiregion].",
        )
    out = []
    for i, entry in enumerate(sources):
        where = f"{prefix}[{i}]"
        if isinstance(entry, str):
            out.append((where, {"name": entry}))
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            out.append((where, dict(entry)))
        else:
            raise ConfigError(where, entry, "must be a dataset name or {name: ..., root: ...}")
    return out


def parse_sources(
    sources: Any, data_dir: str | Path | None, prefix: str = "data.sources"
) -> list[SourceSpec]:
    """The checked entries of ``data.sources`` (nothing is indexed yet).

    Refuses an unknown dataset (naming the known ones), a dataset listed twice, an option
    its indexer does not take, a source without a root and no ``data_dir`` to find it in,
    and a source whose classes cannot be mapped onto fractured / intact.
    """
    specs: list[SourceSpec] = []
    known = [n for n in registered_datasets() if n != "merged"]
    for where, entry in _entries(sources, prefix):
        try:
            cls = dataset_class(entry["name"])
        except KeyError:
            raise ConfigError(
                f"{where}", entry["name"], "is not a dataset", f"Known: {', '.join(known)}."
            ) from None
        name = cls.dataset_name
        if name == "merged":
            raise ConfigError(where, name, "a merged dataset cannot be one of its own sources")
        if any(s.name == name for s in specs):
            raise ConfigError(where, name, "is listed twice", "List each dataset once.")
        options = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
        _check_options(cls, options, where)
        root = entry.get("root")
        if root is None:
            if cls.dataset_info is None or data_dir is None:
                raise ConfigError(
                    f"{where}.root",
                    None,
                    f"dataset '{name}' has no default folder",
                    f"Give it one: {{name: {name}, root: /path/to/it}}.",
                )
            root = Path(data_dir) / cls.dataset_info.default_dir
        spec = SourceSpec(name, absolute(root), options, where)
        binary_labels_of(spec, None)  # refuses what can never be binary, before any indexing
        specs.append(spec)
    return specs


def _check_options(cls: type[FractureDataModule], options: Mapping[str, Any], where: str) -> None:
    if not options:
        return
    accepted = [p for p in inspect.signature(cls.indexer).parameters][1:]  # after root
    for key in options:
        if key not in accepted:
            takes = ", ".join(accepted) or "no options"
            raise ConfigError(
                f"{where}.{key}",
                options[key],
                f"is not an option of '{cls.dataset_name}'",
                f"It takes: name, root, {takes}.",
            )
    cls.check_config(options, where)


def binary_labels_of(spec: SourceSpec, classes: Sequence[str] | None) -> dict[str, int]:
    """``spec``'s class name -> 0 (intact) / 1 (fractured), as its dataset module declares.

    ``classes=None`` checks what the declaration alone can tell (before indexing). Raises
    :class:`~fracture_lit.errors.ConfigError` naming the source and why it cannot join.
    """
    cls = spec.datamodule
    roles = cls.class_roles
    if classes is None:
        if roles.binary_labels is None and roles.task == "multiclass":
            raise ConfigError(
                spec.where,
                spec.name,
                f"its classes cannot be mapped onto {'/'.join(SHARED_CLASSES)} (every class "
                "is a fracture type, none is intact: its ClassRoles declares no binary_labels)",
                "Drop it from data.sources, or train on it alone (data=" + spec.name + ").",
            )
        return {}
    mapping = roles.binary_map(list(classes))
    if mapping is None or set(mapping.values()) != {0, 1}:
        raise ConfigError(
            spec.where,
            spec.name,
            f"its classes {list(classes)} cannot be mapped onto {'/'.join(SHARED_CLASSES)}",
            "Keep two classes (e.g. classes=[normal,fractured], positive_class=fractured).",
        )
    return mapping


@dataclass(frozen=True)
class LabelRow:
    """One line of the label mapping: a source's class and the shared class it becomes."""

    source: str
    source_class: str
    source_label: int
    shared_class: str
    shared_label: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MergedIndex:
    """The merged index, with the label mapping and the sources it was built from."""

    index: DatasetIndex
    mapping: list[LabelRow]
    sources: list[SourceSpec]


def _index_source(spec: SourceSpec) -> DatasetIndex:
    cls = spec.datamodule
    try:
        index = cls.indexer(spec.root, **spec.options)
    except DatasetLayoutError as error:
        fix = f" ({error.info.download_command})" if error.info and error.info.downloadable else ""
        raise ConfigError(
            f"{spec.where}.root",
            str(spec.root),
            f"dataset '{spec.name}': {error.problem}",
            f"Point it at the dataset's folder{fix}.",
        ) from error
    cls.class_roles.check(index.classes, spec.name)
    return index


def merge_sources(specs: Sequence[SourceSpec]) -> MergedIndex:
    """Index every source and relabel its samples onto :data:`SHARED_CLASSES`.

    Samples keep their path, given split and metadata, plus ``meta["source"]`` and
    ``meta["source_class"]``. A file indexed by two sources (overlapping roots) is refused.
    """
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    rows: list[LabelRow] = []
    owner: dict[str, str] = {}
    for spec in specs:
        index = _index_source(spec)
        mapping = binary_labels_of(spec, index.classes)
        counts = Counter(s.label for s in index.samples)
        for label, name in enumerate(index.classes):
            shared = mapping[name]
            rows.append(
                LabelRow(
                    spec.name, name, label, SHARED_CLASSES[shared], shared, counts.get(label, 0)
                )
            )
        for sample in index.samples:
            if sample.path in owner:
                raise ConfigError(
                    f"{spec.where}.root",
                    str(spec.root),
                    f"{sample.path} is also indexed by source '{owner[sample.path]}'",
                    "Give the sources folders that do not overlap.",
                )
            owner[sample.path] = spec.name
            source_class = index.classes[sample.label]
            sample.label = mapping[source_class]
            sample.meta = {**sample.meta, SOURCE_KEY: spec.name, SOURCE_CLASS_KEY: source_class}
            samples.append(sample)
        skipped += [(path, f"{spec.name}: {why}") for path, why in index.skipped]
    samples.sort(key=lambda s: s.path)
    merged = DatasetIndex(samples=samples, classes=list(SHARED_CLASSES), skipped=sorted(skipped))
    return MergedIndex(merged, rows, list(specs))


def format_mapping(rows: Sequence[LabelRow]) -> str:
    """The label mapping as a plain-text table (one INFO log record)."""
    header = ("source", "class", "label", "->", "shared class", "images")
    cells = [
        (
            r.source,
            r.source_class,
            str(r.source_label),
            "->",
            f"{r.shared_label} {r.shared_class}",
            f"{r.n:,}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in (header, *cells)) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *cells)
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
