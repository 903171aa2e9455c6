"""What makes two image files "the same radiograph": byte digests and a two-level perceptual hash.

Exact copies share a sha1. Near copies (re-encoded, resized, brightness-shifted, a border
added) are found in two steps, because a single 64-bit perceptual hash confuses shared
anatomy with a shared image on radiographs (two different knees, AP view, same exposure
look alike at 32x32):

1. candidates: the 64-bit ``imagehash.phash`` within :data:`NEAR_MAX_HAMMING` bits, found
   for all pairs at once with XOR + popcount in numpy;
2. confirmation: the 256-bit ``phash`` (``hash_size=16``, the DCT of a 64x64 image, so a
   finer scale) within :data:`FINE_MAX_HAMMING` bits.

The thresholds were chosen on the FracAtlas and multi-region samples (1,506 images), by
looking at the pairs each rule groups (montages of every pair with differing names):
64-bit phash alone at 4 bits (the former rule) grouped 11 pairs of differently named
files, 4 of them different radiographs (two knees at 2 bits; a fractured and an intact knee
at 4 bits). Of the 40 such pairs within 6 bits, 22 were different radiographs, all with a
256-bit distance >= 52, and 18 the same radiograph, 14 of them within 44 bits (the other 4
are joined through their neighbours). The confirmed pairs within 8 bits hold no different
radiograph and no pair with differing labels.

Hashing decodes every image once, at 1/8 scale for JPEGs (PIL draft mode), in a few
threads; results are cached in memory (and optionally on disk) by (path, size, mtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = [
    "FINE_MAX_HAMMING",
    "NEAR_MAX_HAMMING",
    "HashCache",
    "ImageHashes",
    "compute_hashes",
    "confirmed_near_pairs",
    "file_digest",
    "fine_distance",
    "near_duplicate_pairs",
    "perceptual_hash",
]

#: 64-bit phash distance within which two different files are near-duplicate candidates.
NEAR_MAX_HAMMING = 8
#: 256-bit phash distance within which a candidate pair is confirmed as the same image.
FINE_MAX_HAMMING = 44
#: ``hash_size`` of the confirming hash (``hash_size**2`` bits).
_FINE_HASH_SIZE = 16


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
    """Hashes of one file. ``phash`` (64-bit) and ``fine`` (256-bit phash, hex) are ``None``
    when the file could not be decoded."""

    sha1: str
    phash: int | None = None
    truncated: bool = False
    error: str = ""
    fine: str | None = None


def fine_distance(a: str, b: str) -> int:
    """Bits that differ between two 256-bit hashes in hex."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _compute_one(path: str, want_phash: bool) -> ImageHashes:
    result = ImageHashes(sha1=file_digest(path))
    if want_phash:
        try:
            image, result.truncated = _decode_small_grey(path)
            result.phash = int(str(imagehash.phash(image)), 16)
            result.fine = str(imagehash.phash(image, hash_size=_FINE_HASH_SIZE))
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
        try:
            hashes = ImageHashes(**entry)  # type: ignore[arg-type]
        except TypeError:
            return None  # written by another version: hash again
        if want_phash and (hashes.phash is None or hashes.fine is None) and not hashes.error:
            return None  # cached without the perceptual hashes; compute them now
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
    """Hash every path (sha1, and the perceptual hashes when ``want_phash``), reusing ``cache``.

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
    ``chunk_elems``), so there is no Python loop over pairs. Identical hashes are chained
    (``(first, j)`` for each other member), which union-find makes transitive.
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


def confirmed_near_pairs(
    hashes: Sequence[ImageHashes],
    max_hamming: int = NEAR_MAX_HAMMING,
    fine_max_hamming: int | None = FINE_MAX_HAMMING,
) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` of near-duplicate images: 64-bit phash within ``max_hamming``
    bits and, unless ``fine_max_hamming`` is None, 256-bit phash within ``fine_max_hamming``.

    Files without a perceptual hash (undecodable) are left out. Identical 64-bit hashes are
    candidates like any other: the finer hash decides.
    """
    hashable = [i for i, h in enumerate(hashes) if h.phash is not None]
    coarse = [hashes[i].phash for i in hashable]
    if fine_max_hamming is None:
        return [(hashable[a], hashable[b]) for a, b in near_duplicate_pairs(coarse, max_hamming)]
    values = np.array([h & 0xFFFFFFFFFFFFFFFF for h in coarse], dtype=np.uint64)
    out = []
    for a, b in _all_pairs_within(values, max_hamming):
        fa, fb = hashes[hashable[a]].fine, hashes[hashable[b]].fine
        if fa is not None and fb is not None and fine_distance(fa, fb) <= fine_max_hamming:
            out.append((hashable[a], hashable[b]))
    return out


def _all_pairs_within(
    values: np.ndarray, max_hamming: int, chunk_elems: int = 1 << 22
) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of 64-bit values within ``max_hamming`` bits (no
    chaining of equal values: each pair is checked by the finer hash on its own)."""
    n = len(values)
    pairs: list[tuple[int, int]] = []
    step = max(1, chunk_elems // max(n, 1))
    for start in range(0, n, step):
        block = values[start : start + step]
        dist = _popcount64(block[:, None] ^ values[None, :])
        rows, cols = np.nonzero(dist <= max_hamming)
        keep = cols > rows + start
        pairs.extend(zip((rows[keep] + start).tolist(), cols[keep].tolist(), strict=True))
    return pairs
