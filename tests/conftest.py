"""Shared fixtures: tiny, CPU-only compositions of the real config tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from fracture_lit.config import CONFIG_DIR, register_resolvers

REPO_ROOT = Path(__file__).resolve().parents[1]
register_resolvers()

# One CPU epoch without the console widgets: what every test run shares.
QUICK_TRAINER = [
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "model.n_bootstrap=50",
]
# A tiny synthetic task: enough to exercise every stage in a few seconds on 2 cores.
TINY = [
    "data.n_per_class=24",
    "data.render_size=64",
    "data.image_size=32",
    "data.batch_size=16",
    *QUICK_TRAINER,
]
# The same for the real dataset samples: a small from-scratch ResNet-18.
REAL_SMALL = ["model=resnet18", "model.weights=none", *QUICK_TRAINER]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated tiny synthetic dataset shared by the session's tests."""
    return tmp_path_factory.mktemp("data") / "synthetic"


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose conf/train.yaml like `python -m fracture_lit.train` would, into output_dir."""
    return compose_entry("train", overrides, output_dir)


def compose_entry(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose an entry config (train, eval, predict, ...) as its `python -m` would."""
    GlobalHydra.instance().clear()
    os.environ["FRACTURE_LIT_ROOT"] = str(output_dir)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        # As in a real run, the job's config does not carry the hydra node.
        del cfg["hydra"]
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(output_dir / "data")
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path: Path, synthetic_root: Path) -> Iterator[callable]:
    """Factory: a tiny synthetic training config with extra overrides."""

    def make(*extra: str) -> DictConfig:
        return compose_train([*TINY, f"data.root={synthetic_root}", *extra], tmp_path)

    yield make
    GlobalHydra.instance().clear()


def run_cli(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run `python -m ...` as a user would, from another working directory."""
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "", **(env or {})}
    full_env.pop("PYTHONDONTWRITEBYTECODE")
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``gpu`` skip, saying why, on a machine without CUDA."""
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU (marked gpu); torch sees none on this machine")


# --- real dataset samples (read-only, outside the repo) -----------------------------------
SHARED_DATA_ENV = "FRACTURE_LIT_SHARED_DATA"


def shared_data_dir() -> Path:
    """``$FRACTURE_LIT_SHARED_DATA``, else ``../shared/data`` next to the repository."""
    override = os.environ.get(SHARED_DATA_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real samples of FracAtlas, multi-region and bone-break; skips the test when absent."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(
            f"real dataset samples not found at {root}; set {SHARED_DATA_ENV} to the folder "
            "holding FracAtlas/, bone-fracture-multi-region/, bone-break-classification/"
        )
    return root
