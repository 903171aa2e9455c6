"""Dataset indexers, the registry and the download command, on the real samples and on
small fake layouts built in tmp_path."""

from __future__ import annotations

import os
import pickle
import time
from collections import Counter
from pathlib import Path

import hydra
import pytest

from fracture_lit.config import CONFIG_DIR
from fracture_lit.data import download
from fracture_lit.data.base import FractureDataModule
from fracture_lit.data.class_roles import ClassRoles
from fracture_lit.data.dataset_info import DatasetLayoutError
from fracture_lit.data.datasets.bone_break import index_bone_break
from fracture_lit.data.datasets.fracatlas import index_fracatlas
from fracture_lit.data.datasets.image_folder import index_image_folder
from fracture_lit.data.datasets.multiregion import index_multiregion
from fracture_lit.data.datasets.xray_fracture import index_xray_fracture
from fracture_lit.data.registry import (
    DATASETS,
    dataset_class,
    find_dataset_root,
    get_dataset,
    index_dataset,
    register_dataset,
    registered_datasets,
)
from fracture_lit.data.samples import IMAGE_SUFFIXES
from tests.conftest import compose_train

PAPER_C_CLASSES = ["Fracture Dislocation", "Comminuted fracture", "Pathological fracture"]


def _dataset(shared_data: Path, folder: str) -> Path:
    path = shared_data / folder
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _check_index_basics(index) -> None:
    paths = [s.path for s in index.samples]
    assert paths == sorted(paths), "samples must be sorted by path"
    assert all(os.path.isabs(p) for p in paths)
    assert len(set(paths)) == len(paths)
    assert all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)
    assert {s.label for s in index.samples} <= set(range(len(index.classes)))


# --------------------------------------------------------------------------- FracAtlas


def test_fracatlas_sample(shared_data: Path) -> None:
    index = index_fracatlas(_dataset(shared_data, "FracAtlas"))
    _check_index_basics(index)
    assert index.classes == ["non_fractured", "fractured"]
    assert len(index.samples) == 506
    assert sum(s.label for s in index.samples) == 156
    assert all(s.given_split is None for s in index.samples)
    assert index.skipped == []
    by_name = {s.name: s for s in index.samples}
    odd = by_name["IMG0003298.jpg"]
    assert odd.label == 1, "the folder is the truth"
    assert "csv says fractured=0" in odd.notes and "Fractured" in odd.notes
    noted = [s.name for s in index.samples if s.notes]
    assert noted == ["IMG0003298.jpg"]
    for s in index.samples:
        assert s.meta["region"] in {"hand", "leg", "hip", "shoulder", "mixed"}
        assert set(str(s.meta["view"]).split("+")) <= {"frontal", "lateral", "oblique"}
        assert isinstance(s.meta["hardware"], bool) and isinstance(s.meta["multiscan"], bool)
        assert isinstance(s.meta["fracture_count"], int)
        assert (s.meta["fracture_count"] > 0) == bool(s.label) or s.name == "IMG0003298.jpg"
    # IMG0000012.jpg: hand + shoulder flagged (and mixed), lateral view.
    first = by_name["IMG0000012.jpg"]
    assert first.meta["region"] == "mixed" and first.meta["regions"] == ["hand", "shoulder"]
    assert first.meta["view"] == "lateral"


def test_fracatlas_missing_csv_and_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "Fractured" / "a.jpg")
    _touch(tmp_path / "images" / "Non_fractured" / "b.jpg")
    with pytest.raises(DatasetLayoutError, match="dataset.csv") as err:
        index_fracatlas(tmp_path)
    assert str(tmp_path) in str(err.value)
    (tmp_path / "dataset.csv").write_text(
        "image_id,hand,fractured,fracture_count\nb.jpg,1,0,0\ngone.jpg,1,0,0\n"
    )
    index = index_fracatlas(tmp_path)
    assert [s.notes for s in index.samples] == ["not listed in dataset.csv", ""]
    assert any("gone.jpg" in p and "no image file" in why for p, why in index.skipped)


# --------------------------------------------------------------------------- multi-region


