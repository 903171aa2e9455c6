"""Train-step benchmark: fracture_lit vs a plain PyTorch + timm loop doing the same work.

``python benchmarks/bench_train.py --out bench_results/train.json`` (part of ``make bench``).

Both sides train the same timm backbone from the same seed on the same cached uint8
images (the real FracAtlas sample in ``../shared/data``, or the project's synthetic
radiographs), with the same precision (``precision=auto`` resolved on this machine), input
channels, batch size, optimiser (Adam 1e-3, cosine schedule), augmentation (horizontal flip
+ rotation up to 10 degrees, per image, in the main process) and a validation pass with
AUROC after every epoch. The plain loop is what a user writes in 80 lines; fracture_lit is
the Trainer ``train.py`` builds (``fracture_lit.tasks.training.instantiate_run``: the real
``FractureClassifier``, datamodule, default callbacks with best and last checkpoints,
early stopping, LR monitor, progress bar, model summary, resume state, atomic checkpoint
writes) and the CSV logger: every metric, checkpoint and log it normally writes.

The two sides run in one process, in lockstep: at the start of each fracture_lit epoch a
callback runs one plain epoch, so the epochs alternate P0 F0 P1 F1 ... and a change in a
shared machine's load hits both. A fracture_lit epoch (train + validation + checkpoint
writes + logging) runs from the end of the plain one to the start of the next. Each
fracture_lit epoch is divided by the mean of the plain epochs on either side of it (a
steady drift cancels); epoch 0 is warm-up and the last fracture_lit epoch runs into
end-of-fit work, so neither is counted. The figure is the median of those ratios over
all runs.
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
from common import machine, median, quartiles, report, shared_data_dir, table  # noqa: E402

TARGET_RATIO = 1.05
BACKBONES = ("resnet18", "efficientnet_b0", "mobilenetv2_100")
RUN_SIDES = ("plain", "fracture_lit")


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


class PlainLoop:
    """The 80-line script: timm model, Adam, cosine, autocast, flip+rotate, val AUROC. Its
    generators are its own (NumPy ``Generator``, the augmentation's seed), so running it
    between fracture_lit's epochs changes nothing fracture_lit draws."""

    def __init__(self, cfg: Any, arrays: dict[str, tuple[Any, Any]]) -> None:
        import albumentations as A
        import numpy as np
        import timm
        import torch

        from fracture_lit.utils.environment import resolve_precision

        self.cfg, self.arrays = cfg, arrays
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
        self.autocast = str(precision).startswith("bf16")
        self.in_chans = in_chans = int(cfg.model.in_chans)
        model = timm.create_model(cfg.model.backbone, num_classes=2, in_chans=in_chans)
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=int(cfg.trainer.max_epochs), eta_min=1e-6
        )
        self.augment = A.Compose(
            [A.HorizontalFlip(p=0.5), A.Rotate(limit=10, p=0.5)], seed=cfg.seed
        )
        self.rng = np.random.default_rng(cfg.seed)
        grey = ((0.449,), (0.226,))
        mean, std = grey if in_chans == 1 else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.auroc = float("nan")

    def _batches(self, split: str, train: bool):  # noqa: ANN202
        import numpy as np
        import torch

        images, labels = self.arrays[split]
        order = self.rng.permutation(len(images)) if train else np.arange(len(images))
        size = int(self.cfg.data.batch_size) if train else int(self.cfg.data.eval_batch_size)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            chunk = [self.augment(image=images[i])["image"] if train else images[i] for i in idx]
            x = torch.from_numpy(np.stack(chunk)[:, None]).to(self.device)
            x = (x.float().div_(255).expand(-1, self.in_chans, -1, -1) - self.mean) / self.std
            x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.from_numpy(labels[idx]).to(self.device)

    def epoch(self) -> float:
        """One epoch, train + validation with AUROC; its wall time in seconds."""
        import torch
        import torch.nn.functional as F
        from torchmetrics.functional.classification import binary_auroc

        start = time.perf_counter()
        bf16 = {"device_type": self.device.type, "dtype": torch.bfloat16, "enabled": self.autocast}
        self.model.train()
        for x, y in self._batches("train", train=True):
            with torch.autocast(**bf16):
                loss = F.cross_entropy(self.model(x).float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        self.model.eval()
        probs, targets = [], []
        with torch.no_grad():
            for x, y in self._batches("val", train=False):
                with torch.autocast(**bf16):
                    probs.append(torch.softmax(self.model(x).float(), 1)[:, 1])
                targets.append(y)
        self.auroc = float(binary_auroc(torch.cat(probs), torch.cat(targets)))
        return time.perf_counter() - start


def lockstep(plain: PlainLoop) -> Any:
    """Lightning callback that runs one plain epoch at the start of each fracture_lit epoch
    and times both: the two sides alternate epoch by epoch (P0 F0 P1 F1 ...) in one
    process, so a change in the machine's load hits both. fracture_lit's epoch runs from
    the end of the plain one to the next epoch's start (validation, checkpoint writes and
    logging inside); the last one has no next start and is not timed."""
    import torch
    from lightning.pytorch.callbacks import Callback

    class _Lockstep(Callback):
        def __init__(self) -> None:
            self.plain: list[float] = []
            self.fracture_lit: list[float] = []
            self._started: float | None = None

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if self._started is not None:
                self.fracture_lit.append(time.perf_counter() - self._started)
            # The Trainer switched deterministic algorithms on for the process; the plain
            # loop does not pay for that.
            deterministic = torch.are_deterministic_algorithms_enabled()
            warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
            torch.use_deterministic_algorithms(False)
            self.plain.append(plain.epoch())
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            self._started = time.perf_counter()

    return _Lockstep()


def run_pair(cfg: Any, arrays: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """One fracture_lit fit, built as ``train.py`` builds it, with the plain loop in
    lockstep; both sides' epoch times and last validation AUROC."""
    import lightning as L
    import torch

    from fracture_lit.tasks.training import instantiate_run

    plain = PlainLoop(cfg, arrays)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")  # as train.py
    timer = lockstep(plain)
    datamodule, model, trainer, _ = instantiate_run(cfg, extra_callbacks=[timer])
    trainer.fit(model=model, datamodule=datamodule)
    torch.use_deterministic_algorithms(False)
    return {
        "plain": timer.plain,
        "fracture_lit": timer.fracture_lit,
        "auroc": {
            "plain": plain.auroc,
            "fracture_lit": float(trainer.callback_metrics.get("val/auroc", float("nan"))),
        },
    }


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


def epoch_ratios(plain: list[float], fracture_lit: list[float]) -> list[float]:
    """fracture_lit epoch i over the mean of the plain epochs just before and after it
    (P_i F_i P_i+1: a steady drift in the machine's speed cancels). Epoch 0 is warm-up on
    both sides and is left out."""
    return [
        fracture_lit[i] / ((plain[i] + plain[i + 1]) / 2)
        for i in range(1, min(len(fracture_lit), len(plain) - 1))
    ]


def bench_one(dataset: str, backbone: str, workdir: Path, args: argparse.Namespace) -> dict:
    overrides = [
        *data_overrides(dataset, workdir, args),
        f"model={backbone}",
        f"trainer.max_epochs={args.epochs}",
        "logger=csv",
        f"seed={args.seed}",
        # Every epoch timed runs to the end (early stopping is checked, as always).
        f"callbacks.early_stopping.patience={args.epochs}",
    ]
    cfg = compose(overrides)
    arrays = split_arrays(cfg)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        # Each run in a fresh folder: a second fit never resumes or reads the first's.
        cfg.paths.output_dir = str(workdir / "runs" / f"{dataset}-{backbone}-{repeat}")
        runs.append(run_pair(cfg, arrays))
        for side in ("plain", "fracture_lit"):
            times = " ".join(f"{e:.2f}" for e in runs[-1][side])
            print(f"  {dataset}/{backbone} run {repeat} {side}: {times}")
    ratios = [r for run in runs for r in epoch_ratios(run["plain"], run["fracture_lit"])]
    # Epoch 0 is warm-up on both sides.
    timed = {side: [e for run in runs for e in run[side][1:]] for side in RUN_SIDES}
    return {
        "dataset": dataset,
        "backbone": backbone,
        "n_train": len(arrays["train"][1]),
        "n_val": len(arrays["val"][1]),
        "in_chans": int(cfg.model.in_chans),
        "precision": str(cfg.trainer.precision),
        "epoch_s": {side: [run[side] for run in runs] for side in RUN_SIDES},
        "plain_epoch_s": median(timed["plain"]),
        "fracture_lit_epoch_s": median(timed["fracture_lit"]),
        "ratio": median(ratios),
        "ratio_quartiles": quartiles(ratios),
        "ratios": ratios,
        "val_auroc": {side: median([run["auroc"][side] for run in runs]) for side in RUN_SIDES},
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
            "{:.2f}-{:.2f} ({})".format(*r["ratio_quartiles"], len(r["ratios"])),
            f"{r['val_auroc']['plain']:.3f} / {r['val_auroc']['fracture_lit']:.3f}",
        ]
        for r in result["results"]
    ]
    header = [
        "data",
        "backbone",
        "plain s/epoch",
        "fracture_lit s/epoch",
        "ratio",
        "quartiles (n epochs)",
        "AUROC p/fl",
    ]
    print(f"\nTrain step (target ratio <= {TARGET_RATIO}):")
    print(table(rows, header))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/train.json"))
    p.add_argument("--datasets", nargs="+", default=["fracatlas", "synthetic"])
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    p.add_argument(
        "--epochs", type=int, default=8, help="per run; the first and the last are not timed"
    )
    p.add_argument("--repeats", type=int, default=2, help="runs, each both sides in lockstep")
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
    return report(run(args), args.out, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
