"""One LightningDataModule per dataset. Each only says how to list its files; splitting,
caching, transforms and loaders come from :class:`FractureDataModule`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fracture_lit.data import sources
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.samples import DatasetIndex
from fracture_lit.data.synthetic.store import METADATA_FILE, generate_synthetic_dataset

SYNTHETIC_CLASSES = ("intact", "fractured")


class SyntheticDataModule(FractureDataModule):
    """The embedded default: procedurally rendered radiographs, generated once into root."""

    dataset_name = "synthetic"

    def __init__(
        self,
        root: str | Path,
        *,
        n_per_class: int = 1000,
        render_size: int = 128,
        generator_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.n_per_class, self.render_size = n_per_class, render_size
        self.generator_seed = generator_seed

    @property
    def classes(self) -> list[str]:
        return list(SYNTHETIC_CLASSES)

    def prepare_data(self) -> None:
        generate_synthetic_dataset(
            self.root,
            n_per_class=self.n_per_class,
            size=self.render_size,
            seed=self.generator_seed,
            class_names=SYNTHETIC_CLASSES,
        )

    def build_index(self) -> DatasetIndex:
        self.prepare_data()  # safe to repeat: reuses what is there, atomic when racing
        index = sources.index_image_folder(self.root, classes=list(SYNTHETIC_CLASSES))
        # The generator's own metadata file is not a skipped image worth a warning.
        index.skipped = [(p, why) for p, why in index.skipped if Path(p).name != METADATA_FILE]
        return index


class FracAtlasDataModule(FractureDataModule):
    """FracAtlas: ``images/{Fractured,Non_fractured}`` + ``dataset.csv`` (region metadata)."""

    dataset_name = "fracatlas"

    def build_index(self) -> DatasetIndex:
        return sources.index_fracatlas(self.root)


class MultiRegionDataModule(FractureDataModule):
    """Bone Fracture Multi-Region X-ray Data: ``{train,val,test}/{fractured,not fractured}``."""

    dataset_name = "multiregion"

    def build_index(self) -> DatasetIndex:
        return sources.index_multiregion(self.root)


class XrayFractureDataModule(FractureDataModule):
    """Paper B's "Fracture Detection Using X-ray Images": ``{train,val}/{fractured,...}``."""

    dataset_name = "xray_fracture"

    def build_index(self) -> DatasetIndex:
        return sources.index_xray_fracture(self.root)


class BoneBreakDataModule(FractureDataModule):
    """Bone Break Classification: ``<Class>/{Train,Test}``, all 10 classes or a subset."""

    dataset_name = "bone_break"

    def __init__(
        self, root: str | Path, *, classes: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self.class_subset = list(classes) if classes else None

    def build_index(self) -> DatasetIndex:
        return sources.index_bone_break(self.root, classes=self.class_subset)


class ImageFolderDataModule(FractureDataModule):
    """Any folder-per-class dataset, optionally with ``train/val/test`` on top."""

    dataset_name = "image_folder"

    def __init__(
        self,
        root: str | Path,
        *,
        classes: Sequence[str] | None = None,
        positive_class: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.class_subset = list(classes) if classes else None
        self.positive_class = positive_class

    def build_index(self) -> DatasetIndex:
        return sources.index_image_folder(
            self.root, classes=self.class_subset, positive_class=self.positive_class
        )
