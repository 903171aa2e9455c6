"""fracture_lit.layout is the one owner of the run, review and sweep folders' file names.

The configs must write where the layout reads, a checkpoint must find its own run (and no
other run when copied elsewhere), and no other module may spell a file name of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.layout import ReviewLayout, RunLayout, SweepLayout
from tests.conftest import compose_train

REPO = Path(__file__).resolve().parents[1]


def _names(*layouts: type) -> set[str]:
    """The layouts' file and folder names with a dot (``metrics.json``, ``.hydra``)."""
    names = set()
    for layout in layouts:
        for key, value in vars(layout).items():
            if key.isupper() and isinstance(value, str | Path) and "." in str(value):
                names.add(str(value))
    return names


def test_the_configs_write_where_the_layout_reads(tmp_path: Path) -> None:
    cfg = compose_train(["logger=csv"], tmp_path)
    run = RunLayout(tmp_path)
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == run.checkpoints
    assert Path(cfg.callbacks.review.output_dir) == run.review.folder
    assert Path(cfg.data.manifest_out) == run.split_manifest
    csv_logger = cfg.logger.csv
    assert Path(csv_logger.save_dir) / csv_logger.name / str(csv_logger.version) == run.csv_logs
    # Hydra's own files, and where the SLURM launcher keeps submitit's logs.
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        hydra_cfg = compose("train", return_hydra_config=True).hydra
    assert hydra_cfg.output_subdir == RunLayout.HYDRA
    GlobalHydra.instance().clear()
    slurm = OmegaConf.load(CONFIG_DIR / "hydra" / "launcher" / "slurm.yaml")
    folder = OmegaConf.to_container(slurm, resolve=False)["submitit_folder"]
    assert folder.startswith(f"${{hydra.sweep.dir}}/{SweepLayout.SUBMITIT}/")


def test_a_checkpoint_finds_its_run_and_a_copied_one_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunLayout(tmp_path.resolve() / "run")
    run.checkpoints.mkdir(parents=True)
    best = run.checkpoints / "epoch_003.ckpt"
    best.write_bytes(b"")
    # A checkpoints folder whose run recorded nothing is no run folder yet.
    assert RunLayout.of_checkpoint(best) is None
    assert str(run.folder) in RunLayout.checkpoint_hint(best)
    run.config.write_text("seed: 1\n")
    assert RunLayout.of_checkpoint(best) == run
    # A relative path resolves to the same run.
    monkeypatch.chdir(tmp_path)
    assert RunLayout.of_checkpoint(Path("run") / "checkpoints" / best.name).folder == run.folder
    # Copied out of its run: the folder above says nothing about how it was trained.
    copied = tmp_path / "elsewhere" / "model.ckpt"
    copied.parent.mkdir()
    copied.write_bytes(b"")
    (tmp_path / RunLayout.CONFIG).write_text("seed: 2\n")  # a run-like folder above it
    assert RunLayout.of_checkpoint(copied) is None
    assert "not in a run's checkpoints/ folder" in RunLayout.checkpoint_hint(copied)


def test_review_and_sweep_paths(tmp_path: Path) -> None:
    review = RunLayout(tmp_path).review
    assert review.predictions("test") == tmp_path / "review" / "test" / "predictions.csv"
    assert review.subgroups("val").name == ReviewLayout.SUBGROUPS
    assert review.gradcam_panel("val", "worst", 3).name == "val_worst_03.png"
    assert review.split_folders() == []
    for name in ("val", "gradcam"):
        (review.folder / name).mkdir(parents=True)
    assert review.split_folders() == [review.split("val")]

    sweep = SweepLayout(tmp_path)
    for name in ("10", "2", "0", "notes"):
        (tmp_path / name).mkdir(exist_ok=True)
    assert [p.name for p in sweep.job_folders()] == ["0", "2", "10"]
    assert sweep.job(2).metrics == tmp_path / "2" / "metrics.json"
    logs = sweep.submitit / "123_2"
    logs.mkdir(parents=True)
    (logs / "123_2_0_log.err").write_text("boom\n")
    assert [p.name for p in sweep.submitit_error_logs(2)] == ["123_2_0_log.err"]
    assert sweep.submitit_error_logs(1) == []


def test_no_other_module_spells_a_layout_file_name() -> None:
    names = _names(RunLayout, ReviewLayout, SweepLayout)
    assert {"metrics.json", "predictions.csv", "config.yaml", ".hydra", "optuna.db"} <= names
    found = []
    for folder in ("fracture_lit", "hydra_plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.parent.name == "layout" and path.parent.parent.name == "fracture_lit":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, "spell these through fracture_lit.layout:\n" + "\n".join(found)
