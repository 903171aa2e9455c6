"""The Gradio page: upload X-rays, see class, probability, threshold and Grad-CAM; get a CSV.

Safe by default: it binds to 127.0.0.1, never opens a public share link, sends no
telemetry and loads nothing from the internet (Gradio's bundled fonts and scripts only).
Every upload, Gradio's cache and the CSVs live in one temporary folder made at start and
removed at exit (also on SIGTERM); Gradio refuses uploads over ``max_upload_mb`` before
they reach the disk, and :mod:`fracture_lit.serving.uploads` checks the rest.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fracture_lit.errors import UserError
from fracture_lit.serving.model_card import DISCLAIMER, ModelCard
from fracture_lit.serving.predictor import Prediction, Predictor, write_csv

__all__ = [
    "ServeError",
    "build_app",
    "offline_environment",
    "results_html",
    "serve",
    "upload_folder",
]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSV_NAME = "fracture_lit_results.csv"
_CSS = """
#fl-results table { border-collapse: collapse; width: 100%; font-size: 0.95em; }
#fl-results th, #fl-results td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
#fl-results .fl-error { color: #b00020; }
#fl-disclaimer { border-left: 4px solid #b00020; padding-left: 8px; }
"""


class ServeError(UserError, OSError):
    """The server cannot start (its port is taken, the address cannot be bound)."""


def offline_environment() -> None:
    """No telemetry, no update check, no hub: set before Gradio is imported."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A fresh folder for uploads, Gradio's cache, CSVs and every other temporary file of
    this process; removed when the server stops.

    Gradio reads ``GRADIO_TEMP_DIR`` when it is imported, so this must be entered first.
    """
    folder = Path(tempfile.mkdtemp(prefix="fracture_serve_"))
    saved_env, saved_tempdir = os.environ.get("GRADIO_TEMP_DIR"), tempfile.tempdir
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    tempfile.tempdir = str(folder)  # multipart parsing and any other tempfile use
    try:
        yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved_env
        shutil.rmtree(folder, ignore_errors=True)
        log.info("Removed the upload folder %s", folder)


def _cell(text: Any, cls: str = "", colspan: int = 1) -> str:
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' colspan="{colspan}"' if colspan > 1 else ""
    return f"<td{attrs}>{html.escape(str(text))}</td>"


def _decision(row: Prediction, predictor: Predictor) -> str:
    if not predictor.binary or row.threshold is None or row.probability is None:
        return "highest probability"
    sign = ">" if row.label == predictor.positive else "≤"
    return f"p({predictor.positive}) = {row.probability:.4f} {sign} {row.threshold:.4f}"


def results_html(rows: Sequence[Prediction], predictor: Predictor) -> str:
    """The results table (one row per upload; refused files carry the reason)."""
    prob_name = f"p({predictor.positive})" if predictor.binary else "p(class)"
    head = "".join(
        f"<th>{html.escape(h)}</th>" for h in ("file", "class", prob_name, "decision rule", "note")
    )
    body = []
    for row in rows:
        attrs = f'class="fl-row" data-file="{html.escape(row.file)}" data-status="{row.status}"'
        if row.ok:
            cells = (
                _cell(row.file)
                + _cell(row.label, "fl-label")
                + _cell(f"{row.probability:.4f}", "fl-prob")
                + _cell(_decision(row, predictor), "fl-rule")
                + _cell(row.note, "fl-note")
            )
        else:
            cells = _cell(row.file) + _cell(row.error, "fl-error", colspan=4)
        body.append(f"<tr {attrs}>{cells}</tr>")
    n_ok = sum(r.ok for r in rows)
    summary = f"{n_ok} of {len(rows)} file(s) classified."
    return (
        f'<p class="fl-summary">{html.escape(summary)}</p>'
        f'<table id="fl-results-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _classify(
    files: Sequence[str] | None, predictor: Predictor, workdir: Path
) -> tuple[str, list[tuple[Any, str]], str | None]:
    """Event handler: never raises (a bug shows as a message, the server keeps serving)."""
    if not files:
        return "<p>Upload one or more images to classify them.</p>", [], None
    try:
        uploads = [(Path(f), Path(f).name) for f in files]
        rows = predictor.classify(uploads)
        out = write_csv(
            rows, predictor.class_names, workdir / "results" / uuid.uuid4().hex / CSV_NAME
        )
        gallery = [(row.panel, f"{row.file}: {row.label}") for row in rows if row.panel is not None]
        return results_html(rows, predictor), gallery, str(out)
    except Exception as error:  # noqa: BLE001 - the page must outlive any one request
        log.exception("Classifying %d upload(s) failed", len(files))
        text = html.escape(f"{type(error).__name__}: {error}")
        return f'<p class="fl-error">Internal error, nothing classified: {text}</p>', [], None


def build_app(
    predictor: Predictor, card: ModelCard, workdir: Path, delete_after_s: int = 3600
) -> Any:
    """The ``gr.Blocks`` page (not launched). ``workdir`` is :func:`upload_folder`'s folder;
    Gradio also deletes uploads older than ``delete_after_s`` while it runs."""
    import gradio as gr

    limits = predictor.limits
    interval = max(60, delete_after_s // 4)
    with gr.Blocks(
        title=f"fracture_lit: {card.title}",
        analytics_enabled=False,
        delete_cache=(interval, delete_after_s),
    ) as app:
        gr.Markdown(f"# fracture_lit — {card.title}")
        gr.Markdown(DISCLAIMER, elem_id="fl-disclaimer")
        gr.Markdown(card.markdown(), elem_id="fl-model-card")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    label="X-rays: JPEG, PNG or DICOM (several at once)",
                    file_count="multiple",
                    type="filepath",
                    elem_id="fl-upload",
                )
                button = gr.Button("Classify", variant="primary", elem_id="fl-classify")
                gr.Markdown(
                    f"Limits: {limits.max_mb:.0f} MB per file, {limits.max_files} files per "
                    f"upload, {limits.max_pixels or 0:,} pixels per image. Uploads stay on "
                    "this machine in a temporary folder removed when the server stops.",
                    elem_id="fl-limits",
                )
            with gr.Column(scale=2):
                table = gr.HTML(elem_id="fl-results")
                gallery = gr.Gallery(
                    label="Grad-CAM: the model's input | where it looked",
                    columns=2,
                    height="auto",
                    object_fit="contain",
                    preview=False,
                    elem_id="fl-gallery",
                )
                csv = gr.File(label="Results as CSV", elem_id="fl-csv")

        def classify(paths: list[str] | None) -> tuple[str, list[tuple[Any, str]], str | None]:
            return _classify(paths, predictor, workdir)

        with gr.Accordion("Model card (model_card.md of the training run)", open=True):
            gr.Markdown(card.text, elem_id="fl-card-text")

        files.upload(classify, files, [table, gallery, csv])
        button.click(classify, files, [table, gallery, csv])
    return app


def _stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a service manager) stops like Ctrl-C: the upload folder is removed."""

    def handler(signum: int, frame: Any) -> None:
        # Once: `timeout` and process managers may signal the whole group a second time.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def serve(
    predictor: Predictor,
    card: ModelCard,
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
) -> None:
    """Serve until interrupted; the caller holds :func:`upload_folder` open around this."""
    import gradio as gr

    if host not in LOOPBACK:
        log.warning(
            "host=%s: the page is reachable from other machines; it has no login. Use the "
            "default host=127.0.0.1 unless this network is trusted.",
            host,
        )
    app = build_app(predictor, card, workdir)
    app.queue(default_concurrency_limit=1, max_size=32)
    _stop_on_sigterm()
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            max_file_size=predictor.limits.max_bytes,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
            footer_links=[],
            quiet=True,  # its banner suggests share=True; serve() logs the address instead
            prevent_thread_lock=True,
            theme=gr.themes.Default(),
            css=_CSS,
        )
    except OSError as error:
        if "port" not in str(error).lower():
            raise
        raise ServeError(
            f"port={port}: cannot listen on {host}:{port} ({str(error).split('. ')[0]}). "
            f"Another server may hold it: pick a free one, e.g. port={port + 1}."
        ) from error
    log.info("Serving %s on http://%s:%d (uploads in %s)", card.checkpoint, host, port, workdir)
    log.info("Open that address in a browser; Ctrl-C stops the server.")
    app.block_thread()
