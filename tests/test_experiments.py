"""The paper presets of conf/experiment/: they compose, carry the papers' numbers, give each
model of a paper its own settings, and their whole grids run on the real data samples."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from fracture_lit.config import CONFIG_DIR
from fracture_lit.metrics import METRIC_KEYS
from tests.conftest import compose_train, run_cli

# Preset -> (paper id, {model choice -> settings its job must get}). The grid of each preset
# must hold exactly these models, each with exactly these values.
ADAM = "torch.optim.Adam"
PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"
TRANSFER_E = {
    "data.image_size": 224,
    "data.normalize": "imagenet",
    "model.weights": "imagenet",
    "model.freeze": "all",
    "model.train_bn": False,
    "trainer.max_epochs": 5,
}
EXPECTED: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "multiregion_resnet18": (
        "A",
        {
            "resnet18": {
                "data._target_": "fracture_lit.data.datasets.multiregion.MultiRegionDataModule",
                "data.image_size": 224,
                "data.augment": "flip_rotate",
                "data.normalize": "imagenet",
                "data.batch_size": 32,
                "model.backbone": "resnet18",
                "model.weights": "imagenet",
                "model.optimizer._target_": ADAM,
                "model.optimizer.lr": 1e-3,
                "model.scheduler": None,
                "trainer.max_epochs": 10,
                "monitor": "val/acc",
                "monitor_mode": "max",
                "callbacks.model_checkpoint.monitor": "val/acc",
                "callbacks.early_stopping": None,
            }
        },
    ),
    "xray_fracture_backbones": (
        "B",
        {
            "xray_cnn_5m": {
                "data._target_": "fracture_lit.data.datasets.xray_fracture.XrayFractureDataModule",
                "data.image_size": 224,
                "data.normalize": "unit",
                "data.batch_size": 32,
                "model.backbone": "xray_cnn_5m",
                "model.weights": "none",
                "model.optimizer.lr": 1e-3,
                "trainer.max_epochs": 10,
                "callbacks.early_stopping.monitor": "val/loss",
            },
            "resnet18": {
                "data.image_size": 224,
                "data.normalize": "imagenet",
                "model.weights": "imagenet",
                "trainer.max_epochs": 10,
            },
            "efficientnet_b3": {
                "data.image_size": 300,
                "data.normalize": "imagenet",
                "model.weights": "imagenet",
                "model.backbone": "efficientnet_b3",
            },
            "mobilenetv2_100": {
                "data.image_size": 224,
                "model.weights": "imagenet",
                "model.optimizer.lr": 1e-3,
                "data.batch_size": 32,
            },
        },
    ),
    "fracatlas_inception_detector": (
        "C",
        {
            "inception_v3": {
                "data._target_": "fracture_lit.data.datasets.fracatlas.FracAtlasDataModule",
                "data.image_size": 224,
                "data.augment": ["rotate_zoom_flip", "brightness_contrast"],
                "data.batch_size": 32,
                "model.weights": "imagenet",
                "model.freeze": "Mixed_7b",
                "model.train_bn": True,
                "model.drop_rate": 0.5,
                "model.optimizer.lr": 1e-2,
                "trainer.max_epochs": 50,
                "callbacks.early_stopping.patience": 3,
                "callbacks.early_stopping.monitor": "val/loss",
                "callbacks.model_checkpoint.mode": "min",
            }
        },
    ),
    "bone_break_subtypes": (
        "C",
        {
            "basic_cnn_52m": {
                "data._target_": "fracture_lit.data.datasets.bone_break.BoneBreakDataModule",
                "data.classes": [
                    "Fracture Dislocation",
                    "Comminuted fracture",
                    "Pathological fracture",
                ],
                "data.preprocess": "jet",
                "model.weights": "none",
                "model.optimizer.lr": 1e-4,
                "model.scheduler": None,
                "model.drop_rate": 0.3,
                "model.backbone_kwargs.img_size": 224,
                "trainer.max_epochs": 75,
            },
            "inception_v3": {
                "model.weights": "imagenet",
                "model.optimizer.lr": 1e-2,
                "model.freeze": "Mixed_7b",
                "model.drop_rate": 0.5,
                "model.scheduler": None,
                "trainer.max_epochs": 75,
                "callbacks.early_stopping.patience": 10,
                "monitor": "val/loss",
                "callbacks.model_checkpoint.monitor": "val/loss",
            },
            "efficientnet_b0": {
                "model.weights": "imagenet",
                "model.optimizer.lr": 1e-4,
                "model.freeze": "all",
                "model.train_bn": True,
                "model.drop_rate": 0.5,
                "model.scheduler._target_": PLATEAU,
                "model.scheduler.mode": "min",
                "trainer.max_epochs": 40,
                "callbacks.two_phase_finetuning.unfreeze_at_epoch": 20,
                "callbacks.two_phase_finetuning.lr": 5e-6,
            },
        },
    ),
    "fracatlas_efficientnet_b6": (
        "D",
        {
            "efficientnet_b6": {
                "data._target_": "fracture_lit.data.datasets.fracatlas.FracAtlasDataModule",
                "data.augment": "none",
                "data.preprocess": None,
                "data.resize_mode": "resize",
                "data.normalize": "imagenet",
                "data.batch_size": 16,
                "model.backbone": "tf_efficientnet_b6.aa_in1k",
                "model.weights": "imagenet",
                "model.optimizer._target_": ADAM,
                "model.scheduler._target_": "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts",
                "trainer.max_epochs": 7,
                "callbacks.early_stopping": None,
            }
        },
    ),
    "fracatlas_cnn_vs_frozen": (
        "E",
        {
            "small_cnn_128": {
                "data._target_": "fracture_lit.data.datasets.fracatlas.FracAtlasDataModule",
                "data.image_size": 128,
                "data.normalize": "unit",
                "data.batch_size": 32,
                "model.backbone_kwargs.img_size": 128,
                "model.weights": "none",
                "model.freeze": "none",
                "model.scheduler._target_": PLATEAU,
                "trainer.max_epochs": 30,
                "callbacks.early_stopping.monitor": "val/loss",
            },
            "efficientnet_b0": TRANSFER_E,
            "mobilenetv2_100": TRANSFER_E,
            "resnet50": {**TRANSFER_E, "model.backbone": "resnet50", "data.batch_size": 32},
        },
    ),
}
PRESETS = sorted(EXPECTED)
_METRIC = re.compile(
    rf"^(?:(?:train|val|test)/(?:{'|'.join(METRIC_KEYS)})|test/(?:{'|'.join(METRIC_KEYS)})_at_thr)$"
)


@pytest.fixture(autouse=True)
def _clear_hydra() -> Iterator[None]:
    yield
    GlobalHydra.instance().clear()


def _resolve(cfg) -> dict[str, Any]:
    """Every top-level key but hydra, resolved (catches broken interpolations)."""
    return {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }


def _grid(preset: str, tmp_path: Path) -> list[list[str]]:
    """The preset's sweep, job by job, as Hydra's basic sweeper would launch it."""
    compose_train([f"experiment={preset}"], tmp_path)
    params = HydraConfig.get().sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]


def _check_reported_value(where: str, value: Any) -> None:
    if isinstance(value, list):
        assert len(value) == 2, f"{where}: a range is [low, high], got {value}"
        low, high = value
        assert 0.0 <= low <= high <= 1.0, f"{where}: {value} is not a range within [0, 1]"
    else:
        assert isinstance(value, float | int) and not isinstance(value, bool), where
        assert 0.0 <= value <= 1.0 and not math.isnan(value), f"{where}: {value} not in [0, 1]"


def test_every_preset_file_is_a_global_package() -> None:
    for preset in PRESETS:
        path = CONFIG_DIR / "experiment" / f"{preset}.yaml"
        assert path.is_file(), path
        assert path.read_text().startswith("# @package _global_\n"), path


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_resolves_and_carries_the_paper(preset: str, tmp_path: Path) -> None:
    cfg = compose_train([f"experiment={preset}"], tmp_path)
    resolved = _resolve(cfg)
    assert resolved["task_name"] == preset
    assert resolved["tags"] and all(isinstance(t, str) for t in resolved["tags"])
    assert resolved["monitor_mode"] in ("min", "max")
    assert re.match(r"^val/\w+$", resolved["monitor"])

    paper = resolved["paper"]
    paper_id, models = EXPECTED[preset]
    assert paper["id"] == paper_id
    assert paper["title"].strip() and paper["citation"].strip()
    assert set(paper["reported"]) == set(models)
    for model, numbers in paper["reported"].items():
        assert numbers, f"{preset}: nothing reported for {model}"
        for key, value in numbers.items():
            assert _METRIC.match(key), f"{preset}: {key!r} is not one of our metric names"
            _check_reported_value(f"{preset}.paper.reported.{model}.{key}", value)
    # The job's own key into `reported` is its model choice.
    assert paper["model"] == HydraConfig.get().runtime.choices.model
    assert paper["model"] in paper["reported"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_the_grid_gets_its_models_settings(preset: str, tmp_path: Path) -> None:
    jobs = _grid(preset, tmp_path)
    models = EXPECTED[preset][1]
    chosen = [dict(o.split("=", 1) for o in job)["model"] for job in jobs]
    assert sorted(chosen) == sorted(models), "the grid is one job per paper model"
    for job, model in zip(jobs, chosen, strict=True):
        cfg = compose_train([f"experiment={preset}", *job], tmp_path / model)
        resolved = OmegaConf.create(_resolve(cfg))
        assert HydraConfig.get().runtime.choices.model == model
        assert resolved.paper.model == model
        for key, want in models[model].items():
            got = OmegaConf.select(resolved, key, throw_on_missing=True)
            got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
            assert got == want, f"{preset} job {job}: {key} = {got!r}, expected {want!r}"


def test_command_line_picks_one_models_recipe(tmp_path: Path) -> None:
    """`experiment=<paper> model=<one of its models>` (no sweep) gets that model's row."""
    cfg = compose_train(["experiment=fracatlas_cnn_vs_frozen", "model=resnet50"], tmp_path)
    assert (cfg.data.image_size, cfg.trainer.max_epochs, cfg.model.freeze) == (224, 5, "all")
    cfg = compose_train(
        ["experiment=fracatlas_cnn_vs_frozen", "model=resnet50", "trainer.max_epochs=2"], tmp_path
    )
    assert cfg.trainer.max_epochs == 2


