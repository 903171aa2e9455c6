"""Atomic writes that a second writer cannot break: a unique temporary name, then a rename.

A fixed temporary name (``last.ckpt.tmp``, ``metrics.json.tmp``) is shared by every
process writing the same file: two of them (two resumes of one sweep, a SLURM requeue and
a manual resume) truncate each other's half-written bytes, or one renames the other's
file away and then fails on its own (``FileNotFoundError: last.ckpt.tmp -> last.ckpt``).
Here each write has its own temporary file, ``<name>.<pid>-<random>.tmp`` beside the
target (same file system, so the rename is atomic); readers see the old file or the new
one, never a mix, and the last rename wins.

A writer killed mid-write leaves its temporary file behind; :func:`clear_orphans` removes
them where one owner is known to hold the folder (``utils/job_lock.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

#: ``<name>.<pid>-<8 hex>.tmp``, and the fixed names of earlier versions.
ORPHAN_TMP = re.compile(r"(?:\.\d+-[0-9a-f]{8}\.tmp|\.ckpt\.tmp|\.link-tmp)$")


def unique_tmp(path: str | os.PathLike[str]) -> str:
    """A temporary name beside ``path`` that no other process (or call) uses."""
    return f"{os.fspath(path)}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def replace_with_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically; a failed write removes its temporary file."""
    tmp = unique_tmp(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)  # a partial file would only hold on to the space
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_with_bytes(path, text.encode("utf-8"))
    return path


def clear_orphans(folder: Path) -> list[Path]:
    """Remove the temporary files of killed writers directly in ``folder``.

    Only safe where no other writer is at work: the caller holds the folder's lock.
    """
    removed = []
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.is_file() and ORPHAN_TMP.search(path.name):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info(
            "Removed %d temporary file(s) of an interrupted write in %s: %s",
            len(removed),
            folder,
            ", ".join(p.name for p in removed),
        )
    return removed
