"""Ensembles and test-time augmentation on tiny real checkpoints, through eval and predict.

Three tiny synthetic models are trained once: two on the same split (a "sweep" folder of
two done jobs, different seeds of the weights) and one on another split seed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fracture_lit.errors import UserError
from fracture_lit.inference.ensemble import EnsembleError, checkpoint_paths, load_ensemble
from fracture_lit.stats.youden import youden_threshold
from fracture_lit.tasks import evaluating as evaluate_cli
from fracture_lit.tasks import predicting as predict_cli
from tests.conftest import TINY, compose_entry, compose_train

SWEEP = (
    ("sweep/0", ["seed=1", "data.split_seed=42"]),
    ("sweep/1", ["seed=2", "data.split_seed=42"]),
)


def _train_runs(base: Path, jobs: tuple, *extra: str) -> dict[str, Path]:
    """Best checkpoints of tiny runs (name -> overrides) in ``base``."""
    from fracture_lit.tasks.training import run as train_run

    data = base / "data" / "synthetic"
    out: dict[str, Path] = {"base": base, "sweep": base / "sweep", "data": data}
    for name, overrides in jobs:
        cfg = compose_train(
            [*TINY, f"data.root={data}", "data.n_per_class=32", *overrides, *extra], base / name
        )
        results = train_run(cfg)
        assert results["status"] == "done"
        out[name] = Path(results["best_model_path"])
    GlobalHydra.instance().clear()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Best checkpoints of three tiny runs; sweep/0 and sweep/1 share their split."""
    other = ("other", ["seed=3", "data.split_seed=7"])
    return _train_runs(tmp_path_factory.mktemp("ensemble"), (*SWEEP, other))


