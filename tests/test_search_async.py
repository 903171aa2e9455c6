"""Asynchronous trials: with two slots a new trial starts as soon as either is free.

The search runs through the real sweeper and Hydra's joblib launcher (two worker
processes); its trials only sleep (``benchmarks/search_app.py``): trial 0 long, the
others short. Start and end times come from the job records, not from the test's clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

APP = REPO_ROOT / "benchmarks" / "search_app.py"


def _search(tmp_path: Path, asynchronous: bool) -> dict[int, dict]:
    sweep = tmp_path / ("async" if asynchronous else "sync")
    result = run_cli(
        [
            str(APP),
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.asynchronous={str(asynchronous).lower()}",
            "long_every=3",  # trial 0 long, trials 1 and 2 short
            "long_s=8",
            "short_s=0.2",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {n: json.loads((sweep / str(n) / "metrics.json").read_text()) for n in range(3)}


@pytest.mark.parametrize("asynchronous", [True, False], ids=["async", "batched"])
def test_a_free_slot_starts_the_next_trial_before_the_long_one_ends(
    tmp_path: Path, asynchronous: bool
) -> None:
    jobs = _search(tmp_path, asynchronous)
    assert all(job["status"] == "done" for job in jobs.values())
    long_trial, third = jobs[0], jobs[2]
    assert long_trial["ended_at"] - long_trial["started_at"] >= 8
    if asynchronous:
        # Slot 2 ran trial 1, then trial 2, while slot 1 still ran trial 0.
        assert third["started_at"] < long_trial["ended_at"]
        assert jobs[1]["ended_at"] <= third["started_at"]
    else:
        # Batches of two: trial 2 waits for the slowest of trials 0 and 1.
        assert third["started_at"] >= long_trial["ended_at"]
