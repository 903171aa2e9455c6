"""A decoded-image cache proves itself before use (data/cache_check.py): damaged bytes are
found, named and rebuilt; a cache that fails again right after its rebuild is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fracture_lit.data import cache_check
from fracture_lit.data.cache import build_cache
from fracture_lit.data.cache_check import CacheUnreliableError
from tests.conftest import TINY
from tests.resume_helpers import environment
from tests.test_faults import write_pngs


def _flip(path: Path, offset: int | None = None, n: int = 4096) -> None:
    """Overwrite ``n`` bytes in the middle of ``path`` with their complement."""
    size = path.stat().st_size
    start = size // 2 if offset is None else offset
    with path.open("r+b") as stream:
        stream.seek(start)
        data = stream.read(n)
        stream.seek(start)
        stream.write(bytes(255 - b for b in data))


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    return [str(p) for p in write_pngs(tmp_path / "img", 6, size=40)]


def test_flipped_bytes_are_found_named_and_rebuilt(
    tmp_path: Path, images: list[str], caplog
) -> None:
    cache_dir = tmp_path / "cache"
    clean = build_cache(images, size=32, cache_dir=cache_dir)
    reference = np.array(clean.array)
    with caplog.at_level("INFO"):
        build_cache(images, size=32, cache_dir=cache_dir)
    assert "checksum verified" in caplog.text
    caplog.clear()

    _flip(clean.path, n=64)
    assert not np.array_equal(np.load(clean.path), reference)  # the damage is real
    with caplog.at_level("INFO"):
        rebuilt = build_cache(images, size=32, cache_dir=cache_dir)
    lines = [r.getMessage() for r in caplog.records if "failed its check" in r.getMessage()]
    assert len(lines) == 1 and str(clean.path) in lines[0] and "pixels changed" in lines[0]
    assert "Decoding 6 images once" in caplog.text
    assert np.array_equal(rebuilt.array, reference)


def test_edited_metadata_and_a_cache_without_checksum_are_rebuilt(
    tmp_path: Path, images: list[str], caplog
) -> None:
    cache_dir = tmp_path / "cache"
    first = build_cache(images, size=32, cache_dir=cache_dir)
    meta_path = first.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["bad"] = [0]  # a row dropped from training by a stray edit
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level("INFO"):
        again = build_cache(images, size=32, cache_dir=cache_dir)
    assert "its metadata" in caplog.text and again.bad == []

    caplog.clear()
    del meta["checksum"]  # as an older version wrote it
    meta_path.write_text(json.dumps({**meta, "bad": []}))
    with caplog.at_level("INFO"):
        build_cache(images, size=32, cache_dir=cache_dir)
    assert "has no checksum (written by an older version); rebuilding it" in caplog.text
    assert "checksum" in json.loads(meta_path.read_text())


def test_a_cache_that_fails_again_after_its_rebuild_is_refused(
    tmp_path: Path, images: list[str], monkeypatch
) -> None:
    """Storage that returns other bytes on every read (simulated: each read of the array
    file digests differently): one rebuild, then one clear error, not a cache in use."""
    cache_dir = tmp_path / "cache"
    build_cache(images, size=32, cache_dir=cache_dir)
    reads = iter(range(1_000_000))
    monkeypatch.setattr(cache_check, "file_digest", lambda path: f"read-{next(reads)}")
    cache_check._verified.clear()
    with pytest.raises(CacheUnreliableError) as info:
        build_cache(images, size=32, cache_dir=cache_dir)
    line = info.value.one_line()
    assert "failed its check again right after being rebuilt" in line
    assert "data.cache_dir=" in line and "data.cache=false" in line


def test_a_cache_is_verified_once_per_process(tmp_path: Path, images: list[str]) -> None:
    cache_dir = tmp_path / "cache"
    built = build_cache(images, size=32, cache_dir=cache_dir)
    code = (
        "import sys\n"
        "from fracture_lit.data import cache_check\n"
        "from fracture_lit.data.cache import build_cache\n"
        "reads = []\n"
        "digest = cache_check.file_digest\n"
        "cache_check.file_digest = lambda p: reads.append(p) or digest(p)\n"
        "for _ in range(3):\n"
        f"    build_cache({images!r}, size=32, cache_dir={str(cache_dir)!r})\n"
        "print(len(reads))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1", out.stderr[-2000:]
    assert built.path.exists()


def _train(root: Path, run: Path, synthetic_root: Path) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "fracture_lit.train",
        *TINY,
        f"data.root={synthetic_root}",
        f"paths.data_dir={root / 'data'}",
        "~callbacks.review",
        "test=false",
        f"hydra.run.dir={run}",
    ]
    result = subprocess.run(args, cwd=root, env=environment(root), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.timeout(600)
def test_run_on_a_damaged_cache_rebuilds_it_and_ends_as_on_a_clean_one(
    tmp_path: Path, synthetic_root: Path
) -> None:
    clean, damaged = tmp_path / "clean", tmp_path / "damaged"
    _train(tmp_path, clean, synthetic_root)
    (array,) = (tmp_path / "data" / ".cache").glob("*.npy")
    _flip(array)  # 4 KiB in the middle, as in the issue
    result = _train(tmp_path, damaged, synthetic_root)
    log = (damaged / "train.log").read_text() + result.stdout + result.stderr
    assert f"Decoded-image cache {array} failed its check" in log
    assert "Decoding" in log  # rebuilt
    first = json.loads((clean / "metrics.json").read_text())
    second = json.loads((damaged / "metrics.json").read_text())
    assert second["status"] == "done"
    assert first["val"]["metrics"] == second["val"]["metrics"]
