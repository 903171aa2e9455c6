"""The image attributes a run is scored by, and how a prediction set splits by them.

No torch: the reports import it to explain their tables.
"""

from __future__ import annotations

from collections import defaultdict

from fracture_lit.evaluation.predictions import SplitPredictions

__all__ = ["SUBGROUP_ATTRIBUTES", "split_by"]

#: Image attributes a run is scored by, where the data records them (FracAtlas has region,
#: view and hardware; a merged dataset's images their source). The default where no
#: dataset names its own (an evaluation).
SUBGROUP_ATTRIBUTES: tuple[str, ...] = ("source", "region", "view", "hardware")


def split_by(pred: SplitPredictions, key: str) -> dict[str, SplitPredictions]:
    """``pred`` per value of ``meta[key]`` (FracAtlas regions: hand, leg, hip, ...), sorted.

    A flag (``hardware``) splits into ``yes`` / ``no``; images without the attribute are
    left out.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i, meta in enumerate(pred.meta):
        value = meta.get(key)
        if isinstance(value, bool):
            members["yes" if value else "no"].append(i)
        elif value:
            members[str(value)].append(i)
    return {
        value: SplitPredictions(
            split=pred.split,
            class_names=pred.class_names,
            paths=[pred.paths[i] for i in rows],
            labels=pred.labels[rows],
            probs=pred.probs[rows],
            threshold=pred.threshold,
            meta=[pred.meta[i] for i in rows],
        )
        for value, rows in sorted(members.items())
    }
