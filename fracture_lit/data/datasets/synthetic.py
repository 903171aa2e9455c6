"""The embedded default dataset: procedurally rendered radiographs, generated once into root.

``<data.root>/<parameters>/{intact,fractured}/*.png`` plus ``synthetic.json`` (the parameters
that made it), one such folder per setting; see :mod:`fracture_lit.data.synthetic.store`.
Nothing to download, so a first run, CI and the smoke tests work out of the box.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.datasets.image_folder import index_image_folder
from fracture_lit.data.registry import register_dataset
from fracture_lit.data.samples import DatasetIndex
from fracture_lit.data.synthetic.store import (
    METADATA_FILE,
    SyntheticParams,
    synthetic_folder,
    write_synthetic_dataset,
)
from fracture_lit.errors import ConfigError, UserError

__all__ = ["SYNTHETIC_CLASSES", "SyntheticDataModule", "index_synthetic"]

SYNTHETIC_CLASSES = ("intact", "fractured")


def index_synthetic(root: str | os.PathLike[str]) -> DatasetIndex:
    """Index a generated folder (the generator's own metadata file is not a skipped image
    worth a warning)."""
    index = index_image_folder(root, classes=list(SYNTHETIC_CLASSES))
    index.skipped = [(p, why) for p, why in index.skipped if Path(p).name != METADATA_FILE]
    return index


@register_dataset("synthetic")
class SyntheticDataModule(FractureDataModule):
    """The embedded default: procedurally rendered radiographs, generated once into root."""

    class_roles = ClassRoles.binary(*SYNTHETIC_CLASSES)
    indexer = staticmethod(index_synthetic)

    def __init__(
        self,
        root: str | Path,
        *,
        n_per_class: int = 1000,
        render_size: int = 128,
        generator_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.n_per_class, self.render_size = n_per_class, render_size
        self.generator_seed = generator_seed
        #: The data root as given (``data.root``); ``root`` is this dataset's folder under it,
        #: keyed by its parameters, so datasets of other settings stay side by side.
        self.data_root = Path(root).expanduser()
        try:
            folder = synthetic_folder(self.data_root, self.params)
        except ValueError as error:
            raise UserError(str(error)) from None
        super().__init__(folder, **kwargs)

    @classmethod
    def check_config(cls, data: Mapping[str, Any], prefix: str = "data") -> None:
        value = data.get("n_per_class")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 2
        ):
            raise ConfigError(f"{prefix}.n_per_class", value, "must be an integer >= 2, or null")

    @property
    def classes(self) -> list[str]:
        return list(SYNTHETIC_CLASSES)

    @property
    def params(self) -> SyntheticParams:
        """What the images depend on (the folder at ``root`` must have been made by these)."""
        return SyntheticParams(
            self.n_per_class, self.render_size, self.generator_seed, SYNTHETIC_CLASSES
        )

    def prepare_data(self) -> None:
        write_synthetic_dataset(self.root, self.params)

    def build_index(self) -> DatasetIndex:
        self.prepare_data()  # safe to repeat: reuses what is there, atomic when racing
        return super().build_index()
