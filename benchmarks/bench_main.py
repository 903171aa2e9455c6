"""Main job benchmark: ``python -m fracture_lit.train`` with its defaults vs the old ones.

``python benchmarks/bench_main.py --out bench_results/main.json`` (part of ``make bench``).

Each side is the real entry point in a subprocess, the whole process timed from the
command to its exit (imports, data, fit, evaluation of the best checkpoint on val and test,
review with Grad-CAM, report.html, the final table); the sides run in turns (old, new, new,
old, ...) so a change in the machine's load hits both. Per job it records:

* ``process_s``: the command to the process's exit (what a user waits);
* ``startup_s``: the command to the first training batch (a callback of
  ``startup_stamp.py`` writes the moment), split into ``import_s`` (the command to the job's
  first log line) and the set-up after it (data, model, Trainer, sanity check);
* ``wall_time_s``: the job's own figure from ``metrics.json`` (after imports);
* the best checkpoint's val and test AUROC.

The data of both sides is rendered and cached by a warm-up job first (a first run renders
it once: ``--cold`` also times one new-defaults job into an empty data folder).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, median, report, table  # noqa: E402

#: The defaults before issue 26 (resnet18, 2,400 images rendered at 128 px and trained at
#: 96 px, batch 64, full-strength augmentation, 7 epochs), given as overrides on today's code.
OLD_DEFAULTS = [
    "model=resnet18",
    "data.n_per_class=1200",
    "data.render_size=128",
    "data.image_size=96",
    "data.batch_size=64",
    "data.augment_strength=1.0",
    "trainer.max_epochs=7",
]
SIDES = {"old defaults": OLD_DEFAULTS, "defaults": []}
#: Hydra's log line prefix: ``[2026-12-06 12:08:37,288][logger][INFO] - ...``.
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
#: Makes the first-batch callback importable in the job (this folder on PYTHONPATH).
STAMP = "+callbacks.startup_stamp._target_=startup_stamp.FirstBatchStamp"


def first_log_time(log_file: Path) -> float | None:
    """The time of the job's first log line (its start, right after the imports)."""
    for line in log_file.read_text().splitlines() if log_file.is_file() else []:
        match = LOG_TIME.match(line)
        if match:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def run_job(overrides: list[str], run_dir: Path, data_dir: Path) -> dict[str, Any]:
    """One main job in a subprocess: its timings and AUROCs."""
    here = str(Path(__file__).resolve().parent)
    env = {
        **os.environ,
        "FRACTURE_LIT_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), here]),
    }
    stamp = run_dir.parent / f"{run_dir.name}.first_batch"
    command = [
        sys.executable,
        "-m",
        "fracture_lit.train",
        *overrides,
        STAMP,
        f"+callbacks.startup_stamp.path={stamp}",
        f"hydra.run.dir={run_dir}",
    ]
    load = os.getloadavg()[0]
    started = time.time()
    proc = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    process_s = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first_log = first_log_time(run_dir / "train.log")
    first_batch = float(stamp.read_text()) if stamp.is_file() else None
    return {
        "process_s": process_s,
        "startup_s": first_batch - started if first_batch else None,
        "import_s": first_log - started if first_log else None,
        "wall_time_s": float(metrics["wall_time_s"]),
        "epochs": metrics.get("epochs"),
        "val_auroc": float(metrics["val"]["metrics"]["val/auroc"]),
        "test_auroc": float(metrics.get("test", {}).get("metrics", {}).get("test/auroc", "nan")),
        "load_avg_1m": [load, os.getloadavg()[0]],
    }


def warm_up(overrides: list[str], run_dir: Path, data_dir: Path) -> None:
    """Render and cache a side's data with a one-batch job (not timed)."""
    quick = ["trainer.max_epochs=1", "+trainer.limit_train_batches=1"]
    quick += ["+trainer.limit_val_batches=1", "test=false", "~callbacks.review"]
    run_job([*overrides, *quick], run_dir, data_dir)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return median([r[key] for r in runs if r.get(key) is not None])

    keys = ("process_s", "startup_s", "import_s", "wall_time_s", "val_auroc", "test_auroc")
    return {
        **{key: med(key) for key in keys},
        "val_auroc_min": min(r["val_auroc"] for r in runs),
        "runs": runs,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = list(SIDES)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    result: dict[str, Any] = {"benchmark": "main_job", "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="fl-bench-main-") as tmp:
        work = Path(tmp)
        data_dir = Path(args.data_dir or work / "data")
        if args.cold:
            cold = run_job(
                [f"seed={args.seeds[0]}", *args.overrides], work / "cold", work / "cold-data"
            )
            result["cold_first_run"] = cold
            print(f"  defaults, first run (renders its data): {cold['process_s']:.1f} s")
        for i, name in enumerate(names):
            warm_up([*SIDES[name], *args.overrides], work / f"warmup-{i}", data_dir)
        for repeat in range(args.repeats):
            for name in names if repeat % 2 == 0 else names[::-1]:
                for seed in args.seeds:
                    run_dir = work / f"{names.index(name)}-{seed}-{repeat}"
                    out = run_job(
                        [*SIDES[name], f"seed={seed}", *args.overrides], run_dir, data_dir
                    )
                    out["seed"] = seed
                    runs[name].append(out)
                    print(f"  {name} seed={seed}: {out['process_s']:.1f} s (start-up "
                          f"{out['startup_s']:.1f} s), val AUROC {out['val_auroc']:.4f}, "
                          f"load {out['load_avg_1m'][0]:.1f}")  # fmt: skip
    sides = {name: summarise(rs) for name, rs in runs.items()}
    old, new = (sides[n]["process_s"] for n in names)
    return {
        **result,
        "command": "python -m fracture_lit.train " + " ".join(args.overrides),
        "old_defaults": OLD_DEFAULTS,
        "seeds": args.seeds,
        "repeats": args.repeats,
        "sides": sides,
        "speedup": old / new,
    }


def print_table(result: dict[str, Any]) -> None:
    header = ["settings", "process s", "start-up s", "imports s", "job wall s", "val AUROC",
              "val AUROC (min)", "test AUROC"]  # fmt: skip
    rows = [
        [
            name,
            f"{s['process_s']:.1f}",
            f"{s['startup_s']:.1f}",
            f"{s['import_s']:.1f}",
            f"{s['wall_time_s']:.1f}",
            f"{s['val_auroc']:.4f}",
            f"{s['val_auroc_min']:.4f}",
            f"{s['test_auroc']:.4f}",
        ]  # fmt: skip
        for name, s in result["sides"].items()
    ]
    print(f"\nMain job ({result['command'].strip()}), seeds {result['seeds']}, medians:")
    print(table(rows, header))
    print(f"defaults vs old: {result['speedup']:.2f}x faster (whole process)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/main.json"))
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=None, help="reuse a rendered data folder")
    p.add_argument("--cold", action="store_true", help="also time a first run (renders data)")
    p.add_argument("overrides", nargs="*", help="extra overrides for both sides")
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
