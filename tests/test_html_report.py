"""report.html: one real tiny run, its sweep and eval variants, and a headless-Chromium look.

The run is trained once per module (``fracture_lit.tasks.training.run``); the sweep and the eval
folder are built from its real files, so every number checked here came out of training.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from fracture_lit.report import main
from fracture_lit.results.html_run import write_run_report
from fracture_lit.results.html_sweep import write_sweep_report_html
from fracture_lit.results.sweep_report import write_report
from fracture_lit.tasks.training import run
from tests.conftest import TINY, compose_train

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_COPY = Path("/tmp/html_report_screenshot.png")
WINDOW = (1280, 2400)
DATA_PNG = "data:image/png;base64,"
# Anything a browser would fetch: an http(s) or protocol-relative src/href, a stylesheet
# link, a script file, a CSS import or url().
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|<link\b|<script\b[^>]*\bsrc|@import|url\(""",
    re.IGNORECASE,
)
FAILED_ERROR = "ValueError: Unknown backbone '<not_a_model>' & friends"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One real tiny training run (metrics.json, csv/metrics.csv, config.yaml, review/)."""
    out = tmp_path_factory.mktemp("run") / "10-00-00_abc123"
    out.mkdir()
    try:
        results = run(compose_train([*TINY, f"data.root={synthetic_root}"], out))
    finally:
        GlobalHydra.instance().clear()
    assert results["status"] == "done"
    assert (out / "review" / "gradcam" / "index.csv").is_file()  # the review callback ran
    assert (out / "report.html").is_file()  # train writes the run's page itself
    assert (out / "model_card.md").is_file()  # and its model card beside it
    return out


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def _interval(ci: list[float]) -> str:
    point, low, high = ci
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def _assert_offline(text: str) -> None:
    assert text.lstrip().startswith("<!DOCTYPE html>")
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "<script" not in text.lower()
    sources = re.findall(r"""<img\b[^>]*\bsrc\s*=\s*["']([^"']*)""", text)
    assert all(src.startswith(DATA_PNG) for src in sources), "an image is not embedded"


def _embedded_pngs(text: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(re.escape(DATA_PNG) + r"([A-Za-z0-9+/=]+)", text)
    ]


@pytest.fixture(scope="module")
def sweep_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs 0/1: copies of the real run (two seeds); 2: failed; 3: killed (no metrics.json)."""
    sweep = tmp_path_factory.mktemp("multirun") / "10-00-00_def456"
    for num in (0, 1):
        job = sweep / str(num)
        shutil.copytree(run_dir, job, ignore=shutil.ignore_patterns("checkpoints", "report.*"))
        (job / ".hydra").mkdir()
        overrides = ["model=resnet18", f"seed={num + 1}", *TINY]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    failed = sweep / "2"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model.backbone=x"]))
    (failed / "metrics.json").write_text(
        json.dumps(
            {
                "job": "model.backbone=x",
                "backbone": "x",
                "status": "failed",
                "error": FAILED_ERROR,
                "traceback": f"Traceback (most recent call last):\n{FAILED_ERROR}\n",
            }
        )
    )
    (sweep / "3" / ".hydra").mkdir(parents=True)
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=9"]))
    return sweep


def test_run_report_is_one_offline_file_with_the_run_numbers(run_dir: Path) -> None:
    (run_dir / "report.html").unlink()
    before = set(run_dir.rglob("*"))
    path = write_run_report(run_dir)
    assert path == run_dir / "report.html"
    assert set(run_dir.rglob("*")) - before == {path}  # one file, nothing beside it
    text = path.read_text()
    _assert_offline(text)
    summary = _summary(run_dir)
    test = summary["test"]
    assert _interval(test["ci95"]["auroc"]) in text
    assert _interval(test["ci95_at_thr"]["acc"]) in text
    assert _interval(summary["val"]["ci95"]["acc"]) in text
    assert f"at threshold {test['metrics']['test/threshold']:.3f}" in text
    assert "resnet18" in text and "intact / fractured" in text
    for stage in ("val", "test"):  # confusion matrices as tables, from metrics.json
        for count in (c for row in summary[stage]["confusion_matrix"] for c in row):
            assert f">{count}<small>" in text
    # Learning curves + review/val plots + the Grad-CAM gallery, all embedded and valid.
    pngs = _embedded_pngs(text)
    assert len(pngs) >= 1 + 3 + 2
    for data in pngs:
        assert Image.open(io.BytesIO(data)).format == "PNG"
    assert "Learning curves" in text and "Grad-CAM" in text
    with (run_dir / "review" / "gradcam" / "index.csv").open(newline="") as stream:
        cam = next(csv.DictReader(stream))  # captions come from index.csv
    caption = f"true {cam['label']} → pred. {cam['predicted']} · p = {float(cam['prob']):.3f}"
    assert caption in text and "Worst misclassified" in text
    predictions = next((run_dir / "review").glob("*/predictions.csv"))
    n = len(predictions.read_text().strip().splitlines()) - 1
    assert f"{n} predictions in review/{predictions.parent.name}/predictions.csv" in text
    assert "<details><summary>Resolved config (config.yaml)</summary>" in text
    assert "n_bootstrap: 50" in text


def test_eval_folder_report_shows_threshold_and_regions(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test = _summary(run_dir)["test"]
    stage = {
        **test,
        "metrics": {k.replace("test/", "eval/"): v for k, v in test["metrics"].items()},
    }
    region = {"n": 7, "metrics": {"eval/auroc": 0.75}, "ci95": {"auroc": [0.75, 0.5, 0.9]}}
    summary = {
        "kind": "eval",
        "ckpt_path": "/x/<best>.ckpt",
        "split": "test",
        "threshold": 0.4321,
        "threshold_source": "checkpoint (validation Youden)",
        "classes": ["intact", "fractured"],
        "backbone": "resnet18",
        "eval": stage,
        "per_region": {"hand": region, "elbow": {**region, "n": 3}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(summary))
    assert main([str(tmp_path)]) == 0
    path = tmp_path / "report.html"
    assert f"Wrote {path}" in capsys.readouterr().out
    text = path.read_text()
    _assert_offline(text)
    assert "Evaluation on test" in text and "at threshold 0.432" in text
    assert "checkpoint (validation Youden)" in text and "/x/&lt;best&gt;.ckpt" in text
    assert _interval(test["ci95"]["auroc"]) in text
    assert "Per region" in text and "hand" in text and "0.750 [0.500, 0.900]" in text


def test_sweep_report_lists_every_job_and_links_their_reports(sweep_dir: Path) -> None:
    paths = write_report(sweep_dir, show=False)
    assert paths.html == sweep_dir / "report.html" and paths.csv.is_file()
    text = paths.html.read_text()
    _assert_offline(text)
    for num in range(4):
        assert f'id="job-{num}"' in text
        assert f'href="{num}/report.html"' in text
        assert (sweep_dir / str(num) / "report.html").is_file()
    # The failed job's error, escaped; the killed one's reason.
    assert "Unknown backbone &#x27;&lt;not_a_model&gt;&#x27; &amp; friends" in text
    assert "<not_a_model>" not in text
    assert "no metrics.json" in text
    failed_page = (sweep_dir / "2" / "report.html").read_text()
    assert "&lt;not_a_model&gt;" in failed_page and "failed" in failed_page
    # The comparison chart, and one learning-curve image per finished job at least.
    assert "<h2>Comparison</h2>" in text and len(_embedded_pngs(text)) >= 1 + 2
    auroc = _summary(sweep_dir / "0")["test"]["ci95"]["auroc"]
    assert _interval(auroc) in text
    assert "mean ± sd over seeds" in text


def test_cli_dispatches_on_the_folder_and_no_html_skips_it(
    sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain"
    assert main([str(sweep_dir), "--out", str(out), "--no-html"]) == 0
    assert (out / "results.md").is_file() and not (out / "report.html").exists()
    assert main([str(sweep_dir / "0"), "--no-html"]) == 2
    job_out = tmp_path / "job0"
    assert main([str(sweep_dir / "0"), "--out", str(job_out)]) == 0
    assert f"Wrote {job_out / 'report.html'}" in capsys.readouterr().out
    # --out elsewhere: the sweep page still links the job reports, relatively.
    html_out = tmp_path / "elsewhere" / "report.html"
    write_sweep_report_html(sweep_dir, html_out)
    link = Path(os.path.relpath(sweep_dir / "0" / "report.html", html_out.parent)).as_posix()
    assert link.startswith("../") and f'href="{link}"' in html_out.read_text()


def _screenshot(page: Path, shot: Path, profile: Path) -> np.ndarray:
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == WINDOW
        return np.asarray(image.convert("L"), dtype=np.float32)


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not installed (CI installs it: `make browser`, or apt-get install -y chromium)",
)
def test_reports_render_in_headless_chromium(
    run_dir: Path, sweep_dir: Path, tmp_path: Path
) -> None:
    pages = {"run": write_run_report(run_dir), "sweep": write_sweep_report_html(sweep_dir)}
    for name, page in pages.items():
        shot = page.with_name("report.png")
        pixels = _screenshot(page, shot, tmp_path / f"profile-{name}")
        assert pixels.std() > 10, f"{name} screenshot is blank"
        assert (pixels < 200).mean() > 0.01, f"{name} screenshot has no content"
        # Tables and embedded plots are drawn: some dark text, some mid-grey/colour areas.
        assert ((pixels > 40) & (pixels < 220)).mean() > 0.005
    shutil.copyfile(run_dir / "report.png", SCREENSHOT_COPY)
    shutil.copyfile(
        sweep_dir / "report.png", SCREENSHOT_COPY.with_name("html_sweep_screenshot.png")
    )
