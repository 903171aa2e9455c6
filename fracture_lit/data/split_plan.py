"""From a dataset's index to the split a run uses: subset -> groups -> splits (or a manifest).

Filtering comes first, so the split is made of the kept images only; grouping next, so
byte-identical files, near-duplicates and renamed copies never straddle splits; a given
manifest replaces both grouping and splitting, so a run can reuse another's split exactly.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_lit.data.grouping import HashCache, assign_groups
from fracture_lit.data.manifest import apply_manifest, read_manifest
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.data.splits import assign_splits

log = logging.getLogger(__name__)

__all__ = ["SplitPlan", "keep_subset", "read_subset"]


def read_subset(path: Path, root: Path) -> set[str]:
    """Resolved absolute paths from a CSV with a ``path`` column or a one-per-line list
    (relative entries are relative to the dataset root; blank and ``#`` lines skipped)."""
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise ValueError(f"data.subset_file={path} has no 'path' column.")
            entries = [row["path"] for row in reader]
        else:
            entries = [line.strip() for line in handle]
    return {str((root / e).resolve()) for e in entries if e.strip() and not e.startswith("#")}


def keep_subset(samples: list[Sample], subset_file: Path, root: Path) -> list[Sample]:
    """Keep the images ``subset_file`` lists (e.g. those a stage-1 detector passed).

    An unknown path is an error: a silently ignored typo or a list made from another copy
    of the dataset would change the experiment without a trace.
    """
    wanted = read_subset(subset_file, root)
    known = {str(Path(s.path).resolve()) for s in samples}
    unknown = sorted(wanted - known)
    if unknown:
        shown = "\n  ".join(unknown[:10])
        more = f"\n  ... and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ValueError(
            f"data.subset_file={subset_file} lists {len(unknown)} image(s) that "
            f"{root} does not have:\n  {shown}{more}"
        )
    kept = [s for s in samples if str(Path(s.path).resolve()) in wanted]
    log.info(
        "data.subset_file keeps %d of %d images (%d dropped).",
        len(kept),
        len(samples),
        len(samples) - len(kept),
    )
    return kept


@dataclass(frozen=True)
class SplitPlan:
    """How a datamodule turns its index into split samples (its ``data.*`` split keys)."""

    root: Path
    split_args: dict[str, Any]
    group_duplicates: bool = True
    near_duplicates: bool = True
    hash_cache: Path | None = None
    manifest: Path | None = None
    subset_file: Path | None = None
    #: After grouping, before splitting: sets some samples' split itself (a held-out
    #: source) and returns the pool left to split.
    set_aside: Callable[[list[Sample]], list[Sample]] | None = None

    def apply(self, index: DatasetIndex) -> list[Sample]:
        """The index's samples (copied list, same objects) with ``group`` and ``split`` set."""
        samples = list(index.samples)
        if self.subset_file is not None:
            samples = keep_subset(samples, self.subset_file, self.root)
        if index.skipped:
            log.warning(
                "Skipped %d non-image files: %s",
                len(index.skipped),
                "; ".join(f"{p} ({why})" for p, why in index.skipped[:10]),
            )
        if self.manifest is not None:
            apply_manifest(samples, read_manifest(self.manifest))
            return samples
        if self.group_duplicates:
            hashes = HashCache(self.hash_cache) if self.hash_cache is not None else None
            assign_groups(samples, near_duplicates=self.near_duplicates, cache=hashes)
        else:
            for sample in samples:
                sample.group = sample.path
        pool = self.set_aside(samples) if self.set_aside is not None else samples
        assign_splits(pool, **self.split_args)
        return samples
