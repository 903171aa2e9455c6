"""Main job benchmark: ``python -m fracture_lit.train`` with its defaults vs the old ones.

``python benchmarks/bench_main.py --out bench_results/main.json`` (part of ``make bench``).

The old defaults were 3 input channels, fp32 everywhere and NCHW on CPU (``model.in_chans=3
trainer.precision=32-true model.channels_last=false``); the new ones are ``in_chans`` 1 for
greyscale from scratch, ``precision=auto`` (bf16 on CPUs with AMX / AVX-512 BF16, fp32 on
others) and channels_last on every device. Each side
is the real entry point in a subprocess, run in turns (old, new, new, old, ...); the wall
time is the job's own ``wall_time_s`` (data, fit, evaluation, review, report) and the
AUROC the best checkpoint's on validation, both read from its ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, median, table, write_json  # noqa: E402

SIDES = {
    "old defaults (3 channels, fp32, NCHW on CPU)": [
        "model.in_chans=3",
        "trainer.precision=32-true",
        "model.channels_last=false",
    ],
    "defaults": [],
}


def run_job(overrides: list[str], run_dir: Path, data_dir: Path) -> dict[str, Any]:
    """One main job in a subprocess; its metrics.json plus the process's wall time."""
    env = {**os.environ, "FRACTURE_LIT_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "fracture_lit.train",
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    process_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "process_s": process_s,
        "wall_time_s": float(metrics["wall_time_s"]),
        "val_auroc": float(metrics["val"]["metrics"]["val/auroc"]),
        "test_auroc": float(metrics.get("test", {}).get("metrics", {}).get("test/auroc", "nan")),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = list(SIDES)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="fl-bench-main-") as tmp:
        data_dir = Path(args.data_dir or Path(tmp) / "data")
        # The synthetic data is rendered once and cached; not part of any timed job.
        run_job(["trainer.max_epochs=1", "test=false"], Path(tmp) / "warmup", data_dir)
        for repeat in range(args.repeats):
            order = names if repeat % 2 == 0 else names[::-1]
            for name in order:
                for seed in args.seeds:
                    out = run_job(
                        [*SIDES[name], f"seed={seed}", *args.overrides],
                        Path(tmp) / f"{len(runs[name])}-{seed}-{names.index(name)}",
                        data_dir,
                    )
                    out["seed"] = seed
                    runs[name].append(out)
                    print(f"  {name} seed={seed}: {out['wall_time_s']:.1f} s, "
                          f"val AUROC {out['val_auroc']:.4f}")  # fmt: skip
    summary = {
        name: {
            "wall_time_s": median([r["wall_time_s"] for r in rs]),
            "val_auroc": median([r["val_auroc"] for r in rs]),
            "val_auroc_min": min(r["val_auroc"] for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    old, new = (summary[n]["wall_time_s"] for n in names)
    return {
        "benchmark": "main_job",
        "command": "python -m fracture_lit.train " + " ".join(args.overrides),
        "machine": machine(),
        "seeds": args.seeds,
        "repeats": args.repeats,
        "sides": summary,
        "speedup": old / new,
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [name, f"{s['wall_time_s']:.1f}", f"{s['val_auroc']:.4f}", f"{s['val_auroc_min']:.4f}"]
        for name, s in result["sides"].items()
    ]
    print(f"\nMain job ({result['command'].strip()}), seeds {result['seeds']}:")
    print(table(rows, ["settings", "wall s (median)", "val AUROC (median)", "val AUROC (min)"]))
    print(f"defaults vs old: {result['speedup']:.2f}x faster")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/main.json"))
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=None, help="reuse a rendered data folder")
    p.add_argument("overrides", nargs="*", help="extra overrides for both sides")
    args = p.parse_args(argv)
    result = run(args)
    write_json(result, args.out)
    print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
