"""The DataModule every dataset shares: index -> groups -> splits -> cache -> loaders.

A dataset says how to list its files and what its classes mean (class attributes read by
:func:`fracture_lit.data.registry.register_dataset`); everything else (leak-free splits,
the split manifest, decode-once caching, bad-file policy, augmentation, class balancing,
DDP batch sizes, resumable training order) happens here, once, through the modules that
own each step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from fracture_lit.data.bad_files import check_bad_images
from fracture_lit.data.cache import build_cache
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetInfo
from fracture_lit.data.device_augment import (
    DeviceAugment,
    check_augment_place,
    choose_device_augment,
)
from fracture_lit.data.image_datasets import split_dataset
from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS
from fracture_lit.data.loaders import (
    BALANCE_CHOICES,
    class_counts,
    eval_sampler,
    make_loader,
    per_device,
    train_sampler,
)
from fracture_lit.data.manifest import write_manifest
from fracture_lit.data.resume_state import resume_point, training_position
from fracture_lit.data.samples import DatasetIndex, Sample
from fracture_lit.data.split_plan import SplitPlan
from fracture_lit.data.transforms import ImageTransform, Normalizer
from fracture_lit.errors import ConfigError
from fracture_lit.stats.splits import EXTERNAL_SPLIT, SPLITS

log = logging.getLogger(__name__)

__all__ = ["FractureDataModule"]


class FractureDataModule(L.LightningDataModule):
    """Base of every dataset's DataModule.

    A dataset sets ``indexer`` (``root, **index_options() -> DatasetIndex``) and declares
    ``dataset_info``, ``class_roles``, ``subgroup_attributes`` and ``layout_check``;
    :func:`~fracture_lit.data.registry.register_dataset` files it under its name.
    """

    #: The registry name (set by ``register_dataset``): download help, audit records.
    dataset_name: ClassVar[str] = "image_folder"
    #: Title, licence, source, layout tree and download info; None for a generic folder.
    dataset_info: ClassVar[DatasetInfo | None] = None
    #: Which class is positive, binary or multiclass, the mapping onto fractured/intact.
    class_roles: ClassVar[ClassRoles] = ClassRoles.from_folders()
    #: The image attributes (``Sample.meta`` keys) a run is scored by, per subgroup.
    subgroup_attributes: ClassVar[tuple[str, ...]] = ()
    #: ``indexer(root, **options)`` lists the files: the dataset's own layout walker.
    indexer: ClassVar[Callable[..., DatasetIndex] | None] = None
    #: ``layout_check(folder)``: whether the dataset's layout starts at that folder.
    layout_check: ClassVar[Callable[[Path], bool] | None] = None
    #: ``meta`` keys the split manifest also writes as columns (a merged dataset's source).
    manifest_columns: ClassVar[tuple[str, ...]] = ()

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
        regions: str | Path | None = None,
    ) -> None:
        super().__init__()
        if int(batch_size) < 1:  # never silently a batch of 1 (see per_device)
            raise ConfigError("data.batch_size", batch_size, "must be an integer >= 1")
        if balance not in BALANCE_CHOICES:
            raise ValueError(
                f"data.balance={balance!r}: use none, or sampler (weighted random sampling); "
                "for a class-weighted loss set model.class_weights=balanced."
            )
        self.root = Path(root).expanduser()
        self.image_size, self.resize_mode, self.in_chans = int(image_size), resize_mode, in_chans
        self.batch_size, self.eval_batch_size = int(batch_size), eval_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        check_augment_place(augment_on)
        self.augment, self.augment_strength = augment, augment_strength
        self.augment_on = augment_on
        self.device_augment: DeviceAugment | None = None
        self.preprocess, self.normalize, self.balance = preprocess, normalize, balance
        self.normalizer = Normalizer(normalize, in_chans)
        self.use_cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".fracture_lit_cache"
        self.split_plan = SplitPlan(
            root=self.root,
            split_args=dict(
                use_given_split=use_given_split,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
                seed=split_seed,
                n_folds=n_folds,
                fold=fold,
            ),
            group_duplicates=group_duplicates,
            near_duplicates=near_duplicates,
            hash_cache=self.cache_dir / "hashes.json",
            manifest=Path(manifest) if manifest else None,
            subset_file=Path(subset_file).expanduser() if subset_file else None,
        )
        self.manifest_out = Path(manifest_out) if manifest_out else None
        self.decode_workers, self.max_bad_fraction = decode_workers, max_bad_fraction
        self.max_image_pixels = max_image_pixels
        # data.regions: a COCO file of fracture regions, auto or None; only the
        # localization scores read it (fracture_lit.localization.config).
        self.regions = regions
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
    @classmethod
    def check_config(cls, data: Mapping[str, Any], prefix: str = "data") -> None:
        """Check this dataset's own keys of ``data`` (the ``data/`` config) before anything
        is built; raise :class:`~fracture_lit.errors.ConfigError`. The keys every dataset
        shares are checked by :mod:`fracture_lit.validation`."""

    def index_options(self) -> dict[str, Any]:
        """Keyword arguments of ``indexer`` besides the root (a class subset, ...)."""
        return {}

    def build_index(self) -> DatasetIndex:
        """List the dataset's files and labels (its ``indexer`` on ``root``)."""
        if self.indexer is None:
            raise NotImplementedError(f"{type(self).__name__} sets no indexer")
        return type(self).indexer(self.root, **self.index_options())

    @property
    def index(self) -> DatasetIndex:
        if self._index is None:
            index = self.build_index()
            self.class_roles.check(index.classes, self.dataset_name)
            self._index = index
        return self._index

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def binary_labels(self) -> dict[str, int] | None:
        """This run's classes -> 0 (intact) / 1 (fractured), or None where they cannot be
        mapped (see :class:`~fracture_lit.data.class_roles.ClassRoles`)."""
        return self.class_roles.binary_map(self.classes)

    # ------------------------------------------------------------------ setup
    @property
    def manifest_in(self) -> Path | None:
        """The split manifest this run reuses (``data.manifest``), if any."""
        return self.split_plan.manifest

    def prepare_split(self) -> list[Sample]:
        """Group, split (or reuse a manifest) and write the manifest; returns the samples."""
        return self.split_plan.apply(self.index)

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
        check_bad_images(samples, bad, self.max_bad_fraction, self.root)
        self.device_augment = self._device_augment()
        if self.manifest_out is not None and self._is_global_zero():
            write_manifest(
                samples, self.manifest_out, classes=self.classes, meta_columns=self.manifest_columns
            )
        self.samples = [s for i, s in enumerate(samples) if i not in bad]
        rows = {s.path: i for i, s in enumerate(samples)}
        for split in (*SPLITS, EXTERNAL_SPLIT):  # external: only a held-out source has one
            members = [s for s in self.samples if s.split == split]
            if not members:
                continue
            self.datasets[split] = split_dataset(
                members,
                cached,
                rows,
                self._transform(train=split == "train"),
                size=self.image_size,
                mode=self.resize_mode,
                max_pixels=self.max_image_pixels,
                seed=self.sample_seed,
                return_seed=split == "train" and self.device_augment is not None,
            )
        if "train" not in self.datasets or "val" not in self.datasets:
            raise ValueError(
                f"{self.root}: the split left no {'train' if 'train' not in self.datasets else 'val'}"
                " images; check data.val_fraction / data.use_given_split."
            )
        log.info("Split sizes: %s", {k: len(v) for k, v in self.datasets.items()})

    def _trainer(self) -> Any:
        return getattr(self, "trainer", None)

    def _is_global_zero(self) -> bool:
        trainer = self._trainer()
        return trainer is None or trainer.is_global_zero

    def _device_augment(self) -> DeviceAugment | None:
        trainer = self._trainer()
        on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return choose_device_augment(
            self.augment_on, self.augment, self.augment_strength, on_gpu=on_gpu
        )

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
        return class_counts([s.label for s in self.samples if s.split == split], self.num_classes)

    def _loader(self, split: str, sampler: Any = None, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"{self.root}: this dataset has no {split!r} split.")
        batch = self.batch_size if split == "train" else (self.eval_batch_size or self.batch_size)
        return make_loader(
            self.datasets[split],
            per_device(batch, self._trainer()),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            shuffle=shuffle,
            sampler=sampler,
        )

    def train_dataloader(self) -> DataLoader:
        """Seeded order (or weighted sampling with ``balance=sampler``) per epoch, sharded
        across DDP ranks; resumed where the restored checkpoint stopped."""
        sampler = train_sampler(
            [s.label for s in self.samples if s.split == "train"],
            self.num_classes,
            seed=self.sample_seed,
            balance=self.balance,
            trainer=self._trainer(),
        )
        if self._resume_at is not None:
            epoch, batches_done = self._resume_at
            self._resume_at = None
            sampler.resume_at(epoch, batches_done * per_device(self.batch_size, self._trainer()))
        return self._loader("train", sampler=sampler, shuffle=True)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (device augmentation: train batches carry seeds) and normalise the uint8
        batch where it now lives (GPU or CPU)."""
        images, *rest = batch
        if len(rest) == 2 and self.device_augment is not None:
            labels, seeds = rest
            images, rest = self.device_augment(images, seeds), [labels]
        return [self.normalizer(images), *rest]

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", sampler=eval_sampler(self.datasets.get("val")))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", sampler=eval_sampler(self.datasets.get("test")))

    def has_split(self, split: str) -> bool:
        return split in self.datasets

    # ------------------------------------------------------------------ run record
    def sources_record(self) -> list[dict[str, Any]]:
        """Where the run's images come from, with counts per split (set up first):
        ``metrics.json``'s ``data.sources``, which the model card reads."""
        return [source_record(self.dataset_name, self.root, self.dataset_info, self.samples)]

    def label_mapping(self) -> list[dict[str, Any]] | None:
        """How each source's classes map onto the run's (a merged dataset); None for one."""
        return None

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
            "sampling": {"seed": self.sample_seed, **training_position(self._trainer())},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training order: its seed, and where in which epoch it stopped (the
        rest of the data comes from the configuration)."""
        sampling = state_dict.get("sampling") or {}
        if "seed" in sampling:
            self.sample_seed = int(sampling["seed"])
            for dataset in self.datasets.values():  # set up before the checkpoint loads
                dataset.seed = self.sample_seed
        self._resume_at = resume_point(sampling) or self._resume_at


def source_record(
    name: str, root: Path, info: DatasetInfo | None, samples: Sequence[Sample]
) -> dict[str, Any]:
    """One entry of ``data.sources``: the dataset, its licence and how many images of it
    the run used (``n``, ``n_positive``: label 1), per split."""
    splits: dict[str, int] = {}
    for sample in samples:
        splits[sample.split or "none"] = splits.get(sample.split or "none", 0) + 1
    used = [s for s in samples if s.split in (*SPLITS, EXTERNAL_SPLIT)]
    return {
        "name": name,
        "title": info.title if info else name,
        "root": str(root),
        "licence": info.licence if info else None,
        "source_url": info.source_url if info else None,
        "n": len(used),
        "n_positive": sum(s.label == 1 for s in used),
        "splits": splits,
    }
