"""Split manifests: a CSV that pins which file went to which split, so a result can be
reproduced (or a split shared) without trusting that the splitter, the grouping thresholds
or the file listing are still the same.

Columns: ``path, label, class, split, given_split, group, notes, meta`` (``meta`` as JSON;
``class`` only when class names are passed). Paths are absolute unless ``root`` is given,
in which case they are written relative to it: a manifest written with ``root`` can be
applied to the same dataset unpacked somewhere else (``read_manifest(..., root=new)``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fracture_lit.data.samples import Sample
from fracture_lit.errors import UserError

__all__ = ["ManifestMismatchError", "apply_manifest", "read_manifest", "write_manifest"]

BASE_COLUMNS = ["path", "label", "class", "split", "given_split", "group", "notes", "meta"]


class ManifestMismatchError(UserError, ValueError):
    """The files on disk and the files in the manifest differ (or their labels do).

    Reproducing a split on a different set of files would silently change the experiment,
    so it is an error, with the differing files listed.
    """

    def __init__(
        self,
        missing_on_disk: list[str],
        missing_in_manifest: list[str],
        label_changes: list[str],
        limit: int = 10,
    ) -> None:
        self.missing_on_disk = missing_on_disk
        self.missing_in_manifest = missing_in_manifest
        self.label_changes = label_changes
        parts = ["The dataset does not match the split manifest."]
        for title, items in (
            ("in the manifest but not among the indexed files", missing_on_disk),
            ("indexed but not in the manifest", missing_in_manifest),
            ("with a different label than in the manifest", label_changes),
        ):
            if items:
                shown = "\n".join(f"    {p}" for p in items[:limit])
                more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
                parts.append(f"  {len(items)} file(s) {title}:\n{shown}{more}")
        parts.append(
            "  Re-index the same dataset version, pass root= if it moved, or drop the "
            "manifest to make a fresh split."
        )
        super().__init__("\n".join(parts))


def _key(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def write_manifest(
    samples: Sequence[Sample],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    meta_columns: Sequence[str] = (),
) -> Path:
    """Write ``samples`` as a CSV manifest, sorted by path; returns the file written.

    ``classes`` adds a human-readable ``class`` column; ``root`` makes paths relative to it;
    ``meta_columns`` are ``meta`` keys also written as columns of their own (a merged
    dataset's ``source`` and ``source_class``: readable without parsing JSON).
    Written to a temporary file and renamed, so a crashed run never leaves half a manifest.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in BASE_COLUMNS if c != "class" or classes is not None]
    columns[columns.index("group") : columns.index("group")] = list(meta_columns)
    base = os.path.abspath(root) if root is not None else None
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for s in sorted(samples, key=lambda s: s.path):
            p = os.path.relpath(os.path.abspath(s.path), base) if base else s.path
            row = {
                "path": Path(p).as_posix() if base else p,
                "label": s.label,
                "split": s.split or "",
                "given_split": s.given_split or "",
                "group": s.group,
                "notes": s.notes,
                "meta": json.dumps(s.meta, sort_keys=True, default=str) if s.meta else "",
            }
            if classes is not None:
                row["class"] = classes[s.label] if 0 <= s.label < len(classes) else ""
            row.update({key: s.meta.get(key, "") for key in meta_columns})
            writer.writerow(row)
    os.replace(tmp, out)
    return out


def read_manifest(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> list[Sample]:
    """Read a manifest back into samples (relative paths are joined to ``root``)."""
    samples: list[Sample] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "split"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a split manifest (missing columns {sorted(missing)})")
        for row in reader:
            p = row["path"]
            if root is not None and not os.path.isabs(p):
                p = os.path.join(os.path.abspath(root), *p.split("/"))
            samples.append(
                Sample(
                    path=p,
                    label=int(row["label"]),
                    given_split=row.get("given_split") or None,
                    split=row.get("split") or None,
                    group=row.get("group") or "",
                    meta=json.loads(row["meta"]) if row.get("meta") else {},
                    notes=row.get("notes") or "",
                )
            )
    return samples


def apply_manifest(samples: Sequence[Sample], manifest_samples: Sequence[Sample]) -> None:
    """Copy ``split`` and ``group`` from the manifest onto ``samples``, matching by path.

    Raises :class:`ManifestMismatchError` listing the files missing on either side (and
    files whose label changed); nothing is modified in that case.
    """
    by_path = {_key(m.path): m for m in manifest_samples}
    ours = {_key(s.path) for s in samples}
    missing_on_disk = sorted(m.path for k, m in by_path.items() if k not in ours)
    missing_in_manifest = sorted(s.path for s in samples if _key(s.path) not in by_path)
    label_changes = sorted(
        f"{s.path} (manifest {by_path[_key(s.path)].label}, now {s.label})"
        for s in samples
        if _key(s.path) in by_path and by_path[_key(s.path)].label != s.label
    )
    if missing_on_disk or missing_in_manifest or label_changes:
        raise ManifestMismatchError(missing_on_disk, missing_in_manifest, label_changes)
    for s in samples:
        m = by_path[_key(s.path)]
        s.split = m.split
        s.group = m.group
