"""The DataModule every dataset shares: index -> groups -> splits -> cache -> loaders.

A dataset only says how to list its files (:meth:`FractureDataModule.build_index`);
everything else (leak-free splits, the split manifest, decode-once caching, bad-file
policy, augmentation, class balancing, DDP batch sizes) happens here, once.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    get_worker_info,
)

from fracture_lit.data.cache import build_cache, decode_image
from fracture_lit.data.device_augment import DEVICE_PRESETS, DeviceAugment, host_only_presets
from fracture_lit.data.grouping import HashCache, assign_groups
from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS
from fracture_lit.data.manifest import apply_manifest, read_manifest, write_manifest
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.data.sampling import EpochSampler, SampleKey, sample_seed
from fracture_lit.data.splits import assign_splits
from fracture_lit.data.transforms import ImageTransform, Normalizer, preset_names
from fracture_lit.errors import UserError
from fracture_lit.stats.splits import SPLITS

log = logging.getLogger(__name__)


class TooManyBadImagesError(UserError, RuntimeError):
    """More files than ``data.max_bad_fraction`` could not be decoded."""


def collate_images(batch: list[tuple[Any, ...]]) -> list[torch.Tensor]:
    """Stack uint8 ``(C, H, W)`` samples into ``[uint8 (B, C, H, W), int64 (B,)]`` (plus
    the int64 augmentation seeds when the samples carry them for device augmentation).

    numpy does the stacking: ``torch.stack`` spreads the copy over the intra-op thread
    pool, which on 2 busy cores cost more than the whole cached epoch's augmentation.
    """
    images = torch.from_numpy(np.stack([sample[0] for sample in batch]))
    if get_worker_info() is not None:
        images.share_memory_()  # as default_collate does: no copy when sent to the trainer
    out = [images, torch.tensor([sample[1] for sample in batch], dtype=torch.long)]
    if len(batch[0]) == 3:
        out.append(torch.tensor([sample[2] for sample in batch], dtype=torch.long))
    return out


def _split_key(key: int | SampleKey, seed: int | None) -> tuple[int, int | None]:
    """``(index, augmentation seed)`` of a dataset key: the training sampler's
    ``(epoch, index)`` keys get the seed of that sample in that epoch; plain indices
    (evaluation, or a loader without :class:`EpochSampler`) none."""
    if isinstance(key, tuple):
        epoch, index = key
        return index, None if seed is None else sample_seed(seed, epoch, index)
    return key, None


def _with_seed(sample: tuple[np.ndarray, int], seed: int | None) -> tuple[np.ndarray, int, int]:
    """A sample plus the seed the device augmentation draws it from (a fresh one from the
    seeded global generator for keys without one)."""
    return (*sample, int(np.random.randint(2**31)) if seed is None else seed)


class CachedImageDataset(Dataset):
    """Rows of the decoded-image cache, augmented on the fly."""

    def __init__(
        self,
        array: np.ndarray,
        rows: Sequence[int],
        labels: Sequence[int],
        transform: ImageTransform,
        seed: int | None = None,
        return_seed: bool = False,
    ) -> None:
        self.array, self.rows, self.labels, self.transform = (
            array,
            list(rows),
            list(labels),
            transform,
        )
        self.seed, self.return_seed = seed, return_seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | SampleKey) -> tuple[Any, ...]:
        i, seed = _split_key(key, self.seed)
        if self.return_seed:  # augmented on the device, from this seed
            return _with_seed(
                (self.transform(np.array(self.array[self.rows[i]])), self.labels[i]), seed
            )
        # A writable copy of the row: the memory map itself is read-only.
        return self.transform(np.array(self.array[self.rows[i]]), seed=seed), self.labels[i]


class DecodingImageDataset(Dataset):
    """Decodes each file on every access: the uncached path (and the benchmark baseline)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        size: int,
        mode: str,
        transform: ImageTransform,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        seed: int | None = None,
        return_seed: bool = False,
    ) -> None:
        self.paths, self.labels, self.size, self.mode = list(paths), list(labels), size, mode
        self.transform, self.max_pixels, self.seed = transform, max_pixels, seed
        self.return_seed = return_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | SampleKey) -> tuple[np.ndarray, int]:
        i, seed = _split_key(key, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image, _ = decode_image(self.paths[i], self.size, self.mode, self.max_pixels)
        if self.return_seed:  # augmented on the device, from this seed
            return _with_seed((self.transform(image), self.labels[i]), seed)
        return self.transform(image, seed=seed), self.labels[i]


def _read_subset(path: Path, root: Path) -> set[str]:
    """Resolved absolute paths from a CSV with a ``path`` column or a one-per-line list
    (relative entries are relative to the dataset root; blank and ``#`` lines skipped)."""
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise ValueError(f"data.subset_file={path} has no 'path' column.")
            entries = [row["path"] for row in reader]
        else:
            entries = [line.strip() for line in handle]
    return {str((root / e).resolve()) for e in entries if e.strip() and not e.startswith("#")}


class FractureDataModule(L.LightningDataModule):
    """Base for the per-dataset DataModules. Subclasses implement :meth:`build_index`."""

    #: The key of the dataset in ``fracture_lit.data.sources.DATASETS`` (download help).
    dataset_name = "image_folder"

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: int = 224,
        resize_mode: str = "resize",
        in_chans: int = 3,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment: str | Sequence[str] | None = "flip_rotate",
        augment_strength: float = 1.0,
        augment_on: str = "auto",
        preprocess: str | Sequence[str] | None = None,
        normalize: str = "imagenet",
        balance: str = "none",
        use_given_split: bool = True,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        n_folds: int | None = None,
        fold: int | None = None,
        split_seed: int = 42,
        group_duplicates: bool = True,
        near_duplicates: bool = True,
        manifest: str | Path | None = None,
        manifest_out: str | Path | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        decode_workers: int | None = None,
        max_bad_fraction: float = 0.02,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        subset_file: str | Path | None = None,
        sample_seed: int | None = None,
    ) -> None:
        super().__init__()
        if int(batch_size) < 1:  # never silently a batch of 1 (see _per_device)
            from fracture_lit.errors import ConfigError

            raise ConfigError("data.batch_size", batch_size, "must be an integer >= 1")
        if balance not in ("none", "sampler"):
            raise ValueError(
                f"data.balance={balance!r}: use none, or sampler (weighted random sampling); "
                "for a class-weighted loss set model.class_weights=balanced."
            )
        self.root = Path(root).expanduser()
        self.image_size, self.resize_mode, self.in_chans = int(image_size), resize_mode, in_chans
        self.batch_size, self.eval_batch_size = int(batch_size), eval_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        if augment_on not in ("auto", "host", "device"):
            from fracture_lit.errors import ConfigError

            raise ConfigError(
                "data.augment_on",
                augment_on,
                "is not a place to augment",
                "Use auto, host or device.",
            )
        self.augment, self.augment_strength = augment, augment_strength
        self.augment_on = augment_on
        self.device_augment: DeviceAugment | None = None
        self.preprocess, self.normalize, self.balance = preprocess, normalize, balance
        self.normalizer = Normalizer(normalize, in_chans)
        self.split_args = dict(
            use_given_split=use_given_split,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
            n_folds=n_folds,
            fold=fold,
        )
        self.group_duplicates, self.near_duplicates = group_duplicates, near_duplicates
        self.manifest_in = Path(manifest) if manifest else None
        self.manifest_out = Path(manifest_out) if manifest_out else None
        self.use_cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".fracture_lit_cache"
        self.decode_workers, self.max_bad_fraction = decode_workers, max_bad_fraction
        self.max_image_pixels = max_image_pixels
        self.subset_file = Path(subset_file).expanduser() if subset_file else None
        # Training order and augmentation derive from (sample_seed, epoch, index); without
        # a seed one is drawn now and kept in checkpoints, so a resume still continues it.
        self.sample_seed = (
            int(sample_seed)
            if sample_seed is not None
            else int(np.random.SeedSequence().entropy % 2**63)
        )
        self._resume_at: tuple[int, int] | None = None
        self._index: DatasetIndex | None = None
        self.samples: list[Sample] = []
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ dataset hooks
    def build_index(self) -> DatasetIndex:
        """List the dataset's files and labels. Implemented by each dataset."""
        raise NotImplementedError

    @property
    def index(self) -> DatasetIndex:
        if self._index is None:
            self._index = self.build_index()
        return self._index

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------ setup
    def prepare_split(self) -> list[Sample]:
        """Group, split (or reuse a manifest) and write the manifest; returns the samples."""
        samples = list(self.index.samples)
        if self.subset_file is not None:
            samples = self._keep_subset(samples)
        if self.index.skipped:
            log.warning(
                "Skipped %d non-image files: %s",
                len(self.index.skipped),
                "; ".join(f"{p} ({why})" for p, why in self.index.skipped[:10]),
            )
        if self.manifest_in is not None:
            apply_manifest(samples, read_manifest(self.manifest_in))
        else:
            if self.group_duplicates:
                hashes = HashCache(self.cache_dir / "hashes.json")
                assign_groups(samples, near_duplicates=self.near_duplicates, cache=hashes)
            else:
                for sample in samples:
                    sample.group = sample.path
            assign_splits(samples, **self.split_args)
        return samples

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        samples = self.prepare_split()
        if self.use_cache:
            cached = build_cache(
                [s.path for s in samples],
                size=self.image_size,
                mode=self.resize_mode,
                cache_dir=self.cache_dir,
                workers=self.decode_workers,
                max_pixels=self.max_image_pixels,
            )
            for sample, note in zip(samples, cached.notes, strict=True):
                if note:
                    sample.notes = "; ".join(n for n in (sample.notes, note) if n)
            bad = set(cached.bad)
        else:
            cached, bad = None, set()
        self._check_bad(samples, bad)
        self.device_augment = self._device_augment()
        if self.manifest_out is not None and self._is_global_zero():
            write_manifest(samples, self.manifest_out, classes=self.classes)
        self.samples = [s for i, s in enumerate(samples) if i not in bad]
        rows = {s.path: i for i, s in enumerate(samples)}
        for split in SPLITS:
            members = [s for s in self.samples if s.split == split]
            if not members:
                continue
            transform = self._transform(train=split == "train")
            return_seed = split == "train" and self.device_augment is not None
            labels = [s.label for s in members]
            if cached is not None:
                self.datasets[split] = CachedImageDataset(
                    cached.array,
                    [rows[s.path] for s in members],
                    labels,
                    transform,
                    seed=self.sample_seed,
                    return_seed=return_seed,
                )
            else:
                self.datasets[split] = DecodingImageDataset(
                    [s.path for s in members],
                    labels,
                    self.image_size,
                    self.resize_mode,
                    transform,
                    self.max_image_pixels,
                    seed=self.sample_seed,
                    return_seed=return_seed,
                )
        if "train" not in self.datasets or "val" not in self.datasets:
            raise ValueError(
                f"{self.root}: the split left no {'train' if 'train' not in self.datasets else 'val'}"
                " images; check data.val_fraction / data.use_given_split."
            )
        log.info("Split sizes: %s", {k: len(v) for k, v in self.datasets.items()})

    def _keep_subset(self, samples: list[Sample]) -> list[Sample]:
        """Keep the images ``subset_file`` lists (e.g. those a stage-1 detector passed).

        Filtering before grouping and splitting means the split is made of the kept images
        only. An unknown path is an error: a silently ignored typo or a list made from
        another copy of the dataset would change the experiment without a trace.
        """
        wanted = _read_subset(self.subset_file, self.root)
        known = {str(Path(s.path).resolve()) for s in samples}
        unknown = sorted(wanted - known)
        if unknown:
            shown = "\n  ".join(unknown[:10])
            more = f"\n  ... and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(
                f"data.subset_file={self.subset_file} lists {len(unknown)} image(s) that "
                f"{self.root} does not have:\n  {shown}{more}"
            )
        kept = [s for s in samples if str(Path(s.path).resolve()) in wanted]
        log.info(
            "data.subset_file keeps %d of %d images (%d dropped).",
            len(kept),
            len(samples),
            len(samples) - len(kept),
        )
        return kept

    def _check_bad(self, samples: list[Sample], bad: set[int]) -> None:
        if not bad:
            return
        bad_paths = [samples[i].path for i in sorted(bad)]
        for i in bad:
            samples[i].notes = "; ".join(n for n in (samples[i].notes, "unreadable: skipped") if n)
        listing = "\n  ".join(bad_paths[:50])
        share = len(bad) / max(1, len(samples))
        if share > self.max_bad_fraction:
            raise TooManyBadImagesError(
                f"{len(bad)} of {len(samples)} files ({share:.1%}) under {self.root} could not "
                f"be decoded, more than data.max_bad_fraction={self.max_bad_fraction}:\n  "
                f"{listing}\nRemove or re-download them, or raise data.max_bad_fraction."
            )
        log.warning("Skipping %d unreadable files:\n  %s", len(bad), listing)

    def _is_global_zero(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is None or trainer.is_global_zero

    def _device_augment(self) -> DeviceAugment | None:
        """The batch augmentation on the device, when ``augment_on`` puts it there
        (``auto``: when training runs on a GPU and every preset has a device version)."""
        if self.augment_on == "host":
            return None
        names = preset_names(self.augment)
        host_only = host_only_presets(names)
        if self.augment_on == "device":
            if host_only:
                from fracture_lit.errors import ConfigError

                raise ConfigError(
                    "data.augment_on",
                    "device",
                    f"the augmentation preset(s) {', '.join(host_only)} (data.augment) run on "
                    "the host only",
                    "Use data.augment_on=auto or host, or device-capable presets: "
                    f"{', '.join(sorted(DEVICE_PRESETS))}.",
                )
        else:
            trainer = getattr(self, "trainer", None)
            on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
            if host_only or not on_gpu:
                return None
        log.info("Augmentation %s runs on the device, per batch", names or "none")
        return DeviceAugment(names, self.augment_strength)

    def _transform(self, train: bool) -> ImageTransform:
        return ImageTransform(
            image_size=self.image_size,
            train=train and self.device_augment is None,
            augment=self.augment,
            preprocess=self.preprocess,
            strength=self.augment_strength,
        )

    # ------------------------------------------------------------------ loaders
    def class_counts(self, split: str = "train") -> list[int]:
        counts = Counter(s.label for s in self.samples if s.split == split)
        return [counts.get(i, 0) for i in range(self.num_classes)]

    def _per_device(self, batch_size: int) -> int:
        """Keep the configured *global* batch size whatever the number of devices."""
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        if batch_size % world:
            log.warning("batch size %d is not divisible by %d devices", batch_size, world)
        return max(1, batch_size // world)

    def _loader(self, split: str, shuffle: bool, sampler: Any = None) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"{self.root}: this dataset has no {split!r} split.")
        batch = self.batch_size if split == "train" else (self.eval_batch_size or self.batch_size)
        return DataLoader(
            self.datasets[split],
            batch_size=self._per_device(batch),
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_images,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Seeded order (or weighted sampling with ``balance=sampler``) per epoch, sharded
        across DDP ranks; resumed where the restored checkpoint stopped."""
        weights = None
        if self.balance == "sampler":
            labels = [s.label for s in self.samples if s.split == "train"]
            counts = self.class_counts("train")
            weights = [1.0 / max(1, counts[label]) for label in labels]
        trainer = getattr(self, "trainer", None)
        sampler = EpochSampler(
            len(self.datasets["train"]) if "train" in self.datasets else 0,
            seed=self.sample_seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            weights=weights,
        )
        if self._resume_at is not None:
            epoch, batches_done = self._resume_at
            self._resume_at = None
            sampler.resume_at(epoch, batches_done * self._per_device(self.batch_size))
        return self._loader("train", shuffle=True, sampler=sampler)

    def _training_position(self) -> dict[str, int]:
        """Where training continues from a checkpoint written now: the epoch, and the
        batches of it already trained on (0 when the epoch's batches are all done)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        epoch = trainer.current_epoch
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:
            epoch, done = epoch + 1, 0
        return {"epoch": int(epoch), "batches_done": int(done)}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (device augmentation: train batches carry seeds) and normalise the uint8
        batch where it now lives (GPU or CPU)."""
        images, *rest = batch
        if len(rest) == 2 and self.device_augment is not None:
            labels, seeds = rest
            images, rest = self.device_augment(images, seeds), [labels]
        return [self.normalizer(images), *rest]

    def _eval_sampler(self, split: str) -> Any:
        """Under DDP, shard val/test without the padding DistributedSampler adds (it repeats
        samples so ranks get equal batches, which skews metrics); torchmetrics gathers the
        uneven shards, so every metric covers each image exactly once."""
        if split not in self.datasets or not (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        ):
            return None
        if torch.distributed.get_world_size() < 2:
            return None
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        return UnrepeatedDistributedSampler(self.datasets[split], shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, sampler=self._eval_sampler("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, sampler=self._eval_sampler("test"))

    def has_split(self, split: str) -> bool:
        return split in self.datasets

    # ------------------------------------------------------------------ checkpoint info
    def state_dict(self) -> dict[str, Any]:
        """Stored in checkpoints so eval/predict can rebuild the same inputs."""
        return {
            "classes": self.classes,
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "in_chans": self.in_chans,
            "normalize": self.normalize,
            "preprocess": self.preprocess
            if isinstance(self.preprocess, str | None)
            else list(self.preprocess),
            "sampling": {"seed": self.sample_seed, **self._training_position()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training order: its seed, and where in which epoch it stopped (the
        rest of the data comes from the configuration)."""
        sampling = state_dict.get("sampling") or {}
        if "seed" in sampling:
            self.sample_seed = int(sampling["seed"])
            for dataset in self.datasets.values():  # set up before the checkpoint loads
                dataset.seed = self.sample_seed
        if "epoch" in sampling:
            self._resume_at = (int(sampling["epoch"]), int(sampling.get("batches_done", 0)))
