"""Tie together images that must never straddle splits.

Public fracture datasets are full of copies: FracAtlas holds byte-identical images under
different names, the multi-region set ships ``x-rotated1 - Copy (1).jpg`` variants of the
same radiograph in train and test, and Bone Break is a Roboflow export where every file is
an augmented copy of a smaller set of sources. A split that treats each file as independent
leaks, and the measured accuracy is inflated.

:func:`assign_groups` links samples three ways and gives each connected component one
``group`` id (union-find):

* identical bytes (sha1 of the file);
* near-duplicates: 64-bit perceptual hash (``imagehash.phash``) within ``max_hamming``
  bits. phash distances between distinct images are even (the hash splits its 64 DCT
  coefficients at their median), so 4 means "at most two coefficients moved". On the
  FracAtlas sample a few distinct patients photographed in the same pose also fall within 4
  bits: the grouping errs towards keeping look-alikes together, which costs split freedom,
  never correctness;
* name-derived variants: :func:`stem_key` strips copy / rotation / Roboflow suffixes, and
  files with the same key *and the same label* are linked. Names are only compared within a
  label because generic names (``image10``, ``1``) recur across classes for unrelated
  images.

Hashing decodes every image once, at 1/8 scale for JPEGs (PIL draft mode), in a few
threads; results are cached in memory (and optionally on disk) by (path, size, mtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from fracture_lit.data.samples import Sample

__all__ = [
    "HashCache",
    "ImageHashes",
    "UnionFind",
    "assign_groups",
    "compute_hashes",
    "file_digest",
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


# --------------------------------------------------------------------------- hashes


def file_digest(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """sha1 hex digest of the file's bytes (identity of content, not of name)."""
    h = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


_TRUNCATED_LOCK = threading.Lock()


@contextlib.contextmanager
def _truncated_images_allowed() -> Iterator[None]:
    """Let PIL decode truncated JPEGs for the duration of the block only.

    PIL reads this switch from a module global; flipping it for the whole process would
    silently change how the training loader treats broken files, which is a policy the
    user should see. The lock keeps concurrent hashing threads from restoring it early.
    """
    with _TRUNCATED_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _small_grey(path: str | os.PathLike[str], size: int = 128):
    """Decode to greyscale at a reduced size; JPEGs decode at 1/2..1/8 scale (draft)."""
    with Image.open(path) as im:
        im.draft("L", (size, size))  # a no-op for non-JPEG formats
        grey = im.convert("L")
    if max(grey.size) > 2 * size:
        grey.thumbnail((2 * size, 2 * size))
    return grey


def _decode_small_grey(path: str | os.PathLike[str]) -> tuple[object, bool]:
    """(image, was_truncated). Retries truncated files with truncation allowed."""
    try:
        return _small_grey(path), False
    except UnidentifiedImageError:
        raise
    except OSError:
        with _truncated_images_allowed():
            return _small_grey(path), True


def perceptual_hash(path: str | os.PathLike[str]) -> int:
    """64-bit ``imagehash.phash`` of the image as an int (``f'{h:016x}'`` is imagehash's hex).

    Decoded in greyscale at reduced size (JPEG draft mode), which moves the hash by 0-2 bits
    against a full decode but makes hashing 10k radiographs take seconds, not minutes; use
    this function for every hash you compare. Truncated JPEGs are decoded as far as they go.
    Raises ``OSError`` (or PIL's ``UnidentifiedImageError``) when the file is not an image.
    """
    image, _ = _decode_small_grey(path)
    return int(str(imagehash.phash(image)), 16)


@dataclass
class ImageHashes:
    """Hashes of one file. ``phash`` is ``None`` when the file could not be decoded."""

    sha1: str
    phash: int | None = None
    truncated: bool = False
    error: str = ""


def _compute_one(path: str, want_phash: bool) -> ImageHashes:
    result = ImageHashes(sha1=file_digest(path))
    if want_phash:
        try:
            image, result.truncated = _decode_small_grey(path)
            result.phash = int(str(imagehash.phash(image)), 16)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is "not hashable"
            result.error = f"{type(exc).__name__}: {exc}"
    return result


