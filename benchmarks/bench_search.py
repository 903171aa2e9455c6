"""Search benchmark: a 12-trial Optuna search with uneven trials, batched vs asynchronous.

``python benchmarks/bench_search.py --out bench_results/search.json`` (part of
``make bench``).

The same search runs twice with the same two slots (Hydra's joblib launcher, two worker
processes) through fracture_lit's sweeper: once in batches (``asynchronous=false``, as
Hydra's Optuna sweeper does: a batch waits for its slowest trial), once asynchronously (a
slot takes the next trial as soon as its own ends). The trials only sleep
(``benchmarks/search_app.py``): every 4th trial 6 s, the others 1 s, so their lengths
are uneven by construction and identical in both modes, and the difference is the
scheduling alone. Wall time is read from the job records: first trial start to last
trial end (the sweeper's start-up is the same in both modes and left out; the whole
command's time is written too). The modes alternate over ``--repeats``; the ratio is
batched / asynchronous of the medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, median, report, table  # noqa: E402

APP = Path(__file__).resolve().parent / "search_app.py"
MODES = {"batched": False, "asynchronous": True}


def ideal_span(durations: list[float], slots: int, asynchronous: bool) -> float:
    """The span with no overhead at all: batches of ``slots`` wait for their longest
    trial; asynchronous slots each take the next trial when free (list scheduling)."""
    if not asynchronous:
        return sum(max(durations[i : i + slots]) for i in range(0, len(durations), slots))
    free = [0.0] * slots
    for duration in durations:
        slot = free.index(min(free))
        free[slot] += duration
    return max(free)


def run_search(folder: Path, asynchronous: bool, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(APP),
        f"hydra.sweep.dir={folder}",
        f"hydra.sweeper.n_trials={args.trials}",
        f"hydra.sweeper.n_jobs={args.slots}",
        f"hydra.launcher.n_jobs={args.slots}",
        f"hydra.sweeper.asynchronous={str(asynchronous).lower()}",
        f"long_s={args.long_s}",
        f"short_s={args.short_s}",
        f"long_every={args.long_every}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    command_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the search failed:\n{proc.stderr[-3000:]}")
    records = [
        json.loads((folder / str(n) / "metrics.json").read_text()) for n in range(args.trials)
    ]
    first = min(r["started_at"] for r in records)
    return {
        "span_s": max(r["ended_at"] for r in records) - first,
        "command_s": command_s,
        "trials": [
            {"trial": n, "start_s": r["started_at"] - first, "end_s": r["ended_at"] - first}
            for n, r in enumerate(records)
        ],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    durations = [
        args.long_s if n % args.long_every == 0 else args.short_s for n in range(args.trials)
    ]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="fl-bench-search-") as tmp:
        for repeat in range(args.repeats):
            for mode, asynchronous in MODES.items():
                runs[mode].append(run_search(Path(tmp) / f"{mode}-{repeat}", asynchronous, args))
    summary = {
        mode: {
            "span_s": median([r["span_s"] for r in results]),
            "command_s": median([r["command_s"] for r in results]),
            "ideal_span_s": ideal_span(durations, args.slots, MODES[mode]),
        }
        for mode, results in runs.items()
    }
    return {
        "benchmark": "search",
        "summary": summary,
        "ratio_batched_over_async": summary["batched"]["span_s"]
        / summary["asynchronous"]["span_s"],
        "ratio_ideal": summary["batched"]["ideal_span_s"] / summary["asynchronous"]["ideal_span_s"],
        "runs": runs,
        "settings": {
            "trials": args.trials,
            "slots": args.slots,
            "trial_seconds": durations,
            "repeats": args.repeats,
        },
        "machine": machine(),
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [mode, f"{s['span_s']:.1f}", f"{s['ideal_span_s']:.1f}", f"{s['command_s']:.1f}"]
        for mode, s in result["summary"].items()
    ]
    settings = result["settings"]
    print(
        f"\n{settings['trials']}-trial search, {settings['slots']} slots, trials of "
        f"{sorted(set(settings['trial_seconds']))} s (median of {settings['repeats']}):"
    )
    print(table(rows, ["mode", "trials span s", "ideal span s", "whole command s"]))
    print(
        f"batched / asynchronous: {result['ratio_batched_over_async']:.2f} "
        f"(ideal {result['ratio_ideal']:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/search.json"))
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--long-s", type=float, default=6.0)
    p.add_argument("--short-s", type=float, default=1.0)
    p.add_argument("--long-every", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
