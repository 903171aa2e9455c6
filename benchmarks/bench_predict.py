"""Predict benchmark: eager PyTorch vs the ONNX Runtime export, images per second.

``python benchmarks/bench_predict.py --out bench_results/predict.json`` (part of ``make bench``).

Trains a short real checkpoint on the FracAtlas sample (synthetic data without it), exports
it with ``python -m fracture_lit.export``, then classifies the same normalised batches with
the checkpoint's network (``torch.inference_mode``, the precision ``auto`` resolves to) and
with the ONNX model in ONNX Runtime (CPU provider), in turns (eager, ORT, ORT, eager, ...);
medians of images per second at batch 1 and at batch 32.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, median, report, shared_data_dir, table  # noqa: E402


def _python_m(module: str, *overrides: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m {module} failed:\n{proc.stderr[-3000:]}")


def train_and_export(workdir: Path, image_size: int) -> tuple[Path, Path]:
    """A short real training run, then its ONNX export."""
    fracatlas = shared_data_dir() / "FracAtlas"
    data = (
        ["data=fracatlas", f"data.root={fracatlas}"]
        if fracatlas.is_dir()
        else ["data=synthetic", "data.n_per_class=100", f"data.root={workdir / 'synthetic'}"]
    )
    run_dir = workdir / "run"
    _python_m(
        "fracture_lit.train",
        *data,
        f"data.image_size={image_size}",
        f"data.cache_dir={workdir / 'cache'}",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "test=false",
        "~callbacks.review",
        f"hydra.run.dir={run_dir}",
    )
    ckpt = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    onnx_path = workdir / "export" / "model.onnx"
    _python_m(
        "fracture_lit.export",
        f"ckpt_path={ckpt}",
        f"output={onnx_path}",
        f"hydra.run.dir={workdir / 'export-run'}",
    )
    return ckpt, onnx_path


def images_per_s(fn: Any, batch: Any, seconds: float) -> float:
    """Images per second of ``fn(batch)``, repeated for at least ``seconds`` after a warm-up."""
    fn(batch)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n == 0:
        fn(batch)
        n += 1
    return n * batch.shape[0] / elapsed


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import torch

    from fracture_lit.models.loading import load_checkpoint
    from fracture_lit.utils.environment import resolve_precision

    results = []
    with tempfile.TemporaryDirectory(prefix="fl-bench-predict-") as tmp:
        ckpt, onnx_path = train_and_export(Path(tmp), args.image_size)
        loaded = load_checkpoint(ckpt)
        model = loaded.model.eval()
        autocast = str(resolve_precision("auto", "cpu")).startswith("bf16")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        chans, size = loaded.in_chans, loaded.image_size

        def eager(x: torch.Tensor) -> Any:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                return torch.softmax(model(x).float(), 1)

        def onnx(x: torch.Tensor) -> Any:
            return session.run(["probs"], {"images": x.numpy()})

        for batch_size in args.batch_sizes:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(batch_size, chans, size, size, generator=g)
            speeds: dict[str, list[float]] = {"eager": [], "onnxruntime": []}
            for repeat in range(args.repeats):
                order = ("eager", "onnxruntime") if repeat % 2 == 0 else ("onnxruntime", "eager")
                for side in order:
                    fn = eager if side == "eager" else onnx
                    speeds[side].append(images_per_s(fn, x, args.seconds))
            row = {
                "batch_size": batch_size,
                "eager_img_s": median(speeds["eager"]),
                "onnxruntime_img_s": median(speeds["onnxruntime"]),
                "runs": speeds,
            }
            row["ratio_ort_vs_eager"] = row["onnxruntime_img_s"] / row["eager_img_s"]
            results.append(row)
            print(f"  batch {batch_size}: eager {row['eager_img_s']:.1f} img/s, "
                  f"ORT {row['onnxruntime_img_s']:.1f} img/s")  # fmt: skip
        agreement = float(
            np.abs(onnx(x)[0] - eager(x).float().numpy()).max()  # the last batch
        )
    return {
        "benchmark": "predict",
        "backbone": loaded.backbone,
        "image_size": size,
        "in_chans": chans,
        "eager_autocast_bf16": autocast,
        "max_abs_prob_diff": agreement,
        "onnxruntime": ort.__version__,
        "machine": machine(),
        "results": results,
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [
            str(r["batch_size"]),
            f"{r['eager_img_s']:.1f}",
            f"{r['onnxruntime_img_s']:.1f}",
            f"{r['ratio_ort_vs_eager']:.2f}",
        ]
        for r in result["results"]
    ]
    print(f"\nPredict ({result['backbone']}, {result['image_size']} px, {result['in_chans']} ch):")
    print(table(rows, ["batch", "eager img/s", "ONNX Runtime img/s", "ORT / eager"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/predict.json"))
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
