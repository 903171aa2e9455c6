"""The bad-file policy: unreadable images are skipped and listed, up to a limit.

One undecodable JPEG in ten thousand should not stop a run, but a folder of HTML error
pages saved as ``.jpg`` must: past ``data.max_bad_fraction`` the run stops with the list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fracture_lit.data.samples import Sample
from fracture_lit.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["TooManyBadImagesError", "check_bad_images"]


class TooManyBadImagesError(UserError, RuntimeError):
    """More files than ``data.max_bad_fraction`` could not be decoded."""


def check_bad_images(
    samples: Sequence[Sample], bad: set[int], max_bad_fraction: float, root: Path
) -> None:
    """Note each unreadable sample (by position in ``samples``); raise past the limit."""
    if not bad:
        return
    bad_paths = [samples[i].path for i in sorted(bad)]
    for i in bad:
        samples[i].notes = "; ".join(n for n in (samples[i].notes, "unreadable: skipped") if n)
    listing = "\n  ".join(bad_paths[:50])
    share = len(bad) / max(1, len(samples))
    if share > max_bad_fraction:
        raise TooManyBadImagesError(
            f"{len(bad)} of {len(samples)} files ({share:.1%}) under {root} could not "
            f"be decoded, more than data.max_bad_fraction={max_bad_fraction}:\n  "
            f"{listing}\nRemove or re-download them, or raise data.max_bad_fraction."
        )
    log.warning("Skipping %d unreadable files:\n  %s", len(bad), listing)
