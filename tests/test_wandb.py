"""W&B offline runs, read back from their transaction logs: what a dashboard would show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracture_lit.tasks.training import run
from tests.conftest import TINY, run_cli
from tests.wandb_records import OfflineRun, read_offline_run


@pytest.fixture
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No API key and no ~/.netrc: W&B must go offline by itself, not prompt or fail."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return {"WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc"), "HOME": str(tmp_path)}


def _offline_runs(folder: Path) -> list[OfflineRun]:
    return [read_offline_run(p) for p in sorted(folder.glob("**/wandb/offline-run-*"))]


def test_offline_run_has_metrics_config_and_review(tiny_cfg, tmp_path: Path, no_login) -> None:
    results = run(tiny_cfg("logger=wandb", "task_name=wandb_check"))
    assert results["status"] == "done"
    [wb] = _offline_runs(tmp_path)
    assert wb.group == "wandb_check" and wb.job_type == "train"
    assert "logger=wandb" in wb.name  # named after the job's overrides
    model = json.loads(wb.config["model"])
    assert model.get("value", model)["backbone"] == "resnet18"
    keys = wb.history_keys
    # per-epoch metrics, then the review of the best checkpoint on val and test
    assert {"train/loss", "val/auroc", "val/youden_threshold", "test/auroc"} <= keys
    assert {"val/ece", "val/brier", "test/ece", "test/brier"} <= keys
    for split in ("val", "test"):
        assert f"{split}/confusion_matrix_table/_type" in keys
        assert f"{split}/roc_curve_table/_type" in keys
        assert f"{split}/pr_curve_table/_type" in keys
        assert f"{split}/misclassified/_type" in keys
        assert f"{split}/gradcam/_type" in keys
        assert f"{split}/figure_roc/_type" in keys
        assert f"{split}/figure_reliability/_type" in keys
    # the same artefacts are in the run folder: every val Grad-CAM panel went to W&B
    review = tmp_path / "review"
    panels = list((review / "gradcam").glob("val_*.png"))
    gradcam_files = [f for f in wb.files if f.startswith("media/images/val/gradcam")]
    assert len(gradcam_files) == len(panels) > 8  # 8 fixed + the worst mistakes
    assert {p.name for p in (review / "test").iterdir()} >= {
        "confusion.png",
        "roc.png",
        "pr.png",
        "reliability.png",
        "predictions.csv",
        "misclassified.csv",
    }
    assert len(list((review / "gradcam").glob("val_fixed_*.png"))) == 8
    assert (tmp_path / "csv" / "metrics.csv").is_file()  # the CSV logger stays on


def test_resume_continues_the_same_wandb_run(tiny_cfg, tmp_path: Path, no_login) -> None:
    first = run(tiny_cfg("logger=wandb", "~callbacks.review", "logger.wandb.log_model=true"))
    [wb1] = _offline_runs(tmp_path)
    assert f"model-{wb1.run_id}" in wb1.artifacts  # checkpoints uploaded when asked
    last = Path(first["best_model_path"]).parent / "last.ckpt"
    resumed_dir = tmp_path / "resumed"
    from tests.conftest import compose_train

    cfg = compose_train(
        [
            *TINY,
            f"data.root={tiny_cfg().data.root}",
            "logger=wandb",
            "~callbacks.review",
            f"ckpt_path={last}",
            "trainer.max_epochs=2",
        ],
        resumed_dir,
    )
    second = run(cfg)
    assert second["status"] == "done" and second["epochs"] == 2
    [wb2] = _offline_runs(resumed_dir)
    assert wb2.run_id == wb1.run_id


def test_sweep_gives_one_run_per_job_in_one_group(tmp_path: Path, synthetic_root, no_login):
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            f"data.root={synthetic_root}",
            *TINY,
            "logger=wandb",
            "callbacks.review.gradcam=false",
            "seed=1,2",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path), **no_login},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    [sweep] = list((tmp_path / "multirun_outputs").glob("*/*"))
    runs = _offline_runs(sweep)
    assert len(runs) == 2  # finished each run: the second job did not merge into the first
    assert len({r.run_id for r in runs}) == 2
    assert {r.group for r in runs} == {f"train-{sweep.name}"}
    names = sorted(r.name for r in runs)  # each named after its own overrides
    assert "seed=1" in names[0] and "seed=2" in names[1]
    assert "wandb sync" in result.stdout + result.stderr


def test_eval_is_a_run_of_job_type_eval(tiny_cfg, tmp_path: Path, synthetic_root, no_login):
    from fracture_lit.tasks import evaluating as evaluate
    from tests.conftest import compose_entry

    trained = run(tiny_cfg("~callbacks.review"))
    out = tmp_path / "eval"
    cfg = compose_entry(
        "eval",
        [
            f"ckpt_path={trained['best_model_path']}",
            f"data.root={synthetic_root}",
            "data.n_per_class=24",
            "data.render_size=64",
            "logger=wandb",
            "n_bootstrap=50",
            "gradcam.n_fixed=2",
            "gradcam.n_worst=2",
        ],
        out,
    )
    results = evaluate.run(cfg)
    [wb] = _offline_runs(out)
    assert wb.job_type == "eval" and wb.group == "eval"
    assert {"eval/auroc", "eval/threshold", "test/confusion_matrix_table/_type"} <= wb.history_keys
    assert "test/gradcam/_type" in wb.history_keys
    logged = next(row for row in wb.history if "eval/auroc" in row)
    assert json.loads(logged["eval/auroc"]) == pytest.approx(
        results["eval"]["metrics"]["eval/auroc"]
    )
