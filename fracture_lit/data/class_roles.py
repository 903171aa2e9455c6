"""Which class of a binary fracture dataset is the positive one, decided by its name.

Sorting class folders alphabetically makes ``fractured``/``intact`` put the fractured
class first, so ``probability``, the threshold, sensitivity and specificity silently
referred to *intact*. Every binary dataset is therefore ordered ``[negative, positive]`` by name (or
by ``data.positive_class``), and the names are kept here, once, for the indexers and for
matching a checkpoint's classes to a dataset's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["NEGATIVE_NAMES", "POSITIVE_NAMES", "binary_order", "binary_role", "norm_name"]

POSITIVE_NAMES = frozenset(
    {"fractured", "fracture", "fractures", "positive", "pos", "abnormal", "yes", "broken"}
)
NEGATIVE_NAMES = frozenset(
    {
        "intact",
        "normal",
        "nonfractured",
        "notfractured",
        "nofracture",
        "unfractured",
        "negative",
        "neg",
        "no",
        "healthy",
    }
)


def norm_name(name: str) -> str:
    """Case and punctuation folded: ``Not_Fractured`` == ``not fractured``."""
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def binary_role(name: str) -> str | None:
    """``"positive"``, ``"negative"`` or None for a class name nobody can judge."""
    key = norm_name(name)
    if key in NEGATIVE_NAMES:
        return "negative"
    if key in POSITIVE_NAMES:
        return "positive"
    return None


def binary_order(names: Sequence[str], positive_class: str | None = None) -> list[str] | None:
    """``[negative, positive]`` for two class names, or None when the names do not tell.

    ``positive_class`` (matched like the names) decides when given; otherwise one name must
    be recognisably positive or negative (and the other not the same role).
    """
    if len(names) != 2:
        return None
    first, second = names
    if positive_class is not None:
        wanted = norm_name(positive_class)
        for positive, negative in ((first, second), (second, first)):
            if norm_name(positive) == wanted:
                return [negative, positive]
        return None
    roles = [binary_role(first), binary_role(second)]
    if roles[0] == roles[1]:
        return None  # neither, or both, recognised: ambiguous
    if "positive" in roles:
        positive = names[roles.index("positive")]
    else:
        positive = names[1 - roles.index("negative")]
    return [n for n in names if n != positive] + [positive]
