"""GPU benchmark: bf16, channels_last, torch.compile, standalone vs inside fracture_lit,
loading vs training speed at 224 and 512 px, DDP on 1 vs all GPUs.

``bash benchmarks/gpu.sh`` (or ``make bench-gpu``) on a machine with CUDA GPUs;
``python benchmarks/bench_gpu.py --dry`` runs every path tiny on CPU (a smoke test of the
script, no figures worth reading).

* standalone: a timm backbone's train step (forward, backward, Adam step) on random
  tensors already on the GPU, images/s, for fp32 / bf16 autocast x contiguous /
  channels_last x eager / ``torch.compile``;
* inside fracture_lit: the real Trainer + datamodule (synthetic radiographs, default
  callbacks) at the precision ``auto`` picks, images/s of an epoch, against the
  standalone bf16 + channels_last figure;
* loader: the training DataLoader alone (cached uint8 images, augmentation, collation),
  images/s; it must be well above the training speed or the GPU waits on the CPU;
* DDP: ``python -m fracture_lit.train trainer=ddp trainer.devices=N`` vs 1 GPU, scaling
  efficiency = (time on 1) / (N x time on N);
* one scoring precision (issue 22): a run trained under bf16 autocast on the GPU, then
  ``python -m fracture_lit.eval ckpt_path=<best>``: the test metrics the training run
  reported against eval's, and the largest |delta prob| per image (both score in fp32:
  it must stay under 1e-5).
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
from bench_train import compose  # noqa: E402
from common import REPO_ROOT, machine, median, report, table  # noqa: E402

SCORE_TOLERANCE = 1e-5
# Test metrics at the validation threshold (the training run's ``test/<key>_at_thr``).
AT_THRESHOLD = ("acc", "recall", "specificity", "f1", "balanced_acc")


def standalone_img_s(
    backbone: str, size: int, batch: int, *, bf16: bool, channels_last: bool, compile: bool,
    device: str, steps: int,
) -> float:  # fmt: skip
    import timm
    import torch
    import torch.nn.functional as F

    model = timm.create_model(backbone, num_classes=2, in_chans=1).to(device)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    if channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_model = torch.compile(model) if compile else model

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(step_model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3 if not compile else 5):  # warm-up (and compilation)
        step()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - start)


def epoch_timer() -> Any:
    """A Lightning callback keeping each training epoch's wall time (``.epochs``, seconds).
    (bench_train.py no longer has one; its lockstep timer times two sides.)"""
    from lightning.pytorch.callbacks import Callback

    class _EpochTimer(Callback):
        def __init__(self) -> None:
            self.epochs: list[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.epochs.append(time.perf_counter() - self._start)

    return _EpochTimer()


def fracture_lit_img_s(size: int, batch: int, workdir: Path, dry: bool) -> dict[str, float]:
    """Training images/s inside fracture_lit, and the loader's own images/s."""
    import hydra

    from fracture_lit.tasks.training import instantiate_loggers
    from fracture_lit.utils.environment import resolve_trainer_overrides
    from fracture_lit.utils.instantiate import instantiate_group

    n_per_class = 40 if dry else 1000
    cfg = compose(
        [
            "data=synthetic",
            f"data.root={workdir / f'synthetic-{size}'}",
            f"data.n_per_class={n_per_class}",
            f"data.render_size={size}",
            f"data.image_size={size}",
            f"data.batch_size={batch}",
            f"data.num_workers={0 if dry else min(8, os.cpu_count() or 1)}",
            f"data.pin_memory={not dry}",
            f"data.cache_dir={workdir / 'cache'}",
            "trainer.max_epochs=2",
            f"paths.output_dir={workdir / f'run-{size}'}",
        ]
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        n += images.shape[0]
    loader_img_s = n / (time.perf_counter() - start)
    model = hydra.utils.instantiate(
        cfg.model, num_classes=datamodule.num_classes, class_names=datamodule.classes
    )
    timer = epoch_timer()
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[*instantiate_group(cfg.get("callbacks")), timer],
        logger=instantiate_loggers(cfg) or False,
        **resolve_trainer_overrides(cfg.trainer),
    )
    trainer.fit(model=model, datamodule=datamodule)
    n_train = len(datamodule.datasets["train"])
    return {
        "train_img_s": n_train / median(timer.epochs[1:] or timer.epochs),
        "loader_img_s": loader_img_s,
        "precision": str(trainer.precision),
    }