def test_multiregion_sample(shared_data: Path) -> None:
    index = index_multiregion(_dataset(shared_data, "bone-fracture-multi-region"))
    _check_index_basics(index)
    assert index.classes == ["not_fractured", "fractured"]
    counts = Counter((s.given_split, s.label) for s in index.samples)
    assert counts == {("train", 0): 400, ("train", 1): 400, ("test", 0): 100, ("test", 1): 100}
    split_counts = Counter(s.given_split for s in index.samples)
    assert split_counts == {"train": 800, "test": 200}
    for s in index.samples:
        folder = Path(s.path).parent.name
        assert (folder == "fractured") == (s.label == 1)


def test_multiregion_same_as_image_folder(shared_data: Path) -> None:
    root = _dataset(shared_data, "bone-fracture-multi-region")
    generic = index_image_folder(root)
    # Two classes: negative first, the positive (fractured) one second, by name.
    assert generic.classes == ["not fractured", "fractured"]
    assert Counter(s.given_split for s in generic.samples) == {"train": 800, "test": 200}


def test_xray_fracture_layout_and_zip_wrapper(tmp_path: Path) -> None:
    wrapped = tmp_path / "archive (6)"
    for split in ("train", "val"):
        for cls in ("fractured", "not fractured"):
            _touch(wrapped / split / cls / f"{split}_{cls[:3]}.jpg")
    _touch(wrapped / "train" / "fractured" / "notes.txt")
    _touch(wrapped / "train" / "fractured" / ".DS_Store")
    index = index_xray_fracture(tmp_path)  # the download folder, one level above the data
    assert index.classes == ["not_fractured", "fractured"]
    assert Counter(s.given_split for s in index.samples) == {"train": 2, "val": 2}
    assert len(index.skipped) == 1 and index.skipped[0][0].endswith("notes.txt")
    assert "not an image" in index.skipped[0][1]
    assert find_dataset_root("xray_fracture", tmp_path) == wrapped
    # val/ is required here: paper B's dataset has train + val
    (wrapped / "val" / "fractured" / "val_fra.jpg").unlink()
    (wrapped / "val" / "not fractured" / "val_not.jpg").unlink()
    for d in ("val/fractured", "val/not fractured", "val"):
        (wrapped / d).rmdir()
    with pytest.raises(DatasetLayoutError, match="no 'val/' folder"):
        index_xray_fracture(tmp_path)


# --------------------------------------------------------------------------- bone break


def test_bone_break_sample(shared_data: Path) -> None:
    root = _dataset(shared_data, "bone-break-classification")
    index = index_bone_break(root)
    _check_index_basics(index)
    assert len(index.samples) == 595
    assert len(index.classes) == 10
    assert index.classes == sorted(index.classes, key=str.casefold)
    assert set(index.classes) == {p.name for p in root.iterdir() if p.is_dir()}
    assert {s.given_split for s in index.samples} == {"train", "test"}
    for s in index.samples:
        assert Path(s.path).parents[1].name == index.classes[s.label]
        assert Path(s.path).parent.name.lower() == s.given_split


def test_bone_break_paper_c_subset(shared_data: Path) -> None:
    root = _dataset(shared_data, "bone-break-classification")
    # case and '_' vs ' ' do not matter; the given order defines the labels
    wanted = ["fracture dislocation", "COMMINUTED fracture", "Pathological_fracture"]
    index = index_bone_break(root, classes=wanted)
    assert index.classes == PAPER_C_CLASSES
    assert {s.label for s in index.samples} == {0, 1, 2}
    for s in index.samples:
        assert Path(s.path).parents[1].name == PAPER_C_CLASSES[s.label]
    full = index_bone_break(root)
    expected = sum(1 for s in full.samples if full.classes[s.label] in PAPER_C_CLASSES)
    assert len(index.samples) == expected
    assert sum(why == "class not selected" for _, why in index.skipped) == 7


def test_bone_break_unknown_class_lists_available(shared_data: Path) -> None:
    root = _dataset(shared_data, "bone-break-classification")
    with pytest.raises(ValueError, match="Unknown bone-break class") as err:
        index_bone_break(root, classes=["Fracture Dislocation", "Stress fracture"])
    assert "Stress fracture" in str(err.value) and "Spiral Fracture" in str(err.value)


