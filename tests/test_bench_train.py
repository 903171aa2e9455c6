"""The train-step benchmark's own machinery, on a tiny synthetic task: both sides run in
lockstep, the product's real Trainer writes its checkpoints, and the ratios are taken
over the epochs the docstring says."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def test_bench_train_times_both_sides_epoch_by_epoch(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    epochs = 4
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "bench_train.py"),
            "--datasets", "synthetic",
            "--backbones", "resnet18",
            "--epochs", str(epochs),
            "--repeats", "1",
            "--image-size", "32",
            "--batch-size", "16",
            "--synthetic-per-class", "16",
            "--out", str(out),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    (result,) = json.loads(out.read_text())["results"]
    (plain,), (fracture_lit,) = result["epoch_s"]["plain"], result["epoch_s"]["fracture_lit"]
    # A plain epoch before each fracture_lit epoch; the last fracture_lit one is not timed.
    assert len(plain) == epochs and len(fracture_lit) == epochs - 1
    # Epoch 0 is left out; each later one is divided by the plain epochs around it.
    expected = [fracture_lit[i] / ((plain[i] + plain[i + 1]) / 2) for i in (1, 2)]
    assert result["ratios"] == expected
    assert result["ratio"] == pytest.approx(sum(expected) / 2)  # their median
    assert all(math.isfinite(r) and r > 0 for r in expected)
    assert 0.0 <= result["val_auroc"]["fracture_lit"] <= 1.0
    assert 0.0 <= result["val_auroc"]["plain"] <= 1.0
