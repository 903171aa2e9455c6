"""The web app: upload checks at the library level, and the real page in headless Chromium.

The browser test starts ``python -m fracture_lit.serve`` in a subprocess on a free loopback
port, drives Debian's Chromium with Playwright (never a downloaded browser), uploads a
real FracAtlas radiograph, the same image as DICOM, a corrupt JPEG and a text file, and
checks the page against ``python -m fracture_lit.predict`` run on the same files.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from fracture_lit.serving.model_card import DISCLAIMER, ModelCard, run_folder_of
from fracture_lit.serving.predictor import Predictor, write_csv
from fracture_lit.serving.uploads import UploadError, UploadLimits, check_upload
from fracture_lit.tasks.training import run as train_run
from tests.conftest import REPO_ROOT, TINY, compose_train, run_cli
from tests.dicom_files import write_dicom

CHROMIUM = Path("/usr/bin/chromium")
#: Set to 1 to refresh the README's screenshot from this test's run.
DOCS_ENV = "FRACTURE_LIT_DOCS_SCREENSHOT"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "serve_screenshot.png"
BOMB_SIDE = 40_000  # a 1.6-gigapixel PNG of ~200 kB


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny synthetic model with its run folder (metrics.json, config.yaml)."""
    out = tmp_path_factory.mktemp("serve_run")
    cfg = compose_train(
        [*TINY, f"data.root={out / 'synthetic'}", "data.image_size=64", "~callbacks.review"],
        out,
    )
    results = train_run(cfg)
    assert results["status"] == "done"
    return results


@pytest.fixture(scope="module")
def predictor(trained: dict) -> Predictor:
    return Predictor.load(trained["best_model_path"], UploadLimits(), device="cpu")


def _fracatlas_image(shared_data: Path) -> Path:
    folder = shared_data / "FracAtlas" / "images" / "Fractured"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (real dataset sample)")
    # Not one of the sample's truncated files (see ../shared/data/README.md).
    return sorted(folder.glob("*.jpg"))[0]


def _bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid 1-bit PNG of side x side black pixels: tiny on disk, gigapixels decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _corrupt_jpeg(path: Path) -> Path:
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg " * 50)
    return path


# --------------------------------------------------------------------------- library level


def test_upload_checks_refuse_bombs_oversize_and_non_images(tmp_path: Path, shared_data: Path):
    image = _fracatlas_image(shared_data)
    limits = UploadLimits()
    assert check_upload(image, limits) == "JPEG"

    bomb = _bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2**20
    with pytest.raises(UploadError, match=r"bomb\.png: its header announces 1,600,000,000 pixels"):
        check_upload(bomb, limits)

    small = UploadLimits(max_bytes=1024)
    with pytest.raises(UploadError, match=r"over the upload limit of 1.0 kB \(max_upload_mb=\)"):
        check_upload(image, small, name="scan.jpg")

    text = tmp_path / "notes.png"
    text.write_text("a radiology report, not an image\n")
    with pytest.raises(UploadError, match=r"notes\.png: not an image the model can read"):
        check_upload(text, limits)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        check_upload(empty, limits)


def test_bad_uploads_become_error_rows_and_good_ones_are_classified(
    predictor: Predictor, tmp_path: Path, shared_data: Path
):
    image = _fracatlas_image(shared_data)
    bomb = _bomb_png(tmp_path / "bomb.png")
    corrupt = _corrupt_jpeg(tmp_path / "x7.jpg")
    # The server's copy lives under another path: the rows name the user's file.
    rows = predictor.classify([(bomb, "bomb.png"), (image, "knee.jpg"), (corrupt, "broken.jpg")])
    assert [r.status for r in rows] == ["error", "ok", "error"]
    assert "decompression bomb" in rows[0].error
    assert rows[2].error.startswith("broken.jpg: ") and str(tmp_path) not in rows[2].error
    ok = rows[1]
    assert ok.label in predictor.class_names and 0.0 <= ok.probability <= 1.0
    assert ok.label == ("fractured" if ok.probability > predictor.threshold else "intact")
    assert ok.panel is not None and ok.panel.ndim == 3 and ok.panel.shape[1] > ok.panel.shape[0]

    limited = Predictor(predictor.ensemble, UploadLimits(max_files=1), gradcam=False)
    rows = limited.classify([(image, "a.jpg"), (image, "b.jpg")])
    assert [r.status for r in rows] == ["ok", "error"] and "max_files" in rows[1].error

    out = write_csv(rows, predictor.class_names, tmp_path / "r.csv")
    with out.open() as stream:
        written = list(csv.DictReader(stream))
    assert written[0]["label"] == rows[0].label and written[1]["status"] == "error"


