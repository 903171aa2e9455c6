"""Exact resume: real training processes killed (SIGKILL) or preempted (SIGTERM/SIGUSR1)
after a checkpoint, started again in the same folder, end as if never interrupted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from tests.resume_helpers import (
    RESUMABLE,
    assert_same_results,
    checkpoint_epoch,
    kill_after_checkpoint,
    metrics,
    run_to_end,
    start,
    train_command,
    wait_for,
)


def _args(synthetic_root: Path, run: Path, *extra: str) -> list[str]:
    return train_command(*RESUMABLE, f"data.root={synthetic_root}", f"hydra.run.dir={run}", *extra)


def test_killed_run_resumes_to_the_same_metrics(tmp_path: Path, synthetic_root: Path) -> None:
    """kill -9 after the epoch-1 checkpoint; the same command resumes it (resume=auto)."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(_args(synthetic_root, reference), tmp_path)
    epoch = kill_after_checkpoint(
        _args(synthetic_root, killed),
        tmp_path,
        killed / "checkpoints" / "last.ckpt",
        epoch=1,
        log=tmp_path / "killed.log",
    )
    assert not (killed / "metrics.json").exists()
    assert epoch < 3  # killed mid-run, not after the last epoch

    result = run_to_end(_args(synthetic_root, killed), tmp_path)
    assert "Resuming from" in (killed / "train.log").read_text() + result.stderr

    # Same metrics, best checkpoint and csv/metrics.csv (the epochs before the kill kept).
    assert_same_results(reference, killed)
    names = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-")]
    assert not list((killed / "checkpoints").glob("*.tmp"))
    assert checkpoint_epoch(killed / "checkpoints" / "last.ckpt") == 3


def test_done_run_is_not_rerun(tmp_path: Path, synthetic_root: Path) -> None:
    run = tmp_path / "run"
    args = _args(synthetic_root, run, "trainer.max_epochs=1", "test=false")
    run_to_end(args, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    record = metrics(run)
    result = run_to_end(args, tmp_path)
    assert "is done (metrics.json): kept as it is, not rerun" in result.stderr + result.stdout
    assert metrics(run) == record
    for path in (
        run / "metrics.json",
        run / "checkpoints" / "last.ckpt",
        run / "csv" / "metrics.csv",
    ):
        assert path.stat().st_mtime_ns == before[path]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preempted_mid_epoch_resumes_to_the_same_metrics(
    tmp_path: Path, synthetic_root: Path, signum: int
) -> None:
    """The preemption signal mid-epoch writes last.ckpt after the current batch and exits
    128 + signal; started again it continues that epoch, with two DataLoader workers
    and weighted sampling (their state resumes too)."""
    extra = ("data.num_workers=2", "data.balance=sampler")
    reference, preempted = tmp_path / "reference", tmp_path / "preempted"
    run_to_end(_args(synthetic_root, reference, *extra), tmp_path)

    log = tmp_path / "preempted.log"
    process = start(_args(synthetic_root, preempted, *extra), tmp_path, log)
    last = preempted / "checkpoints" / "last.ckpt"
    wait_for(process, lambda: checkpoint_epoch(last) == 0, what="the epoch-0 checkpoint")
    os.kill(process.pid, signum)
    assert process.wait(timeout=300) == 128 + signum, log.read_text()[-3000:]
    record = metrics(preempted)
    assert record["status"] == "preempted" and record["resume_from"] == str(last)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    position = checkpoint["SyntheticDataModule"]["sampling"]
    assert "rng" in checkpoint["callbacks"]["ResumableTraining"] or position["batches_done"] == 0

    run_to_end(_args(synthetic_root, preempted, *extra), tmp_path)
    assert_same_results(reference, preempted)