def ddp_scaling(gpus: int, workdir: Path) -> dict[str, Any]:
    """Wall time of the same 2-epoch job on 1 GPU and on all of them."""
    times = {}
    for devices in sorted({1, gpus}):
        run_dir = workdir / f"ddp-{devices}"
        command = [
            sys.executable, "-m", "fracture_lit.train", "trainer=ddp",
            f"trainer.devices={devices}", "data.n_per_class=2000", "data.image_size=224",
            "data.render_size=224", "data.num_workers=4", "trainer.max_epochs=2", "test=false",
            f"data.root={workdir / 'synthetic-ddp'}", f"hydra.run.dir={run_dir}",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, capture_output=True)
        times[devices] = time.perf_counter() - start
    return {
        "gpus": gpus,
        "seconds": times,
        "efficiency": times[1] / (gpus * times[gpus]) if gpus > 1 else 1.0,
    }


def _probs(csv_path: Path) -> dict[str, float]:
    import csv

    with csv_path.open(newline="") as stream:
        return {r["path"]: float(r["prob_fractured"]) for r in csv.DictReader(stream)}


def scoring_consistency(workdir: Path, dry: bool) -> dict[str, Any]:
    """Train under bf16 autocast, then eval the best checkpoint with no data arguments (the
    run's own test split): the training run's test figures against eval's, per metric and
    per image."""
    from fracture_lit.layout import RunLayout

    accelerator = "cpu" if dry else "gpu"
    train_dir, eval_dir = workdir / "consistency-train", workdir / "consistency-eval"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    train = [
        sys.executable, "-m", "fracture_lit.train", "data=synthetic",
        f"data.root={workdir / 'synthetic-consistency'}", f"data.n_per_class={24 if dry else 400}",
        "data.render_size=64", f"data.image_size={32 if dry else 128}", "data.batch_size=16",
        "trainer.max_epochs=2", f"trainer.accelerator={accelerator}", "trainer.devices=1",
        "trainer.precision=bf16-mixed", "callbacks.review.gradcam=false", "logger=csv",
        f"hydra.run.dir={train_dir}",
    ]  # fmt: skip
    subprocess.run(train, check=True, cwd=REPO_ROOT, env=env)
    trained = json.loads(RunLayout(train_dir).metrics.read_text())
    ckpt = trained["best_model_path"]
    evaluate = [
        sys.executable, "-m", "fracture_lit.eval", f"ckpt_path={ckpt}", "n_bootstrap=20",
        "gradcam.enabled=false", f"device={'cpu' if dry else 'cuda'}",
        f"hydra.run.dir={eval_dir}",
    ]  # fmt: skip
    subprocess.run(evaluate, check=True, cwd=REPO_ROOT, env=env)
    evaluated = json.loads(RunLayout(eval_dir).metrics.read_text())
    want, got = trained["test"]["metrics"], evaluated["eval"]["metrics"]
    metric_delta = {k: abs(want[f"test/{k}_at_thr"] - got[f"eval/{k}"]) for k in AT_THRESHOLD}
    metric_delta.update({k: abs(want[f"test/{k}"] - got[f"eval/{k}"]) for k in ("auroc", "brier")})
    train_probs = _probs(RunLayout(train_dir).review.predictions("test"))
    eval_probs = _probs(RunLayout(eval_dir).review.predictions("test"))
    max_prob_delta = max(abs(p - eval_probs[path]) for path, p in train_probs.items())
    return {
        "precision": trained.get("precision"),
        "images": len(train_probs),
        "max_abs_prob_delta": max_prob_delta,
        "max_abs_metric_delta": max(metric_delta.values()),
        "metric_delta": metric_delta,
        "agree": max_prob_delta <= SCORE_TOLERANCE,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = "cpu" if args.dry else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA GPU here; use --dry for the CPU smoke test.")
    sizes = [32] if args.dry else args.sizes
    steps = 1 if args.dry else args.steps
    standalone = []
    for size in sizes:
        batch = 4 if args.dry else (args.batch if size <= 256 else max(8, args.batch // 4))
        for bf16 in (False, True):
            for channels_last in (False, True):
                for use_compile in (False, True) if not args.dry else (False,):
                    img_s = standalone_img_s(
                        args.backbone, size, batch, bf16=bf16, channels_last=channels_last,
                        compile=use_compile, device=device, steps=steps,
                    )  # fmt: skip
                    standalone.append(
                        {"size": size, "batch": batch, "bf16": bf16,
                         "channels_last": channels_last, "compile": use_compile, "img_s": img_s}
                    )  # fmt: skip
                    print(f"  standalone {size}px bf16={bf16} cl={channels_last} "
                          f"compile={use_compile}: {img_s:.0f} img/s")  # fmt: skip
    inside = []
    with tempfile.TemporaryDirectory(prefix="fl-bench-gpu-") as tmp:
        for size in sizes:
            batch = 4 if args.dry else (args.batch if size <= 256 else max(8, args.batch // 4))
            figures = fracture_lit_img_s(size, batch, Path(tmp), args.dry)
            best = max(r["img_s"] for r in standalone if r["size"] == size and not r["compile"])
            figures.update(size=size, batch=batch, standalone_best_eager_img_s=best)
            figures["vs_standalone"] = figures["train_img_s"] / best
            figures["loader_headroom"] = figures["loader_img_s"] / figures["train_img_s"]
            inside.append(figures)
            print(f"  fracture_lit {size}px: {figures}")
        gpus = torch.cuda.device_count() if device == "cuda" else 1
        ddp = ddp_scaling(gpus, Path(tmp)) if device == "cuda" and not args.no_ddp else None
        consistency = scoring_consistency(Path(tmp), args.dry)
        print(f"  one scoring precision: {consistency}")
    return {
        "benchmark": "gpu",
        "dry_run_on_cpu": args.dry,
        "backbone": args.backbone,
        "machine": machine(),
        "standalone": standalone,
        "fracture_lit": inside,
        "ddp": ddp,
        "scoring_consistency": consistency,
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [str(r["size"]), str(r["batch"]), "bf16" if r["bf16"] else "fp32",
         "yes" if r["channels_last"] else "no", "yes" if r["compile"] else "no",
         f"{r['img_s']:.0f}"]
        for r in result["standalone"]
    ]  # fmt: skip
    print(f"\nGPU, standalone {result['backbone']} train step:")
    print(table(rows, ["px", "batch", "precision", "channels_last", "compile", "img/s"]))
    rows = [
        [str(r["size"]), r["precision"], f"{r['train_img_s']:.0f}",
         f"{r['vs_standalone']:.2f}", f"{r['loader_img_s']:.0f}", f"{r['loader_headroom']:.1f}x"]
        for r in result["fracture_lit"]
    ]  # fmt: skip
    print("\nInside fracture_lit (synthetic radiographs, default callbacks):")
    print(
        table(rows, ["px", "precision", "train img/s", "vs standalone", "loader img/s", "headroom"])
    )
    if result["ddp"]:
        d = result["ddp"]
        print(f"\nDDP: 1 GPU {d['seconds'][1]:.0f} s, {d['gpus']} GPUs "
              f"{d['seconds'][d['gpus']]:.0f} s, scaling efficiency {d['efficiency']:.2f}")  # fmt: skip
    c = result["scoring_consistency"]
    print(f"\nTrained in {c['precision']}, scored in fp32: training run vs eval on "
          f"{c['images']} test images, max |delta prob| {c['max_abs_prob_delta']:.2e}, "
          f"max |delta metric| {c['max_abs_metric_delta']:.2e} "
          f"({'agree' if c['agree'] else 'DISAGREE'} to {SCORE_TOLERANCE:g})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/gpu.json"))
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--no-ddp", action="store_true")
    p.add_argument("--dry", action="store_true", help="tiny CPU run of every path")
    args = p.parse_args(argv)
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