def test_model_card_reads_the_run_folder(predictor: Predictor, trained: dict):
    from fracture_lit.results.folders import load_job

    run_dir = run_folder_of(trained["best_model_path"])
    assert run_dir is not None
    card = ModelCard.build(predictor, [(run_dir, load_job(run_dir))]).markdown()
    auroc = trained["test"]["metrics"]["test/auroc"]
    assert f"AUROC {auroc:.3f}" in card
    assert f"on {trained['test']['n']} held-out test images" in card
    assert "Synthetic" in card and "`intact`, `fractured`" in card
    assert f"> {predictor.threshold:.3f}" in card and "validation split" in card
    assert "not a diagnostic device" in DISCLAIMER
    # Below the summary, the run's model_card.md: the same text, links reduced to text.
    full = ModelCard.build(predictor, [(run_dir, load_job(run_dir))]).text
    point, low, high = trained["test"]["ci95"]["auroc"]
    assert full.startswith("# Model card: ") and "## Limitations" in full
    assert f"AUROC: {point:.4f} [{low:.4f}, {high:.4f}] (`test.ci95.auroc`)" in full
    assert "](" not in full
    # A checkpoint copied out of its run folder: the page says what it does not know.
    assert "unknown" in ModelCard.build(predictor, [(None, None)]).metrics
    assert "No model card" in ModelCard.build(predictor, [(None, None)]).text


def test_an_ensemble_averages_its_members_and_rechooses_the_threshold(
    trained: dict, tmp_path: Path, shared_data: Path
):
    image = _fracatlas_image(shared_data)
    best = Path(trained["best_model_path"])
    last = best.with_name("last.ckpt")
    singles = [Predictor.load(p, UploadLimits(), device="cpu", gradcam=False) for p in (best, last)]
    both = Predictor.load([str(best), str(last)], UploadLimits(), device="cpu")
    row = both.classify([(image, "knee.jpg")])[0]
    alone = [s.classify([(image, "knee.jpg")])[0].probability for s in singles]
    assert row.probability == pytest.approx(sum(alone) / 2, abs=1e-6)
    assert row.label == ("fractured" if row.probability > both.threshold else "intact")
    assert row.panel is not None  # the first member's Grad-CAM
    # Averaging moves the probabilities: the threshold is chosen again on the shared
    # validation split, and the page says so.
    assert "shared validation split" in both.threshold_meaning()
    card = ModelCard.build(both, [(run_folder_of(best), None), (run_folder_of(last), None)])
    assert card.title.startswith("ensemble of 2") and str(last) in card.checkpoint