@pytest.fixture(scope="module")
def bf16_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sweep/0 and sweep/1 trained under bf16 autocast (their reviews scored in fp32)."""
    return _train_runs(
        tmp_path_factory.mktemp("ensemble_bf16"), SWEEP, "trainer.precision=bf16-mixed"
    )


def _val_probs(ckpt: Path) -> tuple[np.ndarray, np.ndarray]:
    """A member's validation probabilities as its training run's review wrote them."""
    with (ckpt.parent.parent / "review" / "val" / "predictions.csv").open() as stream:
        rows = sorted(csv.DictReader(stream), key=lambda r: r["path"])
    labels = np.array([r["label"] == "fractured" for r in rows], dtype=np.int64)
    return np.array([float(r["prob_fractured"]) for r in rows]), labels


# The members' training runs scored their validation images; the ensemble scores them
# again: trained in fp32 and under bf16 autocast, the two must agree.
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_sweep_folder_is_its_done_jobs_and_the_threshold_is_chosen_again(
    precision, request
) -> None:
    runs = request.getfixturevalue("runs" if precision == "32-true" else "bf16_runs")
    assert checkpoint_paths(runs["sweep"]) == [runs["sweep/0"], runs["sweep/1"]]
    ensemble = load_ensemble(runs["sweep"])
    assert len(ensemble.members) == 2 and ensemble.name.startswith("ensemble of 2")
    assert "shared validation split" in ensemble.threshold_source
    # Re-chosen on the averaged validation probabilities, exactly as Youden J picks it
    # from the probabilities the members' own reviews recorded.
    (p0, labels), (p1, labels1) = _val_probs(runs["sweep/0"]), _val_probs(runs["sweep/1"])
    assert (labels == labels1).all()
    want = youden_threshold(torch.tensor((p0 + p1) / 2), torch.tensor(labels)).threshold
    assert ensemble.threshold == pytest.approx(want, abs=1e-5)
    given = load_ensemble([runs["sweep/0"], runs["sweep/1"]], threshold=0.3)
    assert (given.threshold, given.threshold_source) == (0.3, "given (threshold=...)")


def test_members_of_other_splits_or_classes_are_refused(runs, tmp_path: Path) -> None:
    with pytest.raises(EnsembleError, match="validated on other images"):
        load_ensemble([runs["sweep/0"], runs["other"]])
    # With a given threshold nothing is chosen on validation: they may ensemble.
    assert len(load_ensemble([runs["sweep/0"], runs["other"]], threshold=0.5).members) == 2
    # A checkpoint of other classes (the same file with its class names changed).
    checkpoint = torch.load(runs["other"], map_location="cpu", weights_only=True)
    checkpoint["fracture_lit"]["class_names"] = ["normal", "broken"]
    renamed = tmp_path / "renamed.ckpt"
    torch.save(checkpoint, renamed)
    with pytest.raises(EnsembleError, match=r"classes \['normal', 'broken'\]"):
        load_ensemble([runs["sweep/0"], renamed], threshold=0.5)
    empty = tmp_path / "empty_sweep"
    empty.mkdir()
    with pytest.raises(UserError, match="without any done job"):
        checkpoint_paths(empty)


def _image(runs, tmp_path: Path) -> tuple[Path, Path]:
    """An image of the synthetic data, and its mirror image."""
    source = sorted(runs["data"].rglob("*.png"))[0]
    grey = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)
    original, mirrored = folder / "original.png", folder / "mirrored.png"
    cv2.imwrite(str(original), grey)
    cv2.imwrite(str(mirrored), np.ascontiguousarray(grey[:, ::-1]))
    return original, mirrored


def test_predict_averages_members_and_flip_tta_is_mirror_invariant(runs, tmp_path) -> None:
    original, mirrored = _image(runs, tmp_path)
    members = [runs["sweep/0"], runs["sweep/1"]]

    def prob(ckpt, path, tta="none") -> np.ndarray:
        return load_ensemble(ckpt, tta=tta, threshold=0.5).predict_files([path])[0].probs

    alone = [prob(m, original) for m in members]
    assert np.allclose(prob(members, original), np.mean(alone, axis=0), atol=1e-6)
    # tta=flip: the mean over the image and its mirror, so mirroring the input changes
    # nothing, while without TTA the model does see the difference.
    with_flip = prob(members[0], original, "flip")
    assert np.allclose(with_flip, prob(members[0], mirrored, "flip"), atol=1e-5)
    assert np.allclose(with_flip, (alone[0] + prob(members[0], mirrored)) / 2, atol=1e-5)
    assert not np.allclose(alone[0], prob(members[0], mirrored), atol=1e-5)


def test_predict_cli_with_a_sweep_folder_and_tta(runs, tmp_path: Path) -> None:
    original, _ = _image(runs, tmp_path)
    (original.parent / "broken.jpg").write_bytes(b"not a jpeg")
    cfg = compose_entry(
        "predict",
        [
            f"ckpt_path={runs['sweep']}",
            f"input={original.parent}",
            "tta=flip",
            "gradcam.enabled=true",
        ],
        tmp_path / "out",
    )
    out_csv = predict_cli.predict(cfg)
    with out_csv.open() as stream:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(stream)}
    ensemble = load_ensemble(runs["sweep"], tta="flip")
    want = ensemble.predict_files([original])[0].probs
    assert rows["broken.jpg"]["status"] == "error"
    row = rows["original.png"]
    assert float(row["prob_fractured"]) == pytest.approx(float(want[1]), abs=1e-5)
    assert float(row["threshold"]) == pytest.approx(ensemble.threshold, abs=1e-6)
    assert row["label"] == ("fractured" if want[1] > ensemble.threshold else "intact")
    assert Path(row["gradcam"]).is_file()


def test_eval_reports_the_ensemble_beside_its_members(runs, tmp_path: Path) -> None:
    cfg = compose_entry(
        "eval",
        [
            f"ckpt_path=[{runs['sweep/0']},{runs['sweep/1']}]",
            f"data.root={runs['data']}",
            "data.n_per_class=32",
            "data.render_size=64",
            "data.image_size=32",
            "tta=flip",
            "n_bootstrap=50",
            "gradcam.n_fixed=2",
            "gradcam.n_worst=0",
        ],
        tmp_path,
    )
    results = evaluate_cli.run(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "done" and written["tta"] == "flip"
    assert written["ckpt_path"] == [str(runs["sweep/0"]), str(runs["sweep/1"])]
    assert "shared validation split" in written["threshold_source"]
    members = results["members"]
    assert [m["ckpt_path"] for m in members] == written["ckpt_path"]
    n = results["eval"]["n"]
    assert all(m["eval"]["n"] == n for m in members)
    assert "ensemble of 2" in (tmp_path / "report.html").read_text()
    paired = results["paired_vs_members"]
    assert set(paired) == {m["name"] for m in members}
    for comparison in paired.values():
        assert comparison["n"] == n or comparison.get("skipped")
    # The ensemble's predictions are the mean of what each member predicts alone.
    with (tmp_path / "review" / "test" / "predictions.csv").open() as stream:
        ens = {r["path"]: float(r["prob_fractured"]) for r in csv.DictReader(stream)}
    ensemble = load_ensemble(written["ckpt_path"], tta="flip")
    some = sorted(ens)[:4]
    direct = ensemble.predict_files(some)
    for path, item in zip(some, direct, strict=True):
        assert ens[path] == pytest.approx(float(item.probs[1]), abs=1e-4)


def test_predict_gives_every_pydicom_test_file_a_row(runs, tmp_path: Path) -> None:
    """pydicom's 78 bundled files through predict: a row each, at least 60 scored."""
    from pydicom.data.data_manager import DATA_ROOT

    from tests.test_readers import MIN_SCORED_PYDICOM_FILES

    inputs = tmp_path / "dicom"
    inputs.mkdir()
    files = sorted(Path(DATA_ROOT, "test_files").glob("*.dcm"))
    for path in files:
        (inputs / path.name).symlink_to(path)
    cfg = compose_entry(
        "predict", [f"ckpt_path={runs['sweep/0']}", f"input={inputs}"], tmp_path / "out"
    )
    with predict_cli.predict(cfg).open() as stream:
        rows = list(csv.DictReader(stream))
    assert sorted(Path(r["path"]).name for r in rows) == [p.name for p in files]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= MIN_SCORED_PYDICOM_FILES
    assert all(r["error"] for r in rows if r["status"] == "error")
    assert all(0.0 <= float(r["prob_fractured"]) <= 1.0 for r in ok)
