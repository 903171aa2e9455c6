"""The precision benchmark's machinery, tiny: fp32 and bf16 blocks alternate, each bf16
block is set against the fp32 blocks either side, and the CPU and auto's choice are
recorded beside the figures. Also the GPU script's ``--dry`` CPU path, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fracture_lit.utils.precision import choose_precision, cpu_model
from tests.conftest import REPO_ROOT


def test_bench_precision_alternates_fp32_and_bf16_blocks(tmp_path: Path) -> None:
    out = tmp_path / "precision.json"
    subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "benchmarks" / "bench_precision.py"),
            "--image-size", "32", "--batch-size", "4", "--steps", "1", "--blocks", "2",
            "--out", str(out),
        ],
        check=True, cwd=tmp_path, capture_output=True, timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    fp32, bf16 = result["step_s"]["fp32"], result["step_s"]["bf16"]
    assert len(fp32) == 3 and len(bf16) == 2  # fp32, bf16, fp32, bf16, fp32
    want = [b / ((fp32[i] + fp32[i + 1]) / 2) for i, b in enumerate(bf16)]
    assert result["bf16_over_fp32"]["per_block"] == pytest.approx(want)
    ratio = result["bf16_over_fp32"]
    assert min(want) <= ratio["median"] <= max(want)
    assert result["cpu_model"] == cpu_model()
    assert set(result["cpu_flags"]) >= {"amx_bf16", "avx512_bf16"}
    assert result["auto"] == choose_precision("auto", accelerator="cpu").record()


@pytest.mark.slow
def test_bench_gpu_dry_runs_every_path_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu.py"), "--dry", "--out", str(out)],
        check=True, cwd=tmp_path, capture_output=True, timeout=900,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["dry_run_on_cpu"] and result["standalone"] and result["fracture_lit"]
    consistency = result["scoring_consistency"]
    assert consistency["precision"]["train"] == "bf16-mixed"
    assert consistency["precision"]["score"] == "32-true"
    assert consistency["images"] > 0 and consistency["agree"], consistency
