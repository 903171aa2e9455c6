"""Tie together images that must never straddle splits, within a dataset and across several.

Public fracture datasets are full of copies: FracAtlas holds byte-identical images under
different names, the multi-region set ships ``x-rotated1 - Copy (1).jpg`` variants of the
same radiograph in train and test (and FracAtlas images byte for byte), and Bone Break is a
Roboflow export where every file is an augmented copy of a smaller set of sources. A split
that treats each file as independent leaks, and the measured accuracy is inflated.

:func:`assign_groups` links samples three ways and gives each connected component one
``group`` id (union-find):

* identical bytes (sha1 of the file), across datasets too;
* near-duplicates: 64-bit perceptual hash within ``max_hamming`` bits, confirmed by the
  256-bit one (:mod:`fracture_lit.data.hashing` says why and how the thresholds were
  checked on real radiographs), across datasets too;
* name-derived variants: :func:`stem_key` strips copy / rotation / Roboflow suffixes, and
  files with the same key, *the same label and the same source* (``meta["source"]`` of a
  merged dataset) are linked. Names are only compared within a label because generic names
  (``image10``, ``1``) recur across classes for unrelated images, and within a source
  because two datasets may both have an ``image10``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fracture_lit.data.hashing import (
    FINE_MAX_HAMMING,
    NEAR_MAX_HAMMING,
    HashCache,
    ImageHashes,
    _truncated_images_allowed,  # noqa: F401 - the image cache's import path
    compute_hashes,
    confirmed_near_pairs,
    file_digest,
    near_duplicate_pairs,
    perceptual_hash,
)
from fracture_lit.data.samples import Sample

__all__ = [
    "HashCache",
    "ImageHashes",
    "UnionFind",
    "assign_groups",
    "compute_hashes",
    "confirmed_near_pairs",
    "file_digest",
    "name_key",
    "near_duplicate_pairs",
    "perceptual_hash",
    "stem_key",
]

# --------------------------------------------------------------------------- names

_EXT = r"(?:jpe?g|png|bmp|gif|webp|tiff?)"
# Roboflow exports name files '<source>_<ext>.rf.<32 hex>.jpg'; the sample also has
# mangled forms ('_jpg.rf<hex>', '_png.r<hex>', '_jpeg<hex>', '_j<hex>'), matched loosely.
_ROBOFLOW = re.compile(rf"^(?P<base>.+?)(?:[_.-]{_EXT})?\.rf\.?[0-9a-f]*$")
_ROBOFLOW_MANGLED = re.compile(r"^(?P<base>.+?)_(?:jpe?g|jp|j|png|pn)\.?(?:rf?)?\.?[0-9a-f]{6,}$")
_SUFFIX_SET = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
_VARIANT_SUFFIXES = (
    re.compile(r"\s*\(\d+\)$"),  # 'x (1)', 'x(2)'
    re.compile(r"\s*-\s*copy$"),  # 'x - Copy'
    re.compile(r"[\s_]+copy$"),  # 'x copy', 'x_copy'
    re.compile(r"-rotated\d*$"),  # 'x-rotated1-rotated3'
)


def stem_key(name: str) -> str:
    """The source an augmented / copied file name derives from, lower-cased.

    ``'1-rotated1-rotated2 - Copy (1).jpg'`` -> ``'1'``; ``'x (1).png'`` -> ``'x'``;
    ``'image10_jpeg.rf.0ab3....jpg'`` -> ``'image10'``. Unrecognised names give their
    lower-cased stem, so the key is never empty.
    """
    stem = Path(name).stem if Path(name).suffix.lower() in _SUFFIX_SET else name
    key = stem.strip().casefold()
    match = _ROBOFLOW.match(key) or _ROBOFLOW_MANGLED.match(key)
    if match:
        key = match.group("base")
    changed = True
    while changed:
        changed = False
        for pattern in _VARIANT_SUFFIXES:
            new = pattern.sub("", key).strip()
            if new and new != key:
                key, changed = new, True
    return key or stem.casefold()


def name_key(sample: Sample) -> tuple[object, int, str]:
    """What links name variants: (source, label, :func:`stem_key`); the source is
    ``meta["source"]`` in a merged dataset, None in a single one."""
    return (sample.meta.get("source"), sample.label, stem_key(sample.name))


# --------------------------------------------------------------------------- union-find


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def components(self) -> list[list[int]]:
        """Members of each set, each sorted, sets ordered by their smallest member."""
        comps: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            comps.setdefault(self.find(i), []).append(i)
        return sorted(comps.values(), key=lambda c: c[0])


def _union_by_key(uf: UnionFind, keys: Iterable[object]) -> None:
    first: dict[object, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        j = first.setdefault(key, i)
        if j != i:
            uf.union(i, j)


def _group_id(members: list[int], samples: Sequence[Sample], digests: Sequence[str]) -> str:
    """Readable and machine-independent: '<stem key of first name>-<its sha1[:8]>'.

    Built from file names and contents, not absolute paths, so the same data on two
    machines gets the same ids (manifests compare cleanly).
    """
    rep = min(members, key=lambda i: (samples[i].name, digests[i]))
    return f"{stem_key(samples[rep].name)}-{digests[rep][:8]}"


def assign_groups(
    samples: Sequence[Sample],
    *,
    near_duplicates: bool = True,
    max_hamming: int = NEAR_MAX_HAMMING,
    fine_max_hamming: int | None = FINE_MAX_HAMMING,
    by_name: bool = True,
    cache: HashCache | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Fill ``sample.group`` so identical, near-identical and name-variant files share a group.

    Links (union-find, so transitive): same sha1; near-duplicates (when ``near_duplicates``:
    :func:`~fracture_lit.data.hashing.confirmed_near_pairs`, ``fine_max_hamming=None`` for
    the 64-bit hash alone); same :func:`name_key` (when ``by_name``). Files whose phash
    cannot be computed keep their byte and name links and get a note. Every sample gets a
    group, singletons included, so splitters can rely on it.
    """
    if max_hamming < 0:
        raise ValueError(f"max_hamming must be >= 0, got {max_hamming}")
    samples = list(samples)
    if not samples:
        return
    paths = [s.path for s in samples]
    if progress:
        progress(f"hashing {len(paths)} images")
    hashes = compute_hashes(paths, want_phash=near_duplicates, cache=cache, workers=workers)
    digests = [h.sha1 for h in hashes]
    uf = UnionFind(len(samples))
    _union_by_key(uf, digests)
    if near_duplicates:
        for a, b in confirmed_near_pairs(hashes, max_hamming, fine_max_hamming):
            uf.union(a, b)
        for sample, h in zip(samples, hashes, strict=True):
            if h.error and "perceptual hash failed" not in sample.notes:
                note = f"perceptual hash failed ({h.error})"
                sample.notes = f"{sample.notes}; {note}" if sample.notes else note
    if by_name:
        _union_by_key(uf, (name_key(s) for s in samples))
    for members in uf.components():
        gid = _group_id(members, samples, digests)
        for i in members:
            samples[i].group = gid
