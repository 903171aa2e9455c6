"""Train-step benchmark: fracture_lit vs a plain PyTorch + timm loop doing the same work.

``python benchmarks/bench_train.py --out bench_results/train.json`` (part of ``make bench``).

Both sides train the same timm backbone from the same seed on the same cached uint8
images (the real FracAtlas sample in ``../shared/data``, or the project's synthetic
radiographs), with the same precision (``precision=auto`` resolved on this machine), input
channels, batch size, optimiser (Adam 1e-3, cosine schedule), augmentation (horizontal flip
+ rotation up to 10 degrees, per image, in the main process) and a validation pass with
AUROC after every epoch. The plain loop is what a user writes in 80 lines; fracture_lit is
the real ``FractureClassifier`` + datamodule + Trainer with the default callbacks (best
and last checkpoints, early stopping, LR monitor, progress bar, model summary, review) and
the CSV logger: every metric, checkpoint and log it normally writes.

One epoch = train + validation (+ checkpointing and logging on the fracture_lit side),
timed from its start to the next epoch's start. Runs alternate plain, fracture_lit,
fracture_lit, plain, ... (ABAB) so load changes on a shared machine hit both; the first
epoch of each run is warm-up and the last one runs into end-of-fit work, so both are
dropped on both sides; the figure is the median over repeats of (median fracture_lit
epoch / median plain epoch).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median, shared_data_dir, table, write_json  # noqa: E402

TARGET_RATIO = 1.05
BACKBONES = ("resnet18", "efficientnet_b0", "mobilenetv2_100")


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fracture_lit.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def data_overrides(dataset: str, workdir: Path, args: argparse.Namespace) -> list[str]:
    common = [
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.cache_dir={workdir / 'cache'}",
        "data.augment=flip_rotate",
    ]
    if dataset == "fracatlas":
        return ["data=fracatlas", f"data.root={shared_data_dir() / 'FracAtlas'}", *common]
    return [
        "data=synthetic",
        f"data.root={workdir / 'synthetic'}",
        f"data.n_per_class={args.synthetic_per_class}",
        f"data.render_size={args.image_size}",
        *common,
    ]


class EpochTimer:
    """Lightning callback: wall time of each epoch, from one epoch's start to the next's
    (so validation, checkpoint writes and logging at the epoch's end are inside). The last
    epoch has no next start and is not timed: its end runs into end-of-fit work."""

    def __new__(cls) -> Any:
        from lightning.pytorch.callbacks import Callback

        class _Timer(Callback):
            def __init__(self) -> None:
                self.marks: list[float] = []

            def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
                self.marks.append(time.perf_counter())

            @property
            def epochs(self) -> list[float]:
                return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]

        return _Timer()


def fracture_lit_epochs(cfg: Any) -> tuple[list[float], float]:
    """Fit with the product's own instantiation path; (epoch seconds, last val AUROC)."""
    import hydra
    import lightning as L
    import torch

    from fracture_lit.train import _loggers
    from fracture_lit.utils.environment import resolve_trainer_overrides
    from fracture_lit.utils.instantiate import instantiate_group

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(
        cfg.model,
        num_classes=datamodule.num_classes,
        class_names=datamodule.classes,
        monitor=cfg.monitor,
        monitor_mode=cfg.monitor_mode,
    )
    timer = EpochTimer()
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[*instantiate_group(cfg.get("callbacks")), timer],
        logger=_loggers(cfg) or False,
        **resolve_trainer_overrides(cfg.trainer),
    )
    trainer.fit(model=model, datamodule=datamodule)
    # The Trainer switched deterministic algorithms on for the whole process; the plain
    # loop that runs next must not pay for that.
    torch.use_deterministic_algorithms(False)
    auroc = float(trainer.callback_metrics.get("val/auroc", float("nan")))
    return timer.epochs, auroc


def split_arrays(cfg: Any) -> dict[str, tuple[Any, Any]]:
    """The datamodule's train/val images as in-memory uint8 arrays (decoded once)."""
    import hydra
    import numpy as np

    datamodule = hydra.utils.instantiate(cfg.data, manifest_out=None)
    datamodule.setup("fit")
    out = {}
    for split in ("train", "val"):
        ds = datamodule.datasets[split]
        out[split] = (np.asarray(ds.array[ds.rows]), np.asarray(ds.labels))
    return out