class HashCache:
    """Hashes keyed by (absolute path, size, mtime_ns), in memory and optionally on disk.

    The grouping, the leakage audit and repeated runs hash the same files; a changed file
    gets a new key, so stale hashes are never reused. ``path`` makes it persistent (JSON).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, dict[str, object]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}  # a corrupt cache is only a slower run

    @staticmethod
    def key(path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"

    def get(self, path: str, want_phash: bool) -> ImageHashes | None:
        key = self.key(path)
        entry = self._entries.get(key) if key else None
        if entry is None:
            return None
        hashes = ImageHashes(**entry)  # type: ignore[arg-type]
        if want_phash and hashes.phash is None and not hashes.error:
            return None  # cached without a phash; compute it now
        return hashes

    def put(self, path: str, hashes: ImageHashes) -> None:
        key = self.key(path)
        if key:
            with self._lock:
                self._entries[key] = asdict(hashes)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)  # atomic: parallel runs never read half a file

    def __len__(self) -> int:
        return len(self._entries)


_DEFAULT_CACHE = HashCache()


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def compute_hashes(
    paths: Sequence[str],
    *,
    want_phash: bool = True,
    cache: HashCache | None = None,
    workers: int | None = None,
) -> list[ImageHashes]:
    """Hash every path (sha1, and phash when ``want_phash``), reusing ``cache``.

    Threads, because PIL's decoder and hashlib release the GIL; a missing file raises
    ``FileNotFoundError`` (the index is stale), an undecodable one only loses its phash.
    """
    cache = _DEFAULT_CACHE if cache is None else cache
    results: list[ImageHashes | None] = [cache.get(p, want_phash) for p in paths]
    todo = [i for i, r in enumerate(results) if r is None]

    def work(i: int) -> tuple[int, ImageHashes]:
        return i, _compute_one(paths[i], want_phash)

    n_workers = workers or _default_workers()
    if todo:
        if n_workers == 1 or len(todo) < 16:
            done: Iterable[tuple[int, ImageHashes]] = map(work, todo)
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                done = list(pool.map(work, todo, chunksize=8))
        for i, hashes in done:
            results[i] = hashes
            cache.put(paths[i], hashes)
        cache.save()
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- near duplicates

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (numpy>=2 has it built in; the table is the numpy 1.26 fallback)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


def near_duplicate_pairs(
    hashes: Sequence[int], max_hamming: int, chunk_elems: int = 1 << 22
) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, whose 64-bit hashes differ in <= ``max_hamming`` bits.

    Identical hashes are collapsed first; the distinct ones are compared block by block
    with XOR + popcount in numpy (about 0.5 s for 10k distinct hashes, memory bounded by
    ``chunk_elems``), so there is no Python loop over pairs.
    """
    if len(hashes) < 2:
        return []
    values = np.array([h & 0xFFFFFFFFFFFFFFFF for h in hashes], dtype=np.uint64)
    uniq, inverse = np.unique(values, return_inverse=True)
    members: list[list[int]] = [[] for _ in range(len(uniq))]
    for i, u in enumerate(inverse.ravel().tolist()):
        members[u].append(i)
    pairs: list[tuple[int, int]] = []
    for group in members:  # identical hashes: chain them (union-find makes it transitive)
        pairs.extend((group[0], j) for j in group[1:])
    if max_hamming > 0 and len(uniq) > 1:
        n = len(uniq)
        step = max(1, chunk_elems // n)
        for start in range(0, n, step):
            block = uniq[start : start + step]
            dist = _popcount64(block[:, None] ^ uniq[None, :])
            rows, cols = np.nonzero(dist <= max_hamming)
            keep = cols > rows + start
            for r, c in zip((rows[keep] + start).tolist(), cols[keep].tolist(), strict=True):
                pairs.append((members[r][0], members[c][0]))
    return sorted((min(a, b), max(a, b)) for a, b in pairs)


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
    max_hamming: int = 4,
    by_name: bool = True,
    cache: HashCache | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Fill ``sample.group`` so identical, near-identical and name-variant files share a group.

    Links (union-find, so transitive): same sha1; phash within ``max_hamming`` bits (when
    ``near_duplicates``); same :func:`stem_key` within the same label (when ``by_name``).
    Files whose phash cannot be computed keep their byte and name links and get a note.
    Every sample gets a group, singletons included, so splitters can rely on it.
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
        hashable = [(i, h.phash) for i, h in enumerate(hashes) if h.phash is not None]
        for a, b in near_duplicate_pairs([p for _, p in hashable], max_hamming):
            uf.union(hashable[a][0], hashable[b][0])
        for sample, h in zip(samples, hashes, strict=True):
            if h.error and "perceptual hash failed" not in sample.notes:
                note = f"perceptual hash failed ({h.error})"
                sample.notes = f"{sample.notes}; {note}" if sample.notes else note
    if by_name:
        _union_by_key(uf, ((s.label, stem_key(s.name)) for s in samples))
    for members in uf.components():
        gid = _group_id(members, samples, digests)
        for i in members:
            samples[i].group = gid
