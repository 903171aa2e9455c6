"""Seeded, label-stratified, group-aware train/val/test splits (and k-fold).

Why not ``sklearn.model_selection.StratifiedGroupKFold``: it only makes k equal folds, so a
15 % test set becomes "1/7th"; scikit-learn is not a declared dependency of this project; and
its assignment can change between releases, while a split must stay reproducible from
``(samples, seed)`` alone for manifests and reruns to agree. The splitter here is a greedy
bin-packer in the same spirit:

1. groups (``sample.group``; an empty group means "alone") are shuffled with the seed and
   then ordered largest first, so the big blocks are placed while there is room;
2. each group goes to the split whose per-label count is furthest below its target, i.e.
   the one whose squared error against ``fraction * label_total`` grows least.

A group is placed whole, so a group never straddles two splits this module makes.
Fractions are fractions of the pool being split: all samples when making our own split,
the dataset's given train part when carving val/test out of it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from fracture_lit.data.samples import Sample
from fracture_lit.stats.splits import SPLITS

__all__ = ["SplitReport", "assign_splits", "greedy_group_split", "split_summary"]

log = logging.getLogger(__name__)


@dataclass
class SplitReport:
    """What :func:`assign_splits` decided that a run should tell the user.

    ``crossing_groups`` maps a pair of *given* splits (e.g. ``"train/test"``) to the groups
    with members in both: the dataset's own split leaks there, and we kept it because
    ``use_given_split`` asked us to. ``carved`` lists the splits we made out of given train.
    """

    mode: str
    carved: list[str] = field(default_factory=list)
    crossing_groups: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, dict[str, object]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "carved": list(self.carved),
            "crossing_groups": {k: list(v) for k, v in self.crossing_groups.items()},
            "warnings": list(self.warnings),
            "summary": self.summary,
        }


def _group_key(sample: Sample) -> str:
    return sample.group or f"path:{sample.path}"


#: What a split is stratified by: a sample's label, unless a dataset asks for more (a merged
#: dataset stratifies by (source, label), so every split holds each source in proportion).
Stratum = Callable[[Sample], Hashable]


def _by_label(sample: Sample) -> Hashable:
    return sample.label


def greedy_group_split(
    samples: Sequence[Sample],
    fractions: dict[str, float],
    seed: int,
    stratum: Stratum | None = None,
) -> dict[str, str]:
    """Assign every group of ``samples`` to one bin of ``fractions``; returns group -> bin.

    Bins with fraction 0 get nothing. Deterministic for a given seed and input order; the
    input order matters only through ties, and indexers sort by path. ``stratum`` (default:
    the label) names what each bin should hold in proportion.
    """
    bins = [b for b, f in fractions.items() if f > 0]
    if not bins:
        raise ValueError(f"no bin has a positive fraction: {fractions}")
    total_f = sum(fractions[b] for b in bins)
    key = stratum or _by_label
    values = {key(s) for s in samples}
    labels = sorted(values) if stratum is None else sorted(values, key=repr)
    col = {lab: i for i, lab in enumerate(labels)}
    counts: dict[str, list[int]] = {}
    for s in samples:
        counts.setdefault(_group_key(s), [0] * len(labels))[col[key(s)]] += 1
    label_totals = [sum(c[i] for c in counts.values()) for i in range(len(labels))]
    target = {b: [fractions[b] / total_f * t for t in label_totals] for b in bins}
    current = {b: [0.0] * len(labels) for b in bins}

    order = sorted(counts)  # sorted first: dict order must not leak into the result
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sum(counts[g]))  # stable: ties keep the shuffled order

    assignment: dict[str, str] = {}
    for g in order:
        c = counts[g]

        def cost(b: str, c: list[int] = c) -> tuple[float, float]:
            cur, tgt = current[b], target[b]
            added = sum(ci * (2 * (cur[i] - tgt[i]) + ci) for i, ci in enumerate(c) if ci)
            room = sum(tgt) - sum(cur)  # tie-break: the emptiest bin relative to its target
            return added, -room

        best = min(bins, key=cost)
        assignment[g] = best
        for i, ci in enumerate(c):
            current[best][i] += ci
    return assignment


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must leave room for train, got "
            f"{val_fraction} + {test_fraction}"
        )


def _crossing_groups(samples: Sequence[Sample], attr: str) -> dict[str, list[str]]:
    """Groups with members in more than one value of ``attr`` ('split' or 'given_split')."""
    where: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        value = getattr(s, attr)
        if value is not None and s.group:
            where[s.group].add(value)
    out: dict[str, list[str]] = {}
    for a_i, a in enumerate(SPLITS):
        for b in SPLITS[a_i + 1 :]:
            hits = sorted(g for g, splits in where.items() if a in splits and b in splits)
            if hits:
                out[f"{a}/{b}"] = hits
    return out


def assign_splits(
    samples: Sequence[Sample],
    *,
    use_given_split: bool,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    n_folds: int | None = None,
    fold: int | None = None,
    stratum: Stratum | None = None,
) -> SplitReport:
    """Fill ``sample.split`` with train/val/test; returns a :class:`SplitReport`.

    * ``use_given_split`` and the dataset has given splits: given test and val are kept; a
      missing val (and a missing test, when ``test_fraction > 0``) is carved out of given
      train, group-aware. Groups that cross the given splits are reported (and logged) but
      left where the dataset put them. Samples without a given split join the train pool.
    * otherwise (or when no sample has a given split): our own split of all samples.
    * ``n_folds``/``fold``: test is set aside first (given, or ``test_fraction`` of the
      pool), the rest is cut into ``n_folds`` stratified, group-aware folds; fold ``fold``
      is val, the others train. Given val, if any, joins the folds. The folds do not depend
      on ``fold``, so looping ``fold`` over ``range(n_folds)`` covers every sample once.

    Call :func:`fracture_lit.data.grouping.assign_groups` first; without groups every
    sample is its own group and copies of one image can land on both sides. ``stratum``
    (default: the label) is what every split holds in proportion.
    """
    _check_fractions(val_fraction, test_fraction)
    kfold = n_folds is not None or fold is not None
    if kfold:
        if n_folds is None or fold is None:
            raise ValueError("n_folds and fold must be given together")
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds}")
        if not 0 <= fold < n_folds:
            raise ValueError(f"fold must be in [0, {n_folds}), got {fold}")
    samples = list(samples)
    if not samples:
        return SplitReport(mode="empty")
    for s in samples:
        if s.given_split not in (None, *SPLITS):
            raise ValueError(f"{s.path}: given_split {s.given_split!r} is not one of {SPLITS}")

    has_given = any(s.given_split is not None for s in samples)
    report = SplitReport(mode="given" if use_given_split and has_given else "own")
    if use_given_split and not has_given:
        report.warnings.append("use_given_split: the dataset has no given split; made our own")

    if report.mode == "given":
        report.crossing_groups = _crossing_groups(samples, "given_split")
        for pair, groups in report.crossing_groups.items():
            n = sum(1 for s in samples if s.group in set(groups))
            msg = (
                f"{len(groups)} group(s) ({n} images) cross the dataset's given {pair} split; "
                "kept as given (use_given_split=true), so scores on it are optimistic"
            )
            report.warnings.append(msg)
        has_test = any(s.given_split == "test" for s in samples)
        has_val = any(s.given_split == "val" for s in samples)
        fixed = {s.path: s.given_split for s in samples if s.given_split == "test"}
        if not kfold and has_val:
            fixed.update({s.path: "val" for s in samples if s.given_split == "val"})
        pool = [s for s in samples if s.path not in fixed]
        carve_test = test_fraction if not has_test else 0.0
        carve_val = 0.0 if (kfold or has_val) else val_fraction
    else:
        fixed = {}
        pool = samples
        carve_test, carve_val = test_fraction, (0.0 if kfold else val_fraction)

    for s in samples:
        s.split = fixed.get(s.path)

    if carve_test > 0:
        report.carved.append("test")
    if carve_val > 0:
        report.carved.append("val")
    if kfold:
        report.carved.append(f"fold {fold}/{n_folds} as val")

    if pool:
        if kfold:
            rest = pool
            if carve_test > 0:
                first = greedy_group_split(
                    pool, {"rest": 1 - carve_test, "test": carve_test}, seed, stratum
                )
                for s in pool:
                    if first[_group_key(s)] == "test":
                        s.split = "test"
                rest = [s for s in pool if s.split is None]
            folds = greedy_group_split(
                rest,
                {f"fold{k}": 1.0 / n_folds for k in range(n_folds)},
                seed + 1,  # type: ignore[operator]
                stratum,
            )
            for s in rest:
                s.split = "val" if folds[_group_key(s)] == f"fold{fold}" else "train"
        else:
            fractions = {"train": 1 - carve_val - carve_test, "val": carve_val, "test": carve_test}
            chosen = greedy_group_split(pool, fractions, seed, stratum)
            for s in pool:
                s.split = chosen[_group_key(s)]

    summary = split_summary(samples)
    report.summary = summary
    for split in SPLITS:
        wanted = (split == "val" and (carve_val > 0 or kfold)) or (
            split == "test" and carve_test > 0
        )
        if wanted and summary.get(split, {}).get("n", 0) == 0:
            report.warnings.append(f"the {split} split is empty (pool too small?)")
    for msg in report.warnings:
        log.warning(msg)
    return report


def split_summary(samples: Sequence[Sample]) -> dict[str, dict[str, object]]:
    """Counts per split: ``{split: {"n": int, "labels": {label: int}, "groups": int}}``.

    Splits appear in train/val/test order; samples without a split are under ``"none"``.
    """
    by_split: dict[str, Counter[int]] = defaultdict(Counter)
    groups: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        key = s.split or "none"
        by_split[key][s.label] += 1
        groups[key].add(_group_key(s))
    order = [k for k in (*SPLITS, "none") if k in by_split]
    order += sorted(k for k in by_split if k not in order)
    return {
        k: {
            "n": sum(by_split[k].values()),
            "labels": dict(sorted(by_split[k].items())),
            "groups": len(groups[k]),
        }
        for k in order
    }
