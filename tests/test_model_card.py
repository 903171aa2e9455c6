"""``model.weights`` (none | imagenet | a file) and ``model_card.md``, on real tiny runs.

The card's figures are checked against the run's files by an independent reader: every
``<label>: <value> [<low>, <high>] (`<key>`)`` of the card is looked up where its key says
(metrics.json, the split manifest counted here with ``csv``, subgroups.json, another
folder's metrics.json) and must equal it at the card's four decimals.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
import yaml
from hydra.core.global_hydra import GlobalHydra

from fracture_lit.errors import one_line, user_error_of
from fracture_lit.layout import RunLayout, SweepLayout
from fracture_lit.models.weights import PretrainedWeightsUnavailableError, normalise_weights_config
from fracture_lit.results.card_sweep import write_sweep_card
from fracture_lit.results.model_card import run_card, write_model_card
from fracture_lit.tasks import evaluating
from fracture_lit.tasks.training import run
from fracture_lit.validation import validate_model
from tests.conftest import TINY, compose_entry, compose_train, run_cli

#: A small timm network, so the weights file stays a few MB.
BACKBONE = "mobilenetv3_small_050"
FIGURE = re.compile(
    r"(?P<label>[^:\n`|]+?): (?P<value>-?\d+(?:\.\d+)?)"
    r"(?: \[(?P<low>-?\d+(?:\.\d+)?), (?P<high>-?\d+(?:\.\d+)?)\])? \(`(?P<key>[^`]+)`\)"
)
COUNT = re.compile(r"^count\((?P<where>.*)\)$")
LICENCE = "CC0-1.0 (test weights)"


def _weights_file(folder: Path) -> Path:
    """A state dict saved from timm, with a sidecar declaring its licence."""
    import timm

    path = folder / f"{BACKBONE}.pth"
    torch.save(timm.create_model(BACKBONE, pretrained=False).state_dict(), path)
    path.with_name(path.name + ".json").write_text(json.dumps({"licence": LICENCE}))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- the reader
def _walk(data: Any, path: str) -> Any:
    """``a.b.c`` in nested dicts/lists; a key may itself hold dots (``frontal+lateral``)."""
    parts = path.split(".")
    while parts:
        if isinstance(data, list):
            data, parts = data[int(parts[0])], parts[1:]
            continue
        for n in range(len(parts), 0, -1):  # the longest key that exists
            key = ".".join(parts[:n])
            if isinstance(data, dict) and key in data:
                data, parts = data[key], parts[n:]
                break
        else:
            raise KeyError(f"{path}: no {parts[0]!r}")
    return data


def _manifest_value(rows: list[dict[str, str]], expression: str) -> int:
    if expression == "groups()":
        return len({r["group"] for r in rows})
    if expression == "groups(across_splits)":
        splits: dict[str, set[str]] = {}
        for r in rows:
            splits.setdefault(r["group"], set()).add(r["split"])
        return sum(len(s) > 1 for s in splits.values())
    where = dict(item.split("=", 1) for item in COUNT.match(expression)["where"].split(","))
    return sum(all(r.get(k) == v for k, v in where.items()) for r in rows)


def _lookup(folder: Path, key: str) -> Any:
    file, _, path = key.rpartition(": ") if ": " in key else ("", "", key)
    source = Path(file) if file.startswith("/") else folder / (file or RunLayout.METRICS)
    if source.suffix == ".csv":
        with source.open(newline="") as stream:
            return _manifest_value(list(csv.DictReader(stream)), path)
    return _walk(json.loads(source.read_text()), path)


def _close(shown: str, value: Any) -> bool:
    if "." not in shown:
        return int(shown) == value
    return abs(float(shown) - float(value)) <= 0.5e-4 + 1e-12


def check_figures(card: str, folder: Path) -> list[str]:
    """Every figure of ``card`` equals its source; returns the keys checked."""
    checked = []
    for match in FIGURE.finditer(card):
        value = _lookup(folder, match["key"])
        if isinstance(value, list):  # a ci95 triple: point, low, high
            assert _close(match["value"], value[0]), match.group(0)
            if match["low"] is not None:
                assert _close(match["low"], value[1]) and _close(match["high"], value[2]), (
                    match.group(0)
                )
        else:
            assert match["low"] is None, match.group(0)
            assert _close(match["value"], value), (match.group(0), value)
        checked.append(match["key"])
    return checked


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One tiny run that starts from a local weights file (and one eval of it)."""
    out = tmp_path_factory.mktemp("card") / "10-00-00_card01"
    out.mkdir()
    weights = _weights_file(out.parent)
    try:
        cfg = compose_train(
            [*TINY, f"data.root={synthetic_root}", f"model.backbone={BACKBONE}",
             f"model.weights={weights}"],
            out,
        )  # fmt: skip
        results = run(cfg)
        assert results["status"] == "done"
        # An evaluation of it where eval writes by default (<root>/outputs/eval/<d>/<t>):
        # the run's card lists it under external validation once reported again.
        evaluated = out / "outputs" / "eval" / "2026-01-01" / "10-00-00_eval01"
        evaluated.mkdir(parents=True)
        cfg = compose_entry(
            "eval",
            [f"ckpt_path={results['best_model_path']}", f"data.root={synthetic_root}",
             "data.n_per_class=24", "data.render_size=64", "n_bootstrap=50",
             "gradcam.enabled=false"],
            evaluated,
        )  # fmt: skip
        assert evaluating.run(cfg)["status"] == "done"
    finally:
        GlobalHydra.instance().clear()
    return out