# --------------------------------------------------------------------------- whole grids
# One tiny job per grid entry: untrained weights, one batch of train/val/test
# (fast_dev_run), small images. InceptionV3 needs at least 75 px.
TINY_RUN = [
    "model.weights=none",
    "debug=fast_dev_run",
    "trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "model.n_bootstrap=20",
]
IMAGE_SIZE = {"fracatlas_inception_detector": 80, "bone_break_subtypes": 80}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoded images shared by the grids (the FracAtlas presets decode the same files)."""
    return tmp_path_factory.mktemp("experiment_cache")


def _xray_fracture_sample(shared_data: Path, root: Path) -> Path:
    """Paper B's layout, {train,val}/{fractured,not fractured}, linked to multi-region files."""
    source = shared_data / "bone-fracture-multi-region" / "train"
    for label in ("fractured", "not fractured"):
        files = sorted(p for p in (source / label).iterdir() if p.is_file())
        for split, chosen in (("train", files[:20]), ("val", files[20:28])):
            folder = root / split / label
            folder.mkdir(parents=True)
            for f in chosen:
                (folder / f.name).symlink_to(f)
    return root


def _data_root(preset: str, shared_data: Path, tmp_path: Path) -> Path:
    return {
        "multiregion_resnet18": lambda: shared_data / "bone-fracture-multi-region",
        "xray_fracture_backbones": lambda: _xray_fracture_sample(shared_data, tmp_path / "xray"),
        "fracatlas_inception_detector": lambda: shared_data / "FracAtlas",
        "bone_break_subtypes": lambda: shared_data / "bone-break-classification",
        "fracatlas_efficientnet_b6": lambda: shared_data / "FracAtlas",
        "fracatlas_cnn_vs_frozen": lambda: shared_data / "FracAtlas",
    }[preset]()


