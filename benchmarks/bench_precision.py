"""fp32 vs bf16 autocast train steps on the CPU at hand: does ``precision=auto`` choose right?

``python benchmarks/bench_precision.py --out bench_results/precision.json`` (part of
``make bench``).

``auto`` trains a CPU run under bf16 autocast only where the CPU computes bf16 natively
(AMX or AVX-512 BF16, :data:`fracture_lit.utils.precision.FAST_BF16_CPU_FLAGS`); elsewhere
bf16 is emulated and slower. This measures it: the main job's model (resnet18, 1 channel,
channels_last, the synthetic preset's 96 px and batch 64 unless told otherwise) takes train
steps in fp32 and under bf16 autocast, in blocks that alternate (fp32, bf16, fp32, ...) so
a change in a shared machine's load hits both. Each bf16 block is divided by the mean of
the fp32 blocks on either side of it; the figure is the median of those ratios with its
quartiles (above 1: bf16 is slower). The CPU's model name and its bf16-related flags are
recorded beside the figures, with what ``auto`` chooses here and why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median, quartiles, report, table  # noqa: E402

# Flags that say how a CPU does bf16 (and the vector width it has without it).
RELEVANT_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")
MODES = ("fp32", "bf16")


def make_step(backbone: str, size: int, batch: int, threads: int | None) -> Any:
    """One train step of the main job's model on a fixed batch, fp32 or bf16 autocast
    (the same weights and optimiser go on through both modes, as a run would)."""
    import timm
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = timm.create_model(backbone, num_classes=2, in_chans=1)
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(mode: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def interleaved(step: Any, blocks: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step of each block, fp32 first and last: fp32, bf16, ..., fp32."""
    for mode in MODES:  # warm-up: oneDNN picks and caches its kernels per dtype
        step(mode)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    order = [MODES[i % 2] for i in range(2 * blocks + 1)]
    for mode in order:
        start = time.perf_counter()
        for _ in range(steps):
            step(mode)
        times[mode].append((time.perf_counter() - start) / steps)
    return times


def ratios(times: dict[str, list[float]]) -> list[float]:
    """Each bf16 block over the mean of the fp32 blocks either side (a drift cancels)."""
    fp32, bf16 = times["fp32"], times["bf16"]
    return [b / ((fp32[i] + fp32[i + 1]) / 2) for i, b in enumerate(bf16)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fracture_lit.utils.precision import choose_precision, cpu_flags, cpu_model

    step = make_step(args.backbone, args.image_size, args.batch_size, args.threads)
    times = interleaved(step, args.blocks, args.steps)
    slower = ratios(times)
    q1, q3 = quartiles(slower)
    flags = cpu_flags()
    choice = choose_precision("auto", accelerator="cpu")
    return {
        "benchmark": "precision",
        "machine": machine(),
        "cpu_model": cpu_model(),
        "cpu_flags": {flag: flag in flags for flag in RELEVANT_FLAGS},
        "auto": choice.record(),
        "workload": {
            "backbone": args.backbone,
            "in_chans": 1,
            "channels_last": True,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "steps_per_block": args.steps,
            "blocks_per_mode": args.blocks,
        },
        "step_s": times,
        "median_step_s": {mode: median(times[mode]) for mode in MODES},
        "bf16_over_fp32": {"median": median(slower), "q1": q1, "q3": q3, "per_block": slower},
    }


def print_table(result: dict[str, Any]) -> None:
    ratio = result["bf16_over_fp32"]
    steps = result["median_step_s"]
    rows = [
        [
            result["cpu_model"],
            " ".join(f for f, on in result["cpu_flags"].items() if on) or "-",
            f"{steps['fp32']:.3f}",
            f"{steps['bf16']:.3f}",
            f"{ratio['median']:.2f} [{ratio['q1']:.2f}, {ratio['q3']:.2f}]",
            result["auto"]["train"],
        ]
    ]
    header = ["CPU", "flags", "fp32 s/step", "bf16 s/step", "bf16/fp32 [q1, q3]", "auto"]
    print(table(rows, header))
    print(result["auto"]["chosen_by"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/precision.json"))
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="train steps per timed block")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per mode")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
