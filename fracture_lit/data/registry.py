"""The dataset registry: a dataset is one module, registered by name (as timm registers models).

A dataset module defines its indexer, its layout check, its :class:`DatasetInfo`, its
:class:`ClassRoles`, its subgroup attributes and its DataModule, and registers the
DataModule with ``@register_dataset("<name>")``; the class attributes are documented on
:class:`~fracture_lit.data.base.FractureDataModule`, and
:mod:`fracture_lit.data.datasets.fracatlas` is a complete example (the README's "Add your
own dataset" a minimal one).

Its YAML (``conf/data/<name>.yaml``) names the class as ``_target_``. The built-in datasets
are the modules of :mod:`fracture_lit.data.datasets`; every lookup here imports them all
first, so no list names them and no import order matters. A user's dataset module is
imported (and so registered) by Hydra when its YAML's ``_target_`` is instantiated.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetInfo
from fracture_lit.data.folders import absolute, locate_root
from fracture_lit.data.samples import DatasetIndex

__all__ = [
    "DATASETS",
    "dataset_class",
    "find_dataset_root",
    "get_dataset",
    "index_dataset",
    "register_dataset",
    "registered_datasets",
    "subgroup_attributes",
]

#: The package whose every module is a built-in dataset.
BUILTIN_PACKAGE = "fracture_lit.data.datasets"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_REGISTRY: dict[str, type[FractureDataModule]] = {}
_builtins_loaded = False

M = TypeVar("M", bound=type[FractureDataModule])


def register_dataset(name: str) -> Callable[[M], M]:
    """Class decorator: file a DataModule under ``name`` (the ``data=<name>`` choice).

    Checks the declaration at import time, so a dataset module that forgot its indexer
    or declared odd class roles fails when it is written, not in the middle of a run.
    """
    if not _NAME.match(name):
        raise ValueError(f"Dataset name {name!r}: use lower case letters, digits and '_'.")

    def register(cls: M) -> M:
        _check_declaration(name, cls)
        existing = _REGISTRY.get(name)
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise ValueError(
                f"Dataset name {name!r} is registered twice: by {_qualified(existing)} and "
                f"by {_qualified(cls)}. Give one of them another name."
            )
        cls.dataset_name = name
        _REGISTRY[name] = cls
        return cls

    return register


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_declaration(name: str, cls: type) -> None:
    where = f"@register_dataset({name!r}) on {_qualified(cls)}"
    if not (isinstance(cls, type) and issubclass(cls, FractureDataModule)):
        raise TypeError(f"{where}: the class must subclass FractureDataModule.")
    if not callable(cls.indexer):
        raise TypeError(f"{where}: set indexer = staticmethod(<function root -> DatasetIndex>).")
    if not isinstance(cls.class_roles, ClassRoles):
        raise TypeError(f"{where}: class_roles must be a ClassRoles (e.g. ClassRoles.binary).")
    attributes = cls.subgroup_attributes
    if not isinstance(attributes, tuple) or not all(isinstance(a, str) for a in attributes):
        raise TypeError(f"{where}: subgroup_attributes must be a tuple of meta keys.")
    info = cls.dataset_info
    if info is not None and (not isinstance(info, DatasetInfo) or info.name != name):
        raise TypeError(f"{where}: dataset_info must be a DatasetInfo named {name!r}.")
    if cls.layout_check is not None and not callable(cls.layout_check):
        raise TypeError(f"{where}: layout_check must be a function of a folder, or None.")


def _load_builtin_datasets() -> None:
    """Import every module of :data:`BUILTIN_PACKAGE` (each registers itself).

    Imported by name here, not at the top: the dataset modules import this one for
    ``register_dataset``, and discovering them keeps "add a dataset" free of any list.
    """
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{module.name}")
    except BaseException:
        _builtins_loaded = False
        raise


def registered_datasets() -> dict[str, type[FractureDataModule]]:
    """Every registered dataset (built-in ones and those imported so far), by name."""
    _load_builtin_datasets()
    return dict(sorted(_REGISTRY.items()))


def _key(name: str) -> str:
    return name.strip().casefold().replace("-", "_").replace(" ", "_")


def _names(cls: type[FractureDataModule]) -> set[str]:
    info = cls.dataset_info
    if info is None:
        return {cls.dataset_name}
    return {cls.dataset_name, info.name, _key(info.default_dir), *info.aliases}


def dataset_class(name: str) -> type[FractureDataModule]:
    """The DataModule of dataset ``name`` (its name, download folder or an alias; '-', '_'
    and case are ignored)."""
    key = _key(name)
    for cls in registered_datasets().values():
        if key in _names(cls):
            return cls
    known = ", ".join(registered_datasets())
    raise KeyError(f"Unknown dataset {name!r}; known datasets: {known}")


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a dataset that has one, by name or alias."""
    key = _key(name)
    for cls in registered_datasets().values():
        if cls.dataset_info is not None and key in _names(cls):
            return cls.dataset_info
    known = ", ".join(DATASETS)
    raise KeyError(f"Unknown dataset {name!r}; known datasets: {known}")


def subgroup_attributes(name: str) -> tuple[str, ...]:
    """The image attributes dataset ``name`` is scored by per subgroup (``()`` for none)."""
    return dataset_class(name).subgroup_attributes


def find_dataset_root(name: str, path: str | os.PathLike[str]) -> Path:
    """The folder under ``path`` (through single-folder wrappers) that holds dataset ``name``.

    What the indexers accept as root; useful to print after a download unpacked
    ``data/FracAtlas/FracAtlas/...``. Returns ``path`` itself when nothing matches.
    """
    check = dataset_class(name).layout_check
    return absolute(path) if check is None else locate_root(absolute(path), check)


def index_dataset(name: str, root: str | os.PathLike[str], **kwargs: object) -> DatasetIndex:
    """Run the indexer of dataset ``name`` (a registry name or an alias) on ``root``."""
    return dataset_class(name).indexer(root, **kwargs)


class _Downloadable(Mapping[str, DatasetInfo]):
    """The datasets ``python -m fracture_lit.data.download`` can fetch, read from the
    registry when first looked at."""

    def _infos(self) -> dict[str, DatasetInfo]:
        return {
            name: cls.dataset_info
            for name, cls in registered_datasets().items()
            if cls.dataset_info is not None and cls.dataset_info.downloadable
        }

    def __getitem__(self, name: str) -> DatasetInfo:
        return self._infos()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos())

    def __len__(self) -> int:
        return len(self._infos())

    def __repr__(self) -> str:
        return f"DATASETS({sorted(self._infos())})"


#: Name -> :class:`DatasetInfo` of every downloadable dataset.
DATASETS: Mapping[str, DatasetInfo] = _Downloadable()