# ----------------------------------------------------------------------------- tests
def test_every_figure_of_the_card_equals_the_run_record(file_run: Path) -> None:
    card_path = RunLayout(file_run).model_card
    assert card_path.is_file()  # written at the end of the run, beside report.html
    card = card_path.read_text()
    summary = json.loads(RunLayout(file_run).metrics.read_text())
    checked = check_figures(card, file_run)
    # The items a run answers are all there, each with its figures.
    for key in ("test.ci95.auroc", "test.ci95_at_thr.recall", "test.ci95_at_thr.specificity",
                "val.ci95.auroc", "test.ci95.ece", "test.ci95.brier", "val.n", "test.n",
                "epochs", "split_manifest.csv: count(split=train)",
                "split_manifest.csv: groups(across_splits)"):  # fmt: skip
        assert key in checked, key
    threshold = summary["val"]["metrics"]["val/youden_threshold"]
    assert f"Decision threshold on p(fractured): {threshold:.4f}" in card
    for heading in ("Intended use", "Data", "Split and leakage", "Preprocessing",
                    "Model and starting weights", "Training", "Performance", "Calibration",
                    "Subgroups", "External validation", "Limitations"):  # fmt: skip
        assert f"\n## {heading}\n" in card, heading
    assert "Research tool, not a diagnostic device" in card
    assert "No external test set" in card  # nothing scored it on other data yet


def test_a_weights_file_trains_and_the_record_says_which(file_run: Path) -> None:
    weights = file_run.parent / f"{BACKBONE}.pth"
    record = json.loads(RunLayout(file_run).metrics.read_text())["starting_weights"]
    assert record["weights"] == "file" and record["file"] == str(weights.resolve())
    assert record["sha256"] == _sha256(weights)
    assert record["licence"] == LICENCE  # from the sidecar <file>.json
    card = RunLayout(file_run).model_card.read_text()
    assert _sha256(weights) in card and LICENCE in card
    assert _sha256(weights) in RunLayout(file_run).report.read_text()
    config = yaml.safe_load(RunLayout(file_run).config.read_text())
    assert config["model"]["weights"] == str(weights) and config["model"]["in_chans"] == 3
    # The network starts from the file: the config builds it with those weights.
    cfg = compose_train([f"model.backbone={BACKBONE}", f"model.weights={weights}"], file_run)
    model = hydra.utils.instantiate(cfg.model, num_classes=2, class_names=["a", "b"])
    saved = torch.load(weights, weights_only=True)
    name = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 4)
    assert torch.equal(model.net.state_dict()[name], saved[name])


def test_an_evaluation_is_listed_and_gets_its_own_card(file_run: Path) -> None:
    evaluated = next((file_run / "outputs" / "eval").glob("*/*"))
    card = RunLayout(evaluated).model_card.read_text()
    assert card.startswith(f"# Model card: evaluation of {BACKBONE}")
    assert "internal, not external validation" in card  # scored on the training dataset
    assert str(RunLayout(file_run).model_card) in card  # links to how it was trained
    assert len(check_figures(card, evaluated)) >= 8
    # Reported again, the run's card lists the evaluation, its figures from that folder.
    write_model_card(file_run)
    card = RunLayout(file_run).model_card.read_text()
    section = card.split("## External validation", 1)[1].split("\n## ", 1)[0]
    assert str(evaluated) in section
    checked = check_figures(card, file_run)
    assert f"{RunLayout(evaluated).metrics}: eval.ci95.auroc" in checked


