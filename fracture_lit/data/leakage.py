"""Audit a split for train/test leakage: the same image (or a near copy) on both sides.

A model scored on images it trained on looks better than it is. In the Bone Fracture
Multi-Region release 491 of 506 given test images are byte-identical to a training image;
accuracy on that split measures memory, not generalisation. :func:`audit_leakage` measures
this for any split (``sample.split``, else the dataset's ``given_split``) at three levels:

* ``exact``: identical bytes (sha1);
* ``near``: perceptual hash (64-bit phash within ``max_hamming`` bits, confirmed by the
  256-bit one: :mod:`fracture_lit.data.hashing`), *beyond* exact copies: files with
  identical bytes are one node, and a near group needs two different files; it crosses a
  split boundary only if two *different* files sit on the two sides;
* ``name``: name variants of one source with the same label (see
  :func:`fracture_lit.data.grouping.name_key`), e.g. Roboflow augmentations.

and reports, for test and val, the share of images with a twin in train at each level. When
the samples come from several datasets (``meta["source"]``, a merged dataset), it also
counts, per pair of sources, the images of one that also appear in the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from fracture_lit.data.grouping import (
    FINE_MAX_HAMMING,
    NEAR_MAX_HAMMING,
    HashCache,
    UnionFind,
    compute_hashes,
    confirmed_near_pairs,
    name_key,
)
from fracture_lit.data.samples import Sample

__all__ = ["DuplicateGroup", "LeakageReport", "audit_leakage"]

SPLIT_PAIRS = (("train", "test"), ("train", "val"), ("val", "test"))
KINDS = ("exact", "near", "name")


@dataclass
class DuplicateGroup:
    """Files that are copies of each other at one level (``kind``), with where they sit."""

    kind: str
    paths: list[str]
    splits: list[str]
    labels: list[int]
    # For near groups: index of each file's byte-identical node (files sharing it are exact).
    nodes: list[int] = field(default_factory=list)

    @property
    def split_set(self) -> list[str]:
        return sorted(set(self.splits))

    @property
    def mixed_labels(self) -> bool:
        return len(set(self.labels)) > 1

    def crosses(self, a: str, b: str) -> bool:
        """True when a file in ``a`` and a *different* copy in ``b`` exist.

        For near groups "different" means different bytes, so an exact copy across the
        boundary is not counted twice.
        """
        if self.kind != "near" or not self.nodes:
            return a in self.splits and b in self.splits
        in_a = {n for n, s in zip(self.nodes, self.splits, strict=True) if s == a}
        in_b = {n for n, s in zip(self.nodes, self.splits, strict=True) if s == b}
        return bool(in_a and in_b) and not (len(in_a) == 1 and in_a == in_b)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "files": [
                {"path": p, "split": s, "label": lab}
                for p, s, lab in zip(self.paths, self.splits, self.labels, strict=True)
            ],
        }


@dataclass
class LeakageReport:
    """Duplicate groups per level, how many cross each split pair, and twin shares.

    ``crossing[kind]["train/test"]`` counts groups of ``kind`` with members on both sides;
    ``crossing[kind]["within"]`` those confined to one split. ``twins[split]`` gives, for
    test and val, how many images have a train twin: ``exact``, ``visual`` (exact or near,
    transitively) and ``any`` (also name variants).
    """

    n_images: int
    split_counts: dict[str, int]
    max_hamming: int
    exact_groups: list[DuplicateGroup] = field(default_factory=list)
    near_groups: list[DuplicateGroup] = field(default_factory=list)
    name_groups: list[DuplicateGroup] = field(default_factory=list)
    crossing: dict[str, dict[str, int]] = field(default_factory=dict)
    twins: dict[str, dict[str, int]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: ``"A/B"`` -> images of source A with a twin in source B: ``{"of", "images",
    #: "exact", "near"}`` (``near``: a near twin in B and no byte-identical one).
    cross_source: dict[str, dict[str, int]] = field(default_factory=dict)
    fine_max_hamming: int | None = FINE_MAX_HAMMING

    def groups(self, kind: str) -> list[DuplicateGroup]:
        return {"exact": self.exact_groups, "near": self.near_groups, "name": self.name_groups}[
            kind
        ]

    def crossing_groups(self, kind: str, a: str, b: str) -> list[DuplicateGroup]:
        return [g for g in self.groups(kind) if g.crosses(a, b)]

    def twin_share(self, split: str = "test", level: str = "exact") -> float:
        t = self.twins.get(split, {})
        return t.get(level, 0) / t["n"] if t.get("n") else 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able dict (lists of files per group included)."""
        return {
            "n_images": self.n_images,
            "split_counts": dict(self.split_counts),
            "max_hamming": self.max_hamming,
            "fine_max_hamming": self.fine_max_hamming,
            "cross_source": {k: dict(v) for k, v in self.cross_source.items()},
            "crossing": {k: dict(v) for k, v in self.crossing.items()},
            "twins": {
                split: {
                    **counts,
                    **{
                        f"share_{lvl}": round(self.twin_share(split, lvl), 4)
                        for lvl in ("exact", "visual", "any")
                    },
                }
                for split, counts in self.twins.items()
            },
            "label_conflicts": {
                kind: sum(g.mixed_labels for g in self.groups(kind)) for kind in KINDS
            },
            "groups": {kind: [g.to_dict() for g in self.groups(kind)] for kind in KINDS},
            "unreadable": [list(u) for u in self.unreadable],
        }

    def near_rule(self) -> str:
        """How near-duplicates were found, for table captions."""
        rule = f"64-bit phash within {self.max_hamming} bits"
        if self.fine_max_hamming is not None:
            rule += f" and 256-bit phash within {self.fine_max_hamming}"
        return rule

    def format_table(self) -> str:
        """A plain-text table (no rich markup) for logs and the audit entry point."""
        counts = ", ".join(f"{k} {v:,}" for k, v in self.split_counts.items())
        lines = [
            f"Leakage audit: {self.n_images:,} images ({counts})",
            f"near = {self.near_rule()}, beyond byte-identical copies; name = same source "
            "name and label",
            "",
        ]
        pairs = [f"{a}/{b}" for a, b in SPLIT_PAIRS]
        header = f"{'kind':<8}{'groups':>8}{'images':>8}{'1 split':>9}"
        header += "".join(f"{p:>12}" for p in pairs) + f"{'mixed labels':>14}"
        lines += [header, "-" * len(header)]
        for kind in KINDS:
            gs = self.groups(kind)
            row = f"{kind:<8}{len(gs):>8,}{sum(len(g.paths) for g in gs):>8,}"
            row += f"{self.crossing.get(kind, {}).get('within', 0):>9,}"
            row += "".join(f"{self.crossing.get(kind, {}).get(p, 0):>12,}" for p in pairs)
            row += f"{sum(g.mixed_labels for g in gs):>14,}"
            lines.append(row)
        lines.append("")
        twin_header = f"{'twin in train':<16}{'exact':>16}{'exact+near':>16}{'any':>16}"
        lines += [twin_header, "-" * len(twin_header)]
        for split in ("test", "val"):
            t = self.twins.get(split)
            if not t or not t.get("n"):
                lines.append(f"{split + ' (0)':<16}{'-':>16}{'-':>16}{'-':>16}")
                continue
            cells = "".join(
                f"{f'{t[lvl]:,} ({100 * self.twin_share(split, lvl):.1f}%)':>16}"
                for lvl in ("exact", "visual", "any")
            )
            label = f"{split} ({t['n']:,})"
            lines.append(f"{label:<16}{cells}")
        if self.cross_source:
            lines += ["", "Across sources (an image with a twin in the other source):"]
            lines += [f"  {line}" for line in self.cross_source_lines()]
        if self.unreadable:
            lines.append("")
            lines.append(f"{len(self.unreadable)} file(s) could not be decoded (no phash).")
        return "\n".join(lines)

    def cross_source_lines(self) -> list[str]:
        """ "N images of A also appear in B (M exact, K near)", one per ordered pair."""
        out = []
        for pair, c in self.cross_source.items():
            a, b = pair.split("/", 1)
            out.append(
                f"{c['images']:,} of {c['of']:,} images of {a} also appear in {b} "
                f"({c['exact']:,} exact, {c['near']:,} near)"
            )
        return out


