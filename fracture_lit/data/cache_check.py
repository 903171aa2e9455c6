"""Caches that prove themselves: checksums of a decoded-image cache, checked before use.

The cache key (``data/cache.py``) covers the source files, not the cache's own bytes: a
cache damaged on disk (a bad sector, a partial copy, a stray write on a shared or network
file system where caches live for months) would be trusted and trained on. So a build
records, in the metadata, an ``xxh3_128`` checksum of the whole ``.npy`` file (header and
pixels) and one of the metadata itself (notes, bad rows); a process checks both the first
time it maps a cache file (``verify``), and again only if the file is replaced. xxh3 runs
at memory speed (several GB/s), so checking costs about one read of the file: see
``benchmarks/bench_loader.py`` and the README's Performance section.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import xxhash

from fracture_lit.errors import UserError

ALGORITHM = "xxh3_128"
_CHUNK = 16 << 20

#: (path, inode, size, mtime) of the cache files this process has verified.
_verified: set[tuple[str, int, int, int]] = set()


class CacheMismatchError(ValueError):
    """A cache file's bytes differ from those recorded when it was built."""


class CacheUnreliableError(UserError, OSError):
    """A cache still fails its check right after being rebuilt: its storage cannot be trusted."""


def file_digest(path: Path) -> str:
    """xxh3_128 of a file's bytes, read in 16 MiB chunks (no second copy in memory)."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while n := stream.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def meta_digest(meta: dict[str, Any]) -> str:
    """xxh3_128 of the metadata without its own checksum block (keys sorted)."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True).encode())


def seal(meta: dict[str, Any], array_path: Path) -> dict[str, Any]:
    """``meta`` with the checksums of itself and of the array file at ``array_path``."""
    checksum = {"algorithm": ALGORITHM, "array": file_digest(array_path)}
    checksum["meta"] = meta_digest(meta)
    return {**meta, "checksum": checksum}


def _identity(path: Path) -> tuple[str, int, int, int]:
    stat = os.stat(path)
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def verify(array_path: Path, meta_path: Path) -> dict[str, Any]:
    """The cache's metadata once its checksums match; :class:`CacheMismatchError` if not.

    Checked once per process per file: a file already verified here (same inode, size and
    modification time) is not read again.
    """
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise CacheMismatchError(f"its metadata {meta_path.name} is unreadable ({error})") from None
    checksum = meta.get("checksum") if isinstance(meta, dict) else None
    if not isinstance(checksum, dict) or checksum.get("algorithm") != ALGORITHM:
        raise CacheMismatchError("it has no checksum (written by an older version)")
    if meta_digest(meta) != checksum.get("meta"):
        raise CacheMismatchError(f"its metadata {meta_path.name} changed since it was built")
    identity = _identity(array_path)
    if identity in _verified:
        return meta
    if file_digest(array_path) != checksum.get("array"):
        raise CacheMismatchError("its pixels changed since it was built (checksum differs)")
    _verified.add(identity)
    return meta