def plain_epochs(cfg: Any, arrays: dict[str, tuple[Any, Any]]) -> tuple[list[float], float]:
    """The 80-line script: timm model, Adam, cosine, autocast, flip+rotate, val AUROC."""
    import albumentations as A
    import lightning as L
    import numpy as np
    import timm
    import torch
    import torch.nn.functional as F
    from torchmetrics.functional.classification import binary_auroc

    from fracture_lit.utils.environment import resolve_precision

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    autocast = str(precision).startswith("bf16")
    in_chans = int(cfg.model.in_chans)
    model = timm.create_model(cfg.model.backbone, num_classes=2, in_chans=in_chans).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=int(cfg.trainer.max_epochs), eta_min=1e-6
    )
    augment = A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=10, p=0.5)], seed=cfg.seed)
    mean, std = (0.449, 0.226) if in_chans == 1 else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def batches(split: str, train: bool):
        images, labels = arrays[split]
        order = np.random.permutation(len(images)) if train else np.arange(len(images))
        size = int(cfg.data.batch_size) if train else int(cfg.data.eval_batch_size)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            chunk = [augment(image=images[i])["image"] if train else images[i] for i in idx]
            x = torch.from_numpy(np.stack(chunk)[:, None]).to(device)
            x = (x.float().div_(255).expand(-1, in_chans, -1, -1) - mean_t) / std_t
            x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.from_numpy(labels[idx]).to(device)

    epochs, auroc = [], float("nan")
    for _ in range(int(cfg.trainer.max_epochs)):
        start = time.perf_counter()
        model.train()
        for x, y in batches("train", train=True):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        probs, targets = [], []
        with torch.no_grad():
            for x, y in batches("val", train=False):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    probs.append(torch.softmax(model(x).float(), 1)[:, 1])
                targets.append(y)
        auroc = float(binary_auroc(torch.cat(probs), torch.cat(targets)))
        epochs.append(time.perf_counter() - start)
    return epochs, auroc


def timed(epochs: list[float]) -> list[float]:
    """The epochs a ratio is taken over: all recorded ones but the warm-up (the last epoch
    of a run is not recorded on either side)."""
    return epochs[1:] or epochs


def bench_one(dataset: str, backbone: str, workdir: Path, args: argparse.Namespace) -> dict:
    overrides = [
        *data_overrides(dataset, workdir, args),
        f"model={backbone}",
        f"trainer.max_epochs={args.epochs}",
        "logger=csv",
        f"seed={args.seed}",
        # The fracture_lit run's folder; its checkpoints are written like any run's.
        f"paths.output_dir={workdir / 'runs' / f'{dataset}-{backbone}'}",
    ]
    cfg = compose(overrides)
    arrays = split_arrays(cfg)
    runs: dict[str, list[list[float]]] = {"plain": [], "fracture_lit": []}
    aurocs: dict[str, list[float]] = {"plain": [], "fracture_lit": []}
    for repeat in range(args.repeats):
        order = ("plain", "fracture_lit") if repeat % 2 == 0 else ("fracture_lit", "plain")
        for side in order:
            if side == "plain":
                epochs, auroc = plain_epochs(cfg, arrays)
                epochs = epochs[:-1]  # the last epoch is not timed, as on fracture_lit's side
            else:
                epochs, auroc = fracture_lit_epochs(cfg)
            runs[side].append(epochs)
            aurocs[side].append(auroc)
            print(f"  {dataset}/{backbone} {side}: " + " ".join(f"{e:.2f}" for e in epochs))
    ratios = [
        median(timed(f)) / median(timed(p))
        for p, f in zip(runs["plain"], runs["fracture_lit"], strict=True)
    ]
    return {
        "dataset": dataset,
        "backbone": backbone,
        "n_train": len(arrays["train"][1]),
        "n_val": len(arrays["val"][1]),
        "in_chans": int(cfg.model.in_chans),
        "precision": str(cfg.trainer.precision),
        "epoch_s": runs,
        "plain_epoch_s": median([median(timed(e)) for e in runs["plain"]]),
        "fracture_lit_epoch_s": median([median(timed(e)) for e in runs["fracture_lit"]]),
        "ratio": median(ratios),
        "ratios": ratios,
        "val_auroc": {k: median(v) for k, v in aurocs.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    datasets = list(args.datasets)
    if "fracatlas" in datasets and not (shared_data_dir() / "FracAtlas").is_dir():
        print(f"skipping fracatlas: no FracAtlas sample under {shared_data_dir()}")
        datasets.remove("fracatlas")
    results = []
    with tempfile.TemporaryDirectory(prefix="fl-bench-train-") as tmp:
        for dataset in datasets:
            for backbone in args.backbones:
                results.append(bench_one(dataset, backbone, Path(tmp), args))
    return {
        "benchmark": "train_step",
        "target_ratio": TARGET_RATIO,
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("out", "datasets", "backbones")
        },
        "machine": machine(),
        "results": results,
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [
            r["dataset"],
            r["backbone"],
            f"{r['plain_epoch_s']:.2f}",
            f"{r['fracture_lit_epoch_s']:.2f}",
            f"{r['ratio']:.3f}",
            f"{r['val_auroc']['plain']:.3f} / {r['val_auroc']['fracture_lit']:.3f}",
        ]
        for r in result["results"]
    ]
    header = ["data", "backbone", "plain s/epoch", "fracture_lit s/epoch", "ratio", "AUROC p/fl"]
    print(f"\nTrain step (target ratio <= {TARGET_RATIO}):")
    print(table(rows, header))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/train.json"))
    p.add_argument("--datasets", nargs="+", default=["fracatlas", "synthetic"])
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    p.add_argument(
        "--epochs", type=int, default=4, help="per run; the first and the last are not timed"
    )
    p.add_argument("--repeats", type=int, default=2, help="ABAB pairs of runs")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--synthetic-per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="resnet18 on the FracAtlas sample only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.datasets, args.backbones = ["fracatlas"], ["resnet18"]
    result = run(args)
    write_json(result, args.out)
    print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
