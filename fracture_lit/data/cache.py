"""Decode every image once, at the configured size, into a memory-mapped uint8 array.

Decoding a 2,900 px radiograph costs ~20 ms; doing it every epoch of every sweep job
wastes most of a run. The cache decodes each file once (JPEG draft decoding at 1/2, 1/4
or 1/8 scale when the target is much smaller), resizes it to ``image_size`` and stores
greyscale uint8 in ``<cache_dir>/<key>.npy``. The key is a fingerprint of the file list
(path, size, mtime), the size and the resize mode, so later runs, sweep jobs and DDP ranks
share it; a file lock plus write-then-rename keeps concurrent builders from corrupting it.

A build that is killed leaves nothing that blocks or fools the next run: its decode
workers die with it (``PR_SET_PDEATHSIG``) and never hold the lock; the lock file names its
owner (``utils/owner_lock.py``), so a lock or temporary file left by a process that no
longer runs is cleared with a log line and the cache rebuilt; the finished array and its
metadata only appear, by rename, once every image is decoded, so a partial cache is never
used.

A finished cache proves itself before use (``data/cache_check.py``): its metadata records
checksums of the array file and of itself, checked the first time a process maps it. A
mismatch is one warning naming the file, then a rebuild; a cache that fails again right
after its rebuild is refused with one line (its storage is at fault): a run never trains
on pixels other than those decoded.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import re
import signal
import socket
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from fracture_lit.data.cache_check import (
    CacheMismatchError,
    CacheUnreliableError,
    seal,
    verify,
)
from fracture_lit.data.grouping import _truncated_images_allowed
from fracture_lit.data.image_limits import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    check_image_pixels,
)
from fracture_lit.utils.owner_lock import OwnerLock, pid_running

log = logging.getLogger(__name__)

# 2: truncated JPEGs decode (OpenCV 5 refuses them; v1 caches listed them as bad).
CACHE_VERSION = 2
RESIZE_MODES = ("resize", "letterbox")
_JPEG_SUFFIXES = (".jpg", ".jpeg")


class BadImageError(ValueError):
    """A file that cannot be decoded as an image."""


@dataclass
class CachedImages:
    """The cache for one file list: ``array[i]`` is file ``i`` at ``(size, size)``.

    ``notes[i]`` says what happened while decoding (empty when nothing did); ``bad`` lists
    the indices that could not be decoded at all (their rows are zeros).
    """

    array: np.ndarray
    notes: list[str]
    bad: list[int]
    path: Path


def is_truncated_jpeg(data: bytes) -> bool:
    """A JPEG without its end-of-image marker (FracAtlas has 79 of them)."""
    return data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9")


def _reduced_flag(path: str, size: int) -> int:
    """The largest JPEG draft reduction that still leaves at least ``size`` pixels."""
    if not path.lower().endswith(_JPEG_SUFFIXES):
        return cv2.IMREAD_GRAYSCALE
    try:
        with Image.open(path) as im:
            short = min(im.size)
    except Exception:  # noqa: BLE001 - incl. Pillow's bomb error: decode at full scale
        return cv2.IMREAD_GRAYSCALE
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
        (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
        (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    ):
        if short // factor >= size:
            return flag
    return cv2.IMREAD_GRAYSCALE


def square_placement(
    height: int, width: int, size: int, mode: str = "resize"
) -> tuple[int, int, int, int]:
    """Where an image of ``height`` x ``width`` lands in the ``size`` x ``size`` input:
    ``(top, left, rows, cols)`` of its content box.

    :func:`fit_to_square` places every image with it, and the localization scores map the
    radiologists' regions with it, so both follow one geometry that cannot drift apart.
    """
    if mode == "resize":
        return 0, 0, size, size
    if mode == "letterbox":
        scale = size / max(height, width)
        rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
        return (size - rows) // 2, (size - cols) // 2, rows, cols
    raise ValueError(f"data.resize_mode={mode!r}; use one of {', '.join(RESIZE_MODES)}.")


def fit_to_square(image: np.ndarray, size: int, mode: str = "resize") -> np.ndarray:
    """Resize to ``size`` x ``size``: a plain resize, or a letterbox keeping the aspect.

    There is no centre crop: paper D found it cut off fractures near the image corners.
    """
    h, w = image.shape[:2]
    top, left, rows, cols = square_placement(h, w, size, mode)
    if mode == "resize":
        interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(image, (size, size), interpolation=interp)
    interp = cv2.INTER_AREA if size / max(h, w) < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (cols, rows), interpolation=interp)
    out = np.zeros((size, size), dtype=np.uint8)
    out[top : top + rows, left : left + cols] = resized
    return out


def _decode_truncated(path: str, size: int) -> np.ndarray | None:
    """Decode a truncated JPEG with PIL, keeping the rows that are there.

    OpenCV 4 decoded these with a warning; OpenCV 5 returns nothing, which turned every
    truncated FracAtlas file into a skipped "bad" image (and crashed the uncached loader).
    PIL only decodes them with its process-wide LOAD_TRUNCATED_IMAGES switch, which the
    grouping module already flips under a lock for just the duration of one decode.
    """
    try:
        with _truncated_images_allowed(), Image.open(path) as im:
            im.draft("L", (size, size))  # JPEG scale reduction, like the OpenCV path
            return np.asarray(im.convert("L"))
    except (OSError, ValueError):
        return None


def decode_image(
    path: str, size: int, mode: str = "resize", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """Decode ``path`` to greyscale uint8 at ``size`` and say what was unusual about it.

    Truncated JPEGs decode with what they have (OpenCV fills the missing rows) and are
    noted; a file that is not an image, or whose header announces more than
    ``max_pixels`` pixels, raises :class:`BadImageError`.
    """
    try:
        check_image_pixels(path, max_pixels)
    except ImageTooLargeError as error:
        raise BadImageError(str(error)) from error
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise BadImageError(f"{path}: cannot read ({error})") from error
    truncated = is_truncated_jpeg(data)
    note = "truncated JPEG (decoded what was there)" if truncated else ""
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, _reduced_flag(path, size)) if buffer.size else None
    if image is None and truncated:
        image = _decode_truncated(path, size)
    if image is None:
        raise BadImageError(f"{path}: not a decodable image")
    if image.dtype != np.uint8:  # 16-bit PNGs
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return fit_to_square(image, size, mode), note


def cache_key(
    paths: Sequence[str], size: int, mode: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> str:
    # The default limit leaves the key as it was, so existing caches stay valid.
    limit = "" if max_pixels == DEFAULT_MAX_PIXELS else f"|px{max_pixels}"
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{mode}{limit}".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _die_with_parent(lock_fd: int, parent: int) -> None:
    """Decode-worker initializer: die when the building process dies, and let go of its lock.

    Without this a ``kill -9`` of a run left its workers alive (re-parented to PID 1), still
    holding the inherited lock, and every later run with the same settings waited forever.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1 (Linux)
    except (OSError, AttributeError):  # not Linux: closing the lock still prevents the hang
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    with contextlib.suppress(OSError):
        os.close(lock_fd)  # the lock stays with the builder only