# --------------------------------------------------------------------------- generic folder


def test_image_folder_flat_and_split(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    _touch(flat / "cat" / "a.PNG")
    _touch(flat / "dog" / "b.jpeg")
    _touch(flat / "dog" / "readme.md")
    _touch(flat / ".hidden" / "c.jpg")
    with pytest.raises(ValueError, match="data.positive_class"):
        index_image_folder(flat)  # neither name says which one is positive
    index = index_image_folder(flat, positive_class="dog")
    assert index.classes == ["cat", "dog"]
    assert [(s.name, s.label, s.given_split) for s in index.samples] == [
        ("a.PNG", 0, None),
        ("b.jpeg", 1, None),
    ]
    assert index.skipped == [(str(flat / "dog" / "readme.md"), "not an image file (suffix '.md')")]
    assert index_image_folder(flat, classes=["Dog"]).classes == ["dog"]

    split = tmp_path / "split"
    _touch(split / "Training" / "yes" / "1.jpg")
    _touch(split / "Testing" / "no" / "2.jpg")
    index = index_image_folder(split, split_dirs={"Training": "train", "Testing": "test"})
    assert [(s.name, s.given_split) for s in index.samples] == [
        ("2.jpg", "test"),
        ("1.jpg", "train"),
    ]
    auto = tmp_path / "auto"
    _touch(auto / "train" / "yes" / "1.jpg")
    _touch(auto / "valid" / "no" / "2.jpg")
    assert {s.given_split for s in index_image_folder(auto).samples} == {"train", "val"}


# --------------------------------------------------------------------------- layout errors


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_root_names_path_and_download(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / name
    with pytest.raises(DatasetLayoutError) as err:
        index_dataset(name, missing)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert str(missing) in message
    assert f"python -m fracture_lit.data.download {name}" in message
    assert "Expected layout" in message and "├──" in message
    assert DATASETS[name].source_url in message
    assert pickle.loads(pickle.dumps(err.value)).args == err.value.args


def test_wrong_layout_names_path(shared_data: Path) -> None:
    fracatlas = _dataset(shared_data, "FracAtlas")
    with pytest.raises(DatasetLayoutError) as err:
        index_multiregion(fracatlas)
    message = str(err.value)
    assert str(fracatlas) in message and "no 'train/' folder" in message
    assert "python -m fracture_lit.data.download multiregion" in message
    assert (
        "kaggle datasets download -d bmadushanirodrigo/fracture-multi-region-x-ray-data" in message
    )
    with pytest.raises(DatasetLayoutError, match="images"):
        index_fracatlas(_dataset(shared_data, "bone-break-classification"))
    with pytest.raises(DatasetLayoutError):
        index_bone_break(fracatlas)


def test_empty_class_folders_are_a_layout_error(tmp_path: Path) -> None:
    (tmp_path / "train" / "fractured").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no image files"):
        index_multiregion(tmp_path)


# --------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert set(DATASETS) == {"fracatlas", "multiregion", "xray_fracture", "bone_break"}
    assert (
        DATASETS["multiregion"].kaggle_slug == "bmadushanirodrigo/fracture-multi-region-x-ray-data"
    )
    assert DATASETS["bone_break"].kaggle_slug == "pkdarabi/bone-break-classification-image-dataset"
    assert (
        DATASETS["xray_fracture"].kaggle_slug
        == "vuppalaadithyasairam/bone-fracture-detection-using-xrays"
    )
    assert DATASETS["fracatlas"].doi == "10.6084/m9.figshare.22363012"
    for name, info in DATASETS.items():
        assert info.name == name and info.licence and info.layout and info.source_url
        assert get_dataset(info.default_dir) is info
    assert get_dataset("Bone-Break") is DATASETS["bone_break"]
    with pytest.raises(KeyError, match="known datasets"):
        get_dataset("mura")


def test_every_data_config_names_its_registered_dataset(tmp_path: Path) -> None:
    """conf/data/<name>.yaml and the module registered as <name> are the same dataset."""
    registered = registered_datasets()
    configs = sorted(p.stem for p in (CONFIG_DIR / "data").glob("[!_]*.yaml"))
    assert configs == sorted(registered)
    for name in configs:
        cfg = compose_train([f"data={name}"], tmp_path)
        cls = hydra.utils.get_class(cfg.data._target_)
        assert cls is registered[name] and cls.dataset_name == name
        assert cls.__module__ == f"fracture_lit.data.datasets.{name}"
    # Run folders written before the registry name the old module: it still resolves.
    old = hydra.utils.get_class("fracture_lit.data.datamodules.FracAtlasDataModule")
    assert old is registered["fracatlas"]
    assert registered["fracatlas"].subgroup_attributes == ("region", "view", "hardware")
    assert all(registered[n].subgroup_attributes == () for n in configs if n != "fracatlas")


def test_class_roles_agree_with_the_indexers(shared_data: Path) -> None:
    cases = {
        "fracatlas": "FracAtlas",
        "multiregion": "bone-fracture-multi-region",
        "bone_break": "bone-break-classification",
    }
    for name, folder in cases.items():
        cls = dataset_class(name)
        index = index_dataset(name, _dataset(shared_data, folder))
        cls.class_roles.check(index.classes, name)
        mapping = cls.class_roles.binary_map(index.classes)
        if name == "bone_break":
            assert mapping is None, "ten fracture subtypes have no intact class"
        else:
            assert mapping == {index.classes[0]: 0, index.classes[1]: 1}
            assert cls.class_roles.positive == index.classes[1] == "fractured"
    flat = ClassRoles.from_folders()
    assert flat.binary_map(["no", "yes"]) == {"no": 0, "yes": 1}
    assert flat.binary_map(["a", "b", "c"]) is None


def test_register_dataset_refuses_what_it_cannot_use() -> None:
    def index(root: str) -> None:
        raise AssertionError("never indexed here")

    with pytest.raises(TypeError, match="indexer"):

        @register_dataset("test_no_indexer")
        class NoIndexer(FractureDataModule):
            pass

    with pytest.raises(TypeError, match="subgroup_attributes"):

        @register_dataset("test_bad_attributes")
        class BadAttributes(FractureDataModule):
            indexer = staticmethod(index)
            subgroup_attributes = "site"  # a string, not a tuple of keys

    with pytest.raises(ValueError, match="binary"):
        ClassRoles("binary", positive="fractured")  # no label mapping
    with pytest.raises(ValueError, match="0 or 1"):
        ClassRoles.multiclass({"a": 0, "b": 2})

    with pytest.raises(ValueError, match="registered twice"):

        @register_dataset("fracatlas")
        class Impostor(FractureDataModule):
            indexer = staticmethod(index)

    assert dataset_class("fracatlas").__name__ == "FracAtlasDataModule"
    assert "test_no_indexer" not in registered_datasets()


# --------------------------------------------------------------------------- download


def test_download_unknown_name_lists_known(capsys: pytest.CaptureFixture[str]) -> None:
    assert download.main(["mura"]) == 2
    err = capsys.readouterr().err
    assert "Unknown dataset 'mura'" in err
    for name in DATASETS:
        assert name in err


def test_download_without_kaggle_tool_fails_fast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(download, "_kaggle_tool", lambda: None)
    start = time.monotonic()
    assert download.main(["multiregion", "--dest", str(tmp_path / "mr")]) == 1
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "pip install kagglehub" in err
    assert (
        "https://www.kaggle.com/datasets/bmadushanirodrigo/fracture-multi-region-x-ray-data" in err
    )
    assert "not fractured/" in err  # the expected layout
    assert not (tmp_path / "mr").exists()


def test_download_offline_fails_fast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(download, "can_connect", lambda host, *a, **k: False)
    assert download.main(["fracatlas", "--dest", str(tmp_path / "fa")]) == 1
    err = capsys.readouterr().err
    assert "Cannot reach api.figshare.com" in err
    assert "figshare.com/articles/dataset/The_dataset/22363012" in err
    assert "Non_fractured/" in err


def test_can_connect_is_bounded() -> None:
    start = time.monotonic()
    assert download.can_connect("127.0.0.1", port=9, timeout=1.0) is False  # discard port
    assert time.monotonic() - start < 3
