"""eval and predict on the real dataset samples in ../shared/data, as a user runs them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from fracture_lit.models.loading import CheckpointError, ClassMismatchError, load_checkpoint
from fracture_lit.tasks import evaluating as evaluate_cli
from fracture_lit.tasks.training import run as train_run
from tests.conftest import REAL_SMALL, compose_entry, run_cli
from tests.dicom_files import write_dicom

FRACATLAS, MULTIREGION, BONE_BREAK = (
    "FracAtlas",
    "bone-fracture-multi-region",
    "bone-break-classification",
)
SMALL = [*REAL_SMALL, "~callbacks.review", "data.image_size=32", "data.batch_size=32"]


def _root(shared: Path, name: str) -> Path:
    path = shared / name
    if not path.is_dir():
        pytest.skip(f"{path} not present (real dataset sample)")
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def fracatlas_runs(shared_data: Path, cache: Path, tmp_path_factory) -> Callable[[str], dict]:
    """A tiny model trained on the FracAtlas sample, once per precision asked for."""
    made: dict[str, dict] = {}

    def trained(precision: str) -> dict:
        if precision not in made:
            out = tmp_path_factory.mktemp(f"fracatlas_run_{precision}")
            root = _root(shared_data, FRACATLAS)
            overrides = ["data=fracatlas", f"data.root={root}", f"data.cache_dir={cache}", *SMALL]
            cfg = compose_entry("train", [*overrides, f"trainer.precision={precision}"], out)
            made[precision] = train_run(cfg)
            assert made[precision]["status"] == "done"
        return made[precision]

    return trained


@pytest.fixture(scope="module")
def fracatlas_run(fracatlas_runs: Callable[[str], dict]) -> dict:
    return fracatlas_runs("32-true")


def _eval(out: Path, *overrides: str) -> dict:
    cfg = compose_entry("eval", list(overrides), out)
    return evaluate_cli.run(cfg)


# Trained in fp32 and under bf16 autocast (on any CPU): scored in fp32 either way.
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_eval_on_the_training_data_reuses_its_split(
    fracatlas_runs, precision, shared_data, cache, tmp_path
):
    fracatlas_run = fracatlas_runs(precision)
    ckpt = fracatlas_run["best_model_path"]
    root = _root(shared_data, FRACATLAS)
    results = _eval(
        tmp_path,
        f"ckpt_path={ckpt}",
        "data=fracatlas",
        f"data.root={root}",
        f"data.cache_dir={cache}",
        "n_bootstrap=200",
        "gradcam.n_fixed=4",
        "gradcam.n_worst=4",
    )
    trained_test = fracatlas_run["test"]
    # Same manifest -> the same test images; same (validation-chosen) threshold -> the
    # numbers training reported at that threshold.
    assert results["eval"]["n"] == trained_test["n"]
    assert results["threshold"] == pytest.approx(load_checkpoint(ckpt).threshold)
    assert results["threshold"] == pytest.approx(trained_test["metrics"]["test/threshold"])
    for key in ("acc", "recall", "specificity", "f1"):
        assert results["eval"]["metrics"][f"eval/{key}"] == pytest.approx(
            trained_test["metrics"][f"test/{key}_at_thr"], abs=1e-6
        )
    point, low, high = results["eval"]["ci95"]["auroc"]
    assert low <= point <= high and high - low > 0
    # per-region metrics from FracAtlas' csv: in "subgroups" only (old folders' "per_region"
    # is still read by the report, see test_html_report)
    assert "per_region" not in results
    regions = results["subgroups"]["region"]
    assert set(regions) <= {"hand", "leg", "hip", "shoulder", "mixed"} and "hand" in regions
    assert sum(r["n"] for r in regions.values()) <= results["eval"]["n"]
    subgroups = results["subgroups"]  # region, view and hardware: n, sens, spec, AUROC, CIs
    assert subgroups["region"] == regions and set(subgroups["hardware"]) == {"yes", "no"}
    assert sum(g["n"] for g in subgroups["hardware"].values()) == results["eval"]["n"]
    small = [g for a in subgroups.values() for g in a.values() if g["n"] < 10]
    assert small and all("ci95" not in g for g in small)  # no interval below 10 images
    # files a reviewer opens
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "done" and written["split"] == "test"
    for name in ("roc.png", "confusion.png", "pr.png", "predictions.csv"):
        assert (tmp_path / "review" / "test" / name).is_file()
    assert len(list((tmp_path / "review" / "gradcam").glob("test_fixed_*.png"))) == 4
    page = (tmp_path / "report.html").read_text()
    assert f"at p &gt; {results['threshold']:.3f}" in page  # scored at the checkpoint's threshold
    assert "Per region" in page and "Per view — eval on test (95% CI)" in page


def test_eval_across_datasets_for_external_validation(fracatlas_run, shared_data, cache, tmp_path):
    """Trained on FracAtlas (non_fractured/fractured), scored on every multi-region image
    (not_fractured/fractured): the classes match by role."""
    root = _root(shared_data, MULTIREGION)
    results = _eval(
        tmp_path,
        f"ckpt_path={fracatlas_run['best_model_path']}",
        "data=multiregion",
        f"data.root={root}",
        f"data.cache_dir={cache}",
        "split=all",
        "n_bootstrap=100",
        "gradcam.enabled=false",
    )
    n_images = sum(1 for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert results["eval"]["n"] == n_images - len(results.get("skipped", []))
    assert results["data"] == "MultiRegionDataModule" and results["split"] == "all"
    assert "per_region" not in results  # multi-region records no region per image
    with (tmp_path / "review" / "all" / "predictions.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == results["eval"]["n"]
    assert {r["label"] for r in rows} == {"non_fractured", "fractured"}  # the model's names


def test_eval_refuses_data_with_other_classes(fracatlas_run, shared_data, cache, tmp_path):
    root = _root(shared_data, BONE_BREAK)
    with pytest.raises(ClassMismatchError, match=r"\['non_fractured', 'fractured'\].*Comminuted"):
        _eval(
            tmp_path,
            f"ckpt_path={fracatlas_run['best_model_path']}",
            "data=bone_break",
            f"data.root={root}",
            f"data.cache_dir={cache}",
        )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "failed" and "classes" in written["error"]


def test_eval_cli_names_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    fake = tmp_path / "model.ckpt"
    fake.write_bytes(b"PK\x03\x04 not really a checkpoint")
    result = run_cli(["-m", "fracture_lit.eval", f"ckpt_path={fake}"], cwd=tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"ckpt_path={fake}" in output and "weights_only=True" in output
    assert "Traceback" not in output
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_predict_jpeg_dicom_and_a_corrupt_file(fracatlas_run, shared_data, tmp_path: Path) -> None:
    source = next(iter(sorted((_root(shared_data, FRACATLAS) / "images").rglob("*.jpg"))))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / source.name).write_bytes(source.read_bytes())
    grey = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    write_dicom(inputs / "study_m2.dcm", grey, window=(2048, 4096))
    write_dicom(inputs / "study_m1.dcm", grey, monochrome1=True, window=(2048, 4096))
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (inputs / "README.txt").write_text("not an image: ignored")
    result = run_cli(
        [
            "-m",
            "fracture_lit.predict",
            f"ckpt_path={fracatlas_run['best_model_path']}",
            f"input={inputs}",
            "gradcam.enabled=true",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "out" / "predictions.csv").open() as stream:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(stream)}
    assert set(rows) == {source.name, "study_m1.dcm", "study_m2.dcm", "broken.png"}
    assert rows["broken.png"]["status"] == "error" and "broken.png" in rows["broken.png"]["error"]
    ok = [rows[n] for n in (source.name, "study_m1.dcm", "study_m2.dcm")]
    assert all(r["status"] == "ok" and Path(r["gradcam"]).is_file() for r in ok)
    threshold = load_checkpoint(fracatlas_run["best_model_path"]).threshold
    for row in ok:
        p = float(row["probability"])
        assert row["label"] == ("fractured" if p > threshold else "non_fractured")
        assert float(row["prob_fractured"]) + float(row["prob_non_fractured"]) == pytest.approx(
            1, abs=1e-5
        )
    # MONOCHROME1 is inverted back: the same pixels, the same prediction.
    assert float(rows["study_m1.dcm"]["probability"]) == pytest.approx(
        float(rows["study_m2.dcm"]["probability"]), abs=1e-6
    )
    # The DICOM holds the JPEG's pixels: windowed back, it predicts like the JPEG.
    assert float(rows["study_m2.dcm"]["probability"]) == pytest.approx(
        float(rows[source.name]["probability"]), abs=0.05
    )