def _split_of(sample: Sample) -> str:
    return sample.split or sample.given_split or "none"


def _count_crossing(groups: list[DuplicateGroup]) -> dict[str, int]:
    out = {f"{a}/{b}": sum(g.crosses(a, b) for g in groups) for a, b in SPLIT_PAIRS}
    out["within"] = sum(len(g.split_set) == 1 for g in groups)
    return out


def audit_leakage(
    samples: Sequence[Sample],
    *,
    max_hamming: int = NEAR_MAX_HAMMING,
    fine_max_hamming: int | None = FINE_MAX_HAMMING,
    near_duplicates: bool = True,
    by_name: bool = True,
    cache: HashCache | None = None,
    workers: int | None = None,
) -> LeakageReport:
    """Find exact, near and name duplicates and measure how they straddle the splits.

    Uses ``sample.split``, falling back to ``sample.given_split`` (so a freshly indexed
    dataset is audited on its own split). Hashes come from
    :func:`fracture_lit.data.grouping.compute_hashes` and share its cache with grouping.
    """
    samples = list(samples)
    splits = [_split_of(s) for s in samples]
    split_counts: dict[str, int] = {}
    for name in ("train", "val", "test", "none"):
        n = splits.count(name)
        if n:
            split_counts[name] = n
    report = LeakageReport(
        n_images=len(samples),
        split_counts=split_counts,
        max_hamming=max_hamming,
        fine_max_hamming=fine_max_hamming,
    )
    if not samples:
        return report
    hashes = compute_hashes(
        [s.path for s in samples], want_phash=near_duplicates, cache=cache, workers=workers
    )
    report.unreadable = [(s.path, h.error) for s, h in zip(samples, hashes, strict=True) if h.error]

    def make(kind: str, members: list[int], nodes: list[int] | None = None) -> DuplicateGroup:
        return DuplicateGroup(
            kind=kind,
            paths=[samples[i].path for i in members],
            splits=[splits[i] for i in members],
            labels=[samples[i].label for i in members],
            nodes=nodes or [],
        )

    # exact: one node per distinct sha1
    node_of: dict[str, int] = {}
    node_members: list[list[int]] = []
    for i, h in enumerate(hashes):
        n = node_of.setdefault(h.sha1, len(node_members))
        if n == len(node_members):
            node_members.append([])
        node_members[n].append(i)
    node_index = [node_of[h.sha1] for h in hashes]
    report.exact_groups = [make("exact", m) for m in node_members if len(m) > 1]

    # near: link nodes whose phash is close; groups need >= 2 distinct nodes
    visual = UnionFind(len(samples))
    for members in node_members:
        for j in members[1:]:
            visual.union(members[0], j)
    near_node_pairs: list[tuple[int, int]] = []
    if near_duplicates:
        node_hashes = [hashes[m[0]] for m in node_members]
        near_node_pairs = confirmed_near_pairs(node_hashes, max_hamming, fine_max_hamming)
        node_uf = UnionFind(len(node_members))
        for na, nb in near_node_pairs:
            node_uf.union(na, nb)
            visual.union(node_members[na][0], node_members[nb][0])
        for comp in node_uf.components():
            if len(comp) > 1:
                members = sorted(i for n in comp for i in node_members[n])
                report.near_groups.append(make("near", members, [node_index[i] for i in members]))

    # name: same label and stem key
    combined = UnionFind(len(samples))
    for i in range(len(samples)):
        combined.union(i, visual.find(i))
    if by_name:
        by_key: dict[tuple[object, int, str], list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            by_key[name_key(s)].append(i)
        for members in sorted(by_key.values()):
            if len(members) > 1:
                report.name_groups.append(make("name", members))
                for j in members[1:]:
                    combined.union(members[0], j)

    enabled = {"exact": True, "near": near_duplicates, "name": by_name}
    report.crossing = {k: _count_crossing(report.groups(k)) for k in KINDS if enabled[k]}

    # twins: does the image's component (at each level) hold a train image?
    def has_train(uf: UnionFind) -> set[int]:
        return {uf.find(i) for i, sp in enumerate(splits) if sp == "train"}

    exact_train = {node_index[i] for i, sp in enumerate(splits) if sp == "train"}
    visual_train, any_train = has_train(visual), has_train(combined)
    for split in ("test", "val"):
        idx = [i for i, sp in enumerate(splits) if sp == split]
        report.twins[split] = {
            "n": len(idx),
            "exact": sum(node_index[i] in exact_train for i in idx),
            "visual": sum(visual.find(i) in visual_train for i in idx),
            "any": sum(combined.find(i) in any_train for i in idx),
        }
    report.cross_source = _cross_source(samples, node_index, node_members, near_node_pairs)
    return report


def _cross_source(
    samples: Sequence[Sample],
    node_index: Sequence[int],
    node_members: Sequence[Sequence[int]],
    near_node_pairs: Sequence[tuple[int, int]],
) -> dict[str, dict[str, int]]:
    """Per ordered pair of sources (A, B): how many images of A have a *direct* twin in B,
    byte-identical (``exact``) or, failing that, a confirmed near copy (``near``)."""
    sources = [s.meta.get("source") for s in samples]
    names = sorted({str(s) for s in sources if s is not None})
    if len(names) < 2:
        return {}
    in_node = [{sources[i] for i in members} for members in node_members]
    neighbours: dict[int, set[int]] = defaultdict(set)
    for na, nb in near_node_pairs:
        neighbours[na].add(nb)
        neighbours[nb].add(na)
    out: dict[str, dict[str, int]] = {}
    for a in names:
        mine = [i for i, s in enumerate(sources) if s == a]
        for b in names:
            if a == b:
                continue
            exact = near = 0
            for i in mine:
                node = node_index[i]
                if b in in_node[node]:
                    exact += 1
                elif any(b in in_node[m] for m in neighbours[node]):
                    near += 1
            out[f"{a}/{b}"] = {"of": len(mine), "images": exact + near, "exact": exact,
                               "near": near}  # fmt: skip
    return out