def test_imagenet_offline_fails_fast_in_one_line_naming_a_local_file(
    tiny_cfg, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-cache"))
    with pytest.raises(Exception) as info:
        run(tiny_cfg("model.weights=imagenet"))
    error = user_error_of(info.value)
    assert isinstance(error, PretrainedWeightsUnavailableError)
    line = one_line(info.value)
    assert line.startswith("Error: model.weights=imagenet: ") and "\n" not in line
    assert "model.weights=/path/to/" in line and "timm/resnet18" in line
    record = json.loads(RunLayout(tmp_path).metrics.read_text())
    assert record["status"] == "failed" and "model.weights=/path/to/" in record["error"]
    card = RunLayout(tmp_path).model_card.read_text()  # a failed run gets a short card
    assert "## This run did not finish" in card and "model.weights=/path/to/" in card
    assert not check_figures(card, tmp_path)  # no figures for a model that never trained


def test_weights_values_and_deprecated_keys(tmp_path: Path) -> None:
    cfg = compose_train(["model.pretrained=true"], tmp_path)
    assert cfg.model.in_chans == 3
    note = normalise_weights_config(cfg.model)
    assert "model.pretrained=true is deprecated: use model.weights=imagenet" in note
    assert (cfg.model.weights, cfg.model.pretrained, cfg.model.in_chans) == ("imagenet", None, 3)
    cfg = compose_train(["model.pretrained_file=/w/x.pth"], tmp_path)
    assert "use model.weights=/w/x.pth" in normalise_weights_config(cfg.model)
    assert normalise_weights_config(compose_train([], tmp_path).model) is None
    with pytest.raises(PretrainedWeightsUnavailableError, match=r"model.weights=.*nope.pth"):
        validate_model(compose_train([f"model.weights={tmp_path / 'nope.pth'}"], tmp_path))
    with pytest.raises(ValueError, match="model.weights=3: must be none, imagenet or the path"):
        validate_model(compose_train(["model.weights=3"], tmp_path))
    with pytest.raises(PretrainedWeightsUnavailableError, match="has no pretrained weights"):
        validate_model(compose_train(["model=xray_cnn_5m", "model.weights=imagenet"], tmp_path))
    GlobalHydra.instance().clear()


def test_sweep_card_lists_every_job_with_status_and_headline(file_run: Path, tmp_path: Path):
    """Jobs 0/1: copies of the real run (job 1 from scratch); 2: failed; 3: killed."""
    sweep = tmp_path / "10-00-00_sweep1"
    for num, weights in ((0, "file"), (1, "none")):
        job = sweep / str(num)
        shutil.copytree(file_run, job, ignore=shutil.ignore_patterns("checkpoints", "outputs"))
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.weights={weights}"]))  # fmt: skip
    record = json.loads((sweep / "1" / "metrics.json").read_text())
    record["starting_weights"] = {"weights": "none", "licence": None}
    (sweep / "1" / "metrics.json").write_text(json.dumps(record))
    (sweep / "2" / ".hydra").mkdir(parents=True)
    (sweep / "2" / "metrics.json").write_text(
        json.dumps({"status": "failed", "error": "ValueError: broken on purpose"})
    )
    (sweep / "3" / ".hydra").mkdir(parents=True)
    card = write_sweep_card(sweep).read_text()
    rows = {
        int(cells[0]): cells
        for line in card.splitlines()
        if line.startswith("| ")
        and (cells := [c.strip() for c in line.strip("|").split(" | ")])[0].isdigit()  # fmt: skip
    }
    assert sorted(rows) == [0, 1, 2, 3]
    for num in (0, 1):
        summary = json.loads((sweep / str(num) / "metrics.json").read_text())
        for column, stage in ((4, "val"), (5, "test")):
            point, low, high = summary[stage]["ci95"]["auroc"]
            assert rows[num][column] == f"{point:.4f} [{low:.4f}, {high:.4f}]"
        assert rows[num][2] == "done" and "model_card.md" in rows[num][6]
        assert RunLayout(sweep / str(num)).model_card.is_file()  # every job's card too
    assert rows[0][3].startswith(f"file {BACKBONE}.pth") and rows[1][3] == "none"
    assert rows[2][2].startswith("failed: ValueError: broken on purpose")
    assert rows[3][2].startswith("failed: no metrics.json") and rows[3][4] == "-"
    assert "2 of 4 jobs did not finish (jobs 2, 3)" in card


@pytest.mark.slow
def test_a_sweep_over_weights_records_each_start(tmp_path: Path, synthetic_root: Path) -> None:
    weights = _weights_file(tmp_path)
    done = run_cli(
        ["-m", "fracture_lit.train", "-m", f"model.weights=none,{weights}",
         f"model.backbone={BACKBONE}", f"data.root={synthetic_root}", *TINY],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = list((tmp_path / "multirun_outputs").glob("*/*"))
    records = [json.loads((sweep / n / "metrics.json").read_text()) for n in ("0", "1")]
    assert records[0]["starting_weights"]["weights"] == "none"
    assert records[1]["starting_weights"]["sha256"] == _sha256(weights)
    card = SweepLayout(sweep).model_card.read_text()  # written by the sweep's end callback
    assert "| 0 | `model.weights=none` | done | none |" in card
    assert f"| 1 | `model.weights={weights}` | done | file {BACKBONE}.pth" in card
    for num in ("0", "1"):
        job = sweep / num
        assert len(check_figures(RunLayout(job).model_card.read_text(), job)) > 20


def test_run_card_of_a_folder_without_metrics_says_so(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    card = run_card(tmp_path)
    assert "status **no metrics.json**" in card and "## This run did not finish" in card
