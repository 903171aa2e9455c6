"""GPU pinning of parallel local sweep jobs, checked on CPU by what each job records."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from fracture_lit.errors import ConfigError
from fracture_lit.utils import gpu_pool
from tests.conftest import TINY, run_cli


def test_gpu_sets_are_disjoint_sets_of_k() -> None:
    gpus = ["0", "1", "2", "3", "4"]
    assert gpu_pool.gpu_sets(gpus, 1) == [["0"], ["1"], ["2"], ["3"], ["4"]]
    assert gpu_pool.gpu_sets(gpus, 2) == [["0", "1"], ["2", "3"]]  # GPU 4 left over
    assert gpu_pool.plan_slots(["4", "5", "6", "7"], 2, 2) == [["4", "5"], ["6", "7"]]


def test_more_parallel_jobs_than_gpu_sets_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        gpu_pool.plan_slots(["0", "1", "2", "3"], 2, 3)
    message = str(raised.value)
    assert message.startswith("hydra.launcher.n_jobs=3:")
    assert "need 6 GPUs but 4 are available" in message
    assert "hydra.launcher.n_jobs=2" in message


def test_per_job_follows_trainer_devices() -> None:
    assert gpu_pool.per_job_count(2, 8, 2) == 2
    assert gpu_pool.per_job_count([0, 1, 2], 8, 2) == 3
    assert gpu_pool.per_job_count("auto", 8, 2) == 4  # an equal share
    assert gpu_pool.per_job_count(-1, 8, 4) == 2


def test_visible_gpus_reads_the_config_then_the_environment(monkeypatch) -> None:
    assert gpu_pool.visible_gpus([0, 1]) == ["0", "1"]
    assert gpu_pool.visible_gpus("2,3") == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert gpu_pool.visible_gpus(None) == ["4", "5", "6"]


def _hold_slot(lock_dir: str, ready, done) -> None:
    gpu_pool.claim_slot(Path(lock_dir), 2)
    ready.set()
    done.wait(30)


def test_a_slot_held_by_a_live_process_is_not_given_twice(tmp_path) -> None:
    """Real OS locks: another process holds slot 0, so this one gets slot 1; once that
    process exits its slot is free again."""
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_slot, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        gpu_pool.release_slot()
        assert gpu_pool.claim_slot(tmp_path, 2) == 1
        with pytest.raises(TimeoutError):
            gpu_pool.release_slot()
            gpu_pool.claim_slot(tmp_path, 1, wait_s=1)
    finally:
        done.set()
        holder.join(30)
    assert gpu_pool.claim_slot(tmp_path, 1, wait_s=5) == 0
    gpu_pool.release_slot()


def test_parallel_sweep_jobs_record_disjoint_gpus(tmp_path, synthetic_root) -> None:
    """A real joblib sweep, 3 jobs on 2 worker processes, 4 simulated GPUs, 2 per job: each
    job records its CUDA_VISIBLE_DEVICES; processes alive together never share a GPU."""
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            f"data.root={synthetic_root}",
            *TINY,
            "test=false",
            "hydra/launcher=local_parallel",
            "hydra.launcher.n_jobs=2",
            "seed=1,2,3",
            "gpu_pool.gpus=[0,1,2,3]",
            "gpu_pool.per_job=2",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    [sweep] = list((tmp_path / "multirun_outputs").glob("*/*"))
    pinned = [json.loads((sweep / n / "metrics.json").read_text())["gpus"] for n in "012"]
    assert {p["cuda_visible_devices"] for p in pinned} <= {"0,1", "2,3"}
    by_pid: dict[int, set[str]] = {}
    for p in pinned:
        by_pid.setdefault(p["pid"], set()).add(p["cuda_visible_devices"])
    assert all(len(sets) == 1 for sets in by_pid.values()), by_pid  # a worker keeps its GPUs
    sets = [next(iter(s)) for s in by_pid.values()]
    assert len(sets) == len(set(sets)), by_pid  # two workers never share one


def test_a_single_run_is_not_pinned(tmp_path) -> None:
    """Outside a parallel sweep nothing changes CUDA_VISIBLE_DEVICES."""
    code = (
        "from fracture_lit.utils.gpu_pool import pin_local_gpus;"
        "print(pin_local_gpus({'gpu_pool': {'gpus': [0, 1]}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