def _decode_chunk(
    args: tuple[str, list[tuple[int, str]], int, str, int | None],
) -> list[tuple[int, str, bool]]:
    """Worker: decode a chunk of files straight into the memory-mapped array."""
    array_path, items, size, mode, max_pixels = args
    array = np.load(array_path, mmap_mode="r+")
    results: list[tuple[int, str, bool]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, path in items:
            try:
                array[index], note = decode_image(path, size, mode, max_pixels)
                results.append((index, note, False))
            except BadImageError as error:
                results.append((index, str(error), True))
    array.flush()
    return results


def build_cache(
    paths: Sequence[str],
    *,
    size: int,
    mode: str = "resize",
    cache_dir: str | Path,
    workers: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> CachedImages:
    """Return the cache for ``paths``, building it first if no earlier run has."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"data.resize_mode={mode!r}; use one of {', '.join(RESIZE_MODES)}.")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, size, mode, max_pixels)
    array_path, meta_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    # Concurrent jobs wait here for the first builder instead of decoding twice.
    lock = OwnerLock(cache_dir / f"{key}.lock", "Cache lock", "clearing it and rebuilding")
    lock.acquire(what="building the cache")
    try:
        _clear_stale_tmp(cache_dir)
        meta = _verified_meta(array_path, meta_path)
        if meta is None:
            _build(paths, size, mode, array_path, meta_path, workers, max_pixels, lock.fileno())
            meta = _check_rebuilt(array_path, meta_path)
    finally:
        lock.release()
    return CachedImages(np.load(array_path, mmap_mode="r"), meta["notes"], meta["bad"], array_path)


def _verified_meta(array_path: Path, meta_path: Path) -> dict[str, Any] | None:
    """The metadata of a finished cache whose checksums match, else None (rebuild it)."""
    if not (array_path.exists() and meta_path.exists()):
        return None
    try:
        meta = verify(array_path, meta_path)
    except CacheMismatchError as error:
        log.warning(
            "Decoded-image cache %s failed its check: %s; rebuilding it.", array_path, error
        )
        return None
    log.info("Reusing decoded-image cache %s (checksum verified)", array_path)
    return meta


def _check_rebuilt(array_path: Path, meta_path: Path) -> dict[str, Any]:
    """Verify a cache just built; a second failure in a row means the storage is at fault."""
    try:
        return verify(array_path, meta_path)
    except CacheMismatchError as error:
        raise CacheUnreliableError(
            f"decoded-image cache {array_path} failed its check again right after being "
            f"rebuilt ({error}): the storage under data.cache_dir returns other bytes than "
            "were written, so the cache is not used. Put it on another disk "
            "(data.cache_dir=<folder>) or train without it (data.cache=false)."
        ) from None


# .<key>.<pid>@<host>.tmp.npy / .<key>.<pid>@<host>.tmp (older builds: no @host, and
# .<key>.json.<pid>.tmp for the metadata).
_TMP_NAME = re.compile(r"^\.([0-9a-f]{20})\.(?:json\.)?(\d+)(?:@(.+?))?\.tmp(?:\.npy)?$")


def _tmp_suffix() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _clear_stale_tmp(cache_dir: Path) -> None:
    """Remove partial files (of any key) left by builds of this host that no longer run.

    A killed build leaves its ``.tmp.npy`` (tens of MB) behind; it is never used, since
    only a finished build is renamed into place, but it would stay for good.
    """
    host = socket.gethostname()
    for tmp in cache_dir.glob(".*.tmp*"):
        match = _TMP_NAME.match(tmp.name)
        if match is None:
            continue
        pid, tmp_host = int(match.group(2)), match.group(3) or host
        if tmp_host != host or pid == os.getpid() or pid_running(pid):
            continue
        log.warning(
            "Removing %s, a partial cache left by process %d, which no longer runs; it is "
            "never used (the cache is rebuilt when needed).",
            tmp,
            pid,
        )
        tmp.unlink(missing_ok=True)


def _build(
    paths: Sequence[str],
    size: int,
    mode: str,
    array_path: Path,
    meta_path: Path,
    workers: int | None,
    max_pixels: int | None,
    lock_fd: int,
) -> None:
    tmp = array_path.with_name(f".{array_path.stem}.{_tmp_suffix()}.tmp.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size))
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) // 64 or 1))
    items = list(enumerate(paths))
    chunks = [items[i::workers] for i in range(workers)]
    log.info("Decoding %d images once into %s (%d processes)", len(paths), array_path, workers)
    jobs = [(str(tmp), chunk, size, mode, max_pixels) for chunk in chunks]
    if workers == 1:
        results = [r for job in jobs for r in _decode_chunk(job)]
    else:
        with ProcessPoolExecutor(
            workers, initializer=_die_with_parent, initargs=(lock_fd, os.getpid())
        ) as pool:
            results = [r for chunk in pool.map(_decode_chunk, jobs) for r in chunk]
    notes = [""] * len(paths)
    bad: list[int] = []
    for index, note, failed in results:
        notes[index] = note
        if failed:
            bad.append(index)
    tmp_meta = meta_path.with_name(f".{meta_path.stem}.{_tmp_suffix()}.tmp")
    meta = {"size": size, "mode": mode, "notes": notes, "bad": sorted(bad)}
    tmp_meta.write_text(json.dumps(seal(meta, tmp)))
    # The array first, the metadata last: the cache counts as built only when both exist.
    os.replace(tmp, array_path)
    os.replace(tmp_meta, meta_path)