def _run_grid(preset: str, shared_data: Path, cache_dir: Path, tmp_path: Path) -> None:
    root = _data_root(preset, shared_data, tmp_path)
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            f"experiment={preset}",
            f"data.root={root}",
            f"data.cache_dir={cache_dir}",
            f"data.image_size={IMAGE_SIZE.get(preset, 64)}",
            *TINY_RUN,
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "multirun_outputs").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    models = EXPECTED[preset][1]
    assert len(jobs) == len(models)
    seen = []
    for job in jobs:
        summary = json.loads((job / "metrics.json").read_text())
        assert summary["status"] == "done", summary.get("traceback", summary)
        config = OmegaConf.load(job / "config.yaml")
        model = config.paper.model
        seen.append(model)
        # The job ran with its own recipe (epochs, freezing) under the tiny overrides.
        for key in ("trainer.max_epochs", "model.freeze", "model.optimizer.lr"):
            if key in models[model]:
                assert OmegaConf.select(config, key) == models[model][key], (job, key)
    assert sorted(seen) == sorted(models)


# The cheapest grid stays in the default suite; the others run with `-m slow` / `-m ""`.
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=() if p == "multiregion_resnet18" else pytest.mark.slow)
        for p in PRESETS
    ],
)
def test_whole_grid_runs_on_the_real_samples(
    preset: str, shared_data: Path, cache_dir: Path, tmp_path: Path
) -> None:
    _run_grid(preset, shared_data, cache_dir, tmp_path)
