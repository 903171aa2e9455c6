"""Each job of a parallel local sweep gets its own GPUs, never all of them.

With ``hydra/launcher=local_parallel`` (joblib) every job process would otherwise see every
GPU and train on GPU 0 (Hydra #1331). The GPUs this machine shows (or ``gpu_pool.gpus``)
are cut into disjoint sets of ``gpu_pool.per_job`` (``trainer.devices``); each job process
claims a free *slot* (one set) through a lock file in the sweep folder and sets
``CUDA_VISIBLE_DEVICES`` to it before anything touches CUDA. joblib reuses its worker
processes and CUDA cannot change devices once started, so a worker keeps its slot for its
whole life: the lock is released by the operating system when the process exits.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from fracture_lit.errors import ConfigError
from fracture_lit.layout import SweepLayout

#: The slot this process holds: (lock folder, slot number, open lock file).
_HELD: tuple[str, int, Any] | None = None


def visible_gpus(configured: Any = None) -> list[str]:
    """The GPUs to share out: ``configured`` (a list), else ``CUDA_VISIBLE_DEVICES``, else
    every GPU the driver lists (none on a machine without one).

    Counted without torch: once CUDA has enumerated the devices, a process can no longer
    change which ones it sees.
    """
    if configured is not None:
        if isinstance(configured, str | int):
            configured = str(configured).split(",")
        return [str(gpu).strip() for gpu in configured if str(gpu).strip() != ""]
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    return [str(i) for i in range(_driver_gpu_count())]


def _driver_gpu_count() -> int:
    """GPUs as ``nvidia-smi -L`` lists them, else the ``/dev/nvidia<N>`` device files."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
            )
            if out.returncode == 0:
                return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.TimeoutExpired):
            pass
    return len([p for p in Path("/dev").glob("nvidia*") if p.name[6:].isdigit()])


def gpu_sets(gpus: list[str], per_job: int) -> list[list[str]]:
    """Disjoint sets of ``per_job`` GPUs, in order (leftover GPUs stay unused)."""
    if per_job < 1:
        raise ConfigError("gpu_pool.per_job", per_job, "must be at least 1")
    return [gpus[i : i + per_job] for i in range(0, len(gpus) - per_job + 1, per_job)]


def per_job_count(devices: Any, n_gpus: int, n_jobs: int) -> int:
    """GPUs one job trains on: an int or a list of ``trainer.devices``; for ``auto`` / -1,
    an equal share of the GPUs among the parallel jobs."""
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    return max(1, n_gpus // max(1, n_jobs))


def plan_slots(gpus: list[str], per_job: int, n_jobs: int) -> list[list[str]]:
    """The GPU sets of the slots; refuses more parallel jobs than there are sets."""
    sets = gpu_sets(gpus, per_job)
    if len(sets) < n_jobs:
        raise ConfigError(
            "hydra.launcher.n_jobs",
            n_jobs,
            f"{n_jobs} parallel jobs of {per_job} GPU(s) each need {n_jobs * per_job} GPUs "
            f"but {len(gpus)} are available ({','.join(gpus) or 'none'})",
            f"set hydra.launcher.n_jobs={max(1, len(sets))} or give each job fewer "
            "(trainer.devices / gpu_pool.per_job)",
        )
    return sets


def claim_slot(lock_dir: Path, n_slots: int, wait_s: float = 600.0) -> int:
    """A slot no other live process holds (this process's own slot if it has one)."""
    global _HELD
    if _HELD is not None and _HELD[0] == str(lock_dir) and _HELD[1] < n_slots:
        return _HELD[1]
    release_slot()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(n_slots):
            handle = (lock_dir / f"slot_{slot}.lock").open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _HELD = (str(lock_dir), slot, handle)
            return slot
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot in {lock_dir} after {wait_s:.0f}s")
        time.sleep(0.5)


def release_slot() -> None:
    global _HELD
    if _HELD is not None:
        _HELD[2].close()
        _HELD = None


def _parallel_launcher() -> tuple[str, int] | None:
    """(sweep folder, parallel jobs) when this is a job of a local parallel (joblib) sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    launcher = hydra_cfg.launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return None
    n_jobs = int(launcher.get("n_jobs") or 1)
    if n_jobs < 1:
        n_jobs = os.cpu_count() or 1
    return str(hydra_cfg.sweep.dir), n_jobs


def pin_local_gpus(cfg: Any) -> dict[str, Any] | None:
    """In a parallel local sweep, give this job process its own GPUs.

    Returns what was chosen (recorded in the job's metrics.json), or None when there is
    nothing to pin (not such a sweep, or no GPU).
    """
    sweep = _parallel_launcher()
    if sweep is None:
        return None
    sweep_dir, n_jobs = sweep
    pool = cfg.get("gpu_pool") or {}
    gpus = visible_gpus(pool.get("gpus"))
    if _HELD is not None and "FRACTURE_LIT_GPU_POOL" in os.environ:
        # Pinned by an earlier job of this process: the pool is what it was then.
        gpus = os.environ["FRACTURE_LIT_GPU_POOL"].split(",")
    if not gpus:
        return None
    sets = plan_slots(gpus, per_job_count(pool.get("per_job"), len(gpus), n_jobs), n_jobs)
    slot = claim_slot(SweepLayout(sweep_dir).gpu_slots, len(sets))
    os.environ["FRACTURE_LIT_GPU_POOL"] = ",".join(gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(sets[slot])
    return {
        "slot": slot,
        "cuda_visible_devices": os.environ["CUDA_VISIBLE_DEVICES"],
        "pid": os.getpid(),
    }