def test_serve_cli_refuses_bad_settings_in_one_line(trained: dict, tmp_path: Path):
    env = {"FRACTURE_LIT_ROOT": str(tmp_path)}
    done = run_cli(
        ["-m", "fracture_lit.serve", f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path, env=env
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: ckpt_path={tmp_path / 'missing.ckpt'}: no such file.")
    )
    ckpt = trained["best_model_path"]
    done = run_cli(
        ["-m", "fracture_lit.serve", f"ckpt_path={ckpt}", "max_files=0"], tmp_path, env=env
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "Error: max_files=0: must be an integer >= 1."


# --------------------------------------------------------------------------- real browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (`hostname -I`; none when absent)."""
    try:
        done = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [a for a in done.stdout.split() if "." in a and not a.startswith("127.")]


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the server did not answer within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture
def server(trained: dict, tmp_path: Path) -> Iterator[dict]:
    """``python -m fracture_lit.serve`` on a free port, as a user starts it; stopped (SIGTERM)
    and checked for leftovers afterwards."""
    port = _free_port()
    tmp = tmp_path / "tmp"  # the server's TMPDIR: where any upload could land
    tmp.mkdir()
    log = tmp_path / "server.log"
    env = {**os.environ, "TMPDIR": str(tmp), "FRACTURE_LIT_ROOT": str(tmp_path / "root")}
    with log.open("w") as stream:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fracture_lit.serve",
                f"ckpt_path={trained['best_model_path']}",
                f"port={port}",
                "max_upload_mb=5",
            ],
            cwd=tmp_path,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    info = {"url": f"http://127.0.0.1:{port}/", "process": process, "log": log, "tmp": tmp}
    try:
        yield info
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                pytest.fail(f"the server ignored SIGTERM:\n{log.read_text()}")


def _cell(page, name: str, cls: str) -> str:
    return page.locator(f'#fl-results-table tr[data-file="{name}"] .{cls}').inner_text().strip()


def _docs_screenshot(shot: Path) -> None:
    """Refresh the README's screenshot: a 256-colour PNG, small enough for the repository."""
    from PIL import Image

    with Image.open(shot) as image:
        small = image.convert("RGB")
        small.thumbnail((960, 2000))
        small.quantize(colors=128).save(DOCS_SCREENSHOT, optimize=True)
    assert DOCS_SCREENSHOT.stat().st_size < 200_000


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not installed (CI installs it: `make browser`, or apt-get install -y chromium)",
)
def test_page_classifies_uploads_like_predict(
    server: dict, trained: dict, shared_data: Path, tmp_path: Path
):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    image = _fracatlas_image(shared_data)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    jpeg = shutil.copy(image, inputs / image.name)
    grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    scale = 768 / max(grey.shape)  # a DICOM under the server's 5 MB limit
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    dicom = write_dicom(inputs / "study.dcm", grey)
    oversize = tmp_path / "oversize.jpg"
    oversize.write_bytes(b"\xff\xd8\xff\xe0" + bytes(6 * 2**20))
    corrupt = _corrupt_jpeg(tmp_path / "corrupt.jpg")
    text = tmp_path / "notes.png"
    text.write_text("a radiology report, not an image\n")

    # predict, run for real, on the same two files (while the server starts).
    ckpt = trained["best_model_path"]
    done = run_cli(
        [
            "-m",
            "fracture_lit.predict",
            f"ckpt_path={ckpt}",
            f"input={inputs}",
            f"output={tmp_path / 'p.csv'}",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path / "root")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "p.csv").open() as stream:
        expected = {Path(r["path"]).name: r for r in csv.DictReader(stream)}
    assert {r["status"] for r in expected.values()} == {"ok"}

    _wait_until_up(server["url"], server["process"], server["log"])
    # Loopback only: the machine's other addresses do not answer.
    port = int(server["url"].rsplit(":", 1)[1].strip("/"))
    for address in _other_addresses():
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((address, port))
    outside: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith((server["url"], "data:", "blob:"))
                    else outside.append(r.url)
                ),
            )
            page.goto(server["url"])
            body = page.locator("body")
            playwright.expect(body).to_contain_text("Research tool, not a diagnostic device")
            playwright.expect(body).to_contain_text(
                f"AUROC {trained['test']['metrics']['test/auroc']:.3f}"
            )
            # The run's model card, as the run wrote it: a heading and a figure.
            card = page.locator("#fl-card-text")
            playwright.expect(card.locator("h1")).to_contain_text("Model card: ")
            point, low, high = trained["test"]["ci95"]["auroc"]
            playwright.expect(card).to_contain_text(f"AUROC: {point:.4f} [{low:.4f}, {high:.4f}]")
            page.locator("#fl-upload input[type=file]").set_input_files(
                [str(jpeg), str(dicom), str(corrupt), str(text)]
            )
            page.wait_for_selector('#fl-results-table tr[data-file="notes.png"]', timeout=120_000)

            for name in (jpeg.name, dicom.name):
                row = expected[name]
                assert _cell(page, name, "fl-label") == row["label"]
                assert float(_cell(page, name, "fl-prob")) == pytest.approx(
                    float(row["probability"]), abs=5e-5
                )
                assert f"{float(row['threshold']):.4f}" in _cell(page, name, "fl-rule")
            assert _cell(page, dicom.name, "fl-note") == "DICOM"
            assert _cell(page, "corrupt.jpg", "fl-error") == "corrupt.jpg: not a decodable image"
            assert "notes.png: not an image the model can read" in _cell(
                page, "notes.png", "fl-error"
            )
            playwright.expect(page.locator("#fl-gallery img")).to_have_count(2)

            # The CSV download: the same numbers as the page.
            link = page.locator("#fl-csv a[href]").first
            text_csv = page.request.get(link.get_attribute("href")).text()
            rows = {r["file"]: r for r in csv.DictReader(text_csv.splitlines())}
            assert rows[jpeg.name]["label"] == expected[jpeg.name]["label"]
            assert rows["corrupt.jpg"]["status"] == "error"

            page.wait_for_timeout(500)  # let the gallery images finish drawing
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)

            # Over max_upload_mb: Gradio refuses it before it is stored, and says so.
            page.locator("#fl-upload input[type=file]").set_input_files(str(oversize))
            playwright.expect(body).to_contain_text(
                'exceed the maximum allowed size of 5.0 Mb: "oversize.jpg"'
            )
        finally:
            browser.close()
    assert outside == [], f"the page fetched from outside the machine: {outside}"
    assert shot.stat().st_size > 20_000
    if os.environ.get(DOCS_ENV) == "1":
        _docs_screenshot(shot)

    # Stopped like a service manager stops it: clean exit, and no upload left anywhere.
    process = server["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, server["log"].read_text()[-3000:]
    log = server["log"].read_text()
    folder = Path(re.search(r"uploads in (\S+)\)", log).group(1))
    assert folder.parent == server["tmp"] and not folder.exists()
    uploaded = {jpeg.name, "study.dcm", "corrupt.jpg", "notes.png", "oversize.jpg"}
    left = [p for p in server["tmp"].rglob("*") if p.name in uploaded]
    assert left == [], left
