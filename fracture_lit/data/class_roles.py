"""Which class is which: the roles a dataset declares, and the positive class found by name.

Sorting class folders alphabetically makes ``fractured``/``intact`` put the fractured
class first, so ``probability``, the threshold, sensitivity and specificity silently
referred to *intact*. Every binary dataset is therefore ordered ``[negative, positive]`` by name (or
by ``data.positive_class``), and the names are kept here, once, for the indexers and for
matching a checkpoint's classes to a dataset's.

Each registered dataset also declares its :class:`ClassRoles`: binary or multiclass, its
positive class, and how its labels map onto the shared binary task (0 intact, 1 fractured)
that training on several datasets at once needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fracture_lit.errors import ConfigError

__all__ = [
    "NEGATIVE_NAMES",
    "POSITIVE_NAMES",
    "ClassRoles",
    "binary_order",
    "binary_role",
    "check_class_list",
    "check_positive_class",
    "norm_name",
]

#: ``ClassRoles.task``: label 1 is fractured / several classes / the folders decide.
TASKS = ("binary", "multiclass", "from_folders")

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


@dataclass(frozen=True)
class ClassRoles:
    """What a dataset's labels mean.

    ``task`` is ``binary`` (two classes, label 1 = ``positive``, the fractured one),
    ``multiclass``, or ``from_folders`` (a generic folder dataset: two class folders are
    binary, ordered by name or ``data.positive_class``; more are multiclass).
    ``binary_labels`` maps each class name to 0 (intact) or 1 (fractured): how the dataset
    joins the shared binary task when several are trained on together; ``None`` where the
    classes cannot be mapped (e.g. ten fracture subtypes and no intact class).
    """

    task: str
    positive: str | None = None
    binary_labels: Mapping[str, int] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"ClassRoles.task={self.task!r}: use one of {', '.join(TASKS)}")
        labels = self.binary_labels
        if labels is not None and not set(labels.values()) <= {0, 1}:
            raise ValueError(f"ClassRoles.binary_labels={dict(labels)}: values are 0 or 1")
        if self.task == "binary" and (
            labels is None or len(labels) != 2 or labels.get(self.positive or "") != 1
        ):
            raise ValueError(
                "A binary dataset declares ClassRoles.binary(negative=..., positive=...)"
            )

    @classmethod
    def binary(cls, negative: str, positive: str) -> ClassRoles:
        """Two classes, ``[negative, positive]`` in label order."""
        return cls("binary", positive, {negative: 0, positive: 1})

    @classmethod
    def multiclass(cls, binary_labels: Mapping[str, int] | None = None) -> ClassRoles:
        """Several classes; ``binary_labels`` when each can be called intact or fractured."""
        return cls("multiclass", None, binary_labels)

    @classmethod
    def from_folders(cls) -> ClassRoles:
        """The class folders decide (a generic folder-per-class dataset)."""
        return cls("from_folders")

    def binary_map(self, classes: Sequence[str]) -> dict[str, int] | None:
        """Class name -> 0 (intact) / 1 (fractured) for a run's ``classes``, or None."""
        if self.binary_labels is not None:
            return {name: int(self.binary_labels[name]) for name in classes}
        if self.task == "from_folders" and len(classes) == 2:
            return {classes[0]: 0, classes[1]: 1}  # the indexer ordered them [negative, positive]
        return None

    def check(self, classes: Sequence[str], dataset: str) -> None:
        """The classes an indexer returned agree with what the dataset declares."""
        if self.task == "binary" and list(classes) != list(self.binary_labels or ()):
            raise ValueError(
                f"Dataset {dataset!r} declares binary classes {list(self.binary_labels or ())} "
                f"(negative, positive) but its indexer returned {list(classes)}."
            )
        if self.binary_labels is not None:
            unmapped = [name for name in classes if name not in self.binary_labels]
            if unmapped:
                raise ValueError(
                    f"Dataset {dataset!r}: class(es) {unmapped} are missing from its "
                    f"ClassRoles.binary_labels {dict(self.binary_labels)}."
                )


def check_class_list(data: Mapping[str, Any], prefix: str = "data") -> None:
    """``<prefix>.classes``: null, or at least two different, non-empty class names."""
    classes = data.get("classes")
    if classes is None:
        return
    names = (
        list(classes) if isinstance(classes, Sequence) and not isinstance(classes, str) else None
    )
    if (
        names is None
        or len(names) < 2
        or not all(isinstance(n, str) and n.strip() for n in names)
        or len({str(n).casefold() for n in names}) != len(names)
    ):
        raise ConfigError(
            f"{prefix}.classes",
            classes,
            "must be a list of at least two different class (folder) names, or null",
            "e.g. data.classes=[intact,fractured].",
        )


def check_positive_class(data: Mapping[str, Any], prefix: str = "data") -> None:
    """``<prefix>.positive_class``: null, or a class name (one of ``classes`` when listed)."""
    positive, classes = data.get("positive_class"), data.get("classes")
    if positive is None:
        return
    key = f"{prefix}.positive_class"
    if not isinstance(positive, str) or not positive.strip():
        raise ConfigError(key, positive, "must be a class name, or null")
    if classes is not None and positive.casefold() not in {str(c).casefold() for c in classes}:
        raise ConfigError(key, positive, f"is not one of data.classes={list(classes)}")
