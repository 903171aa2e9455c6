"""Sweep benchmark: the share of each job's wall time spent on data, jobs 2..N.

``python benchmarks/bench_sweep.py --out bench_results/sweep.json`` (part of ``make bench``).

A real multirun (``python -m fracture_lit.train -m seed=0,1,...`` on the FracAtlas
sample, Hydra's basic launcher: jobs one after another in one process) where the
datamodule's ``setup`` (file hashing, duplicate grouping, splitting, decode cache) is timed
by wrapping it, without changing what it does. Job 1 pays for hashing and decoding; jobs
2..N should find both caches warm, so their data share is what a sweep costs per job.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, median, report, shared_data_dir, table  # noqa: E402

# The timing wrapper, installed in the sweep's own process before Hydra starts.
TIMED_SWEEP = """
import functools, json, sys, time
from fracture_lit.data.base import FractureDataModule
log_path = sys.argv.pop(1)
original = FractureDataModule.setup

@functools.wraps(original)
def timed(self, stage=None):
    start = time.perf_counter()
    try:
        return original(self, stage)
    finally:
        with open(log_path, "a") as f:
            f.write(json.dumps({"stage": stage, "s": time.perf_counter() - start}) + "\\n")

FractureDataModule.setup = timed
from fracture_lit.train import main
sys.argv[0] = "fracture_lit.train"
main()
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    import os
    import subprocess

    fracatlas = shared_data_dir() / "FracAtlas"
    if not fracatlas.is_dir():
        print(f"skipping the sweep benchmark: no FracAtlas sample under {shared_data_dir()}")
        return {"benchmark": "sweep", "skipped": True, "reason": f"no {fracatlas}"}
    with tempfile.TemporaryDirectory(prefix="fl-bench-sweep-") as tmp:
        timings = Path(tmp) / "setup.jsonl"
        sweep_dir = Path(tmp) / "sweep"
        seeds = ",".join(str(s) for s in range(args.jobs))
        command = [
            sys.executable,
            "-c",
            TIMED_SWEEP,
            str(timings),
            "-m",
            f"seed={seeds}",
            "data=fracatlas",
            f"data.root={fracatlas}",
            f"data.image_size={args.image_size}",
            f"data.cache_dir={Path(tmp) / 'cache'}",
            f"trainer.max_epochs={args.epochs}",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the sweep failed:\n{proc.stderr[-3000:]}")
        setups = [json.loads(line) for line in timings.read_text().splitlines()]
        walls = [
            json.loads((sweep_dir / str(i) / "metrics.json").read_text())["wall_time_s"]
            for i in range(args.jobs)
        ]
    # Every job sets its datamodule up for fit, and again for validate and test.
    per_job = len(setups) // args.jobs
    jobs = []
    for i, wall in enumerate(walls):
        data_s = sum(s["s"] for s in setups[i * per_job : (i + 1) * per_job])
        jobs.append({"job": i + 1, "wall_time_s": wall, "data_s": data_s, "share": data_s / wall})
    later = jobs[1:]
    return {
        "benchmark": "sweep",
        "jobs": jobs,
        "first_job_data_share": jobs[0]["share"],
        "later_jobs_data_share": median([j["share"] for j in later]),
        "later_jobs_data_s": median([j["data_s"] for j in later]),
        "settings": {"epochs": args.epochs, "image_size": args.image_size, "jobs": args.jobs},
        "machine": machine(),
    }


def print_table(result: dict[str, Any]) -> None:
    if result.get("skipped"):
        return
    rows = [
        [str(j["job"]), f"{j['wall_time_s']:.1f}", f"{j['data_s']:.2f}", f"{100 * j['share']:.1f}%"]
        for j in result["jobs"]
    ]
    print("\nSweep on the FracAtlas sample (data = datamodule setup: hashing, splits, cache):")
    print(table(rows, ["job", "wall s", "data s", "data share"]))
    print(f"jobs 2..N: median data share {100 * result['later_jobs_data_share']:.1f}%")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/sweep.json"))
    p.add_argument("--jobs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--image-size", type=int, default=128)
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
