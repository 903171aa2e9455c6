"""Parts every HTML page shares: one self-contained file, style, tables, embedded images.

Patient images must not leave the hospital, so a report is a single file that opens
offline in any browser: inline CSS, every image embedded as a ``data:`` URI, no script, no
external font, stylesheet or link (a Content-Security-Policy meta tag makes the browser
refuse any network load even if one slipped in).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fracture_lit.utils.atomic import write_text_atomic

__all__ = [
    "esc",
    "figure",
    "html_table",
    "image_file",
    "output_path",
    "page",
    "write_atomic",
]

#: Images above this size are left out (named, not embedded) to keep the file openable.
MAX_IMAGE_BYTES = 8 * 1024 * 1024


IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2933; background: #fff; margin: 0; padding: 24px 32px 48px; max-width: 1240px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e4e7eb; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 13px; margin: 12px 0 4px; color: #52606d; }
.meta { color: #52606d; margin: 2px 0; overflow-wrap: anywhere; }
.meta code, td code { font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; vertical-align: middle; }
.done { background: #e3f9e5; color: #05400a; }
.failed { background: #ffe3e3; color: #8a041a; }
.pruned { background: #fff3c4; color: #8d2b0b; }
.live { background: #e6f0ff; color: #0b3d91; }
.error { background: #fff5f5; border-left: 4px solid #e12d39; padding: 8px 12px; margin: 8px 0;
  white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d9e2ec; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; }
td { overflow-wrap: break-word; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td { background: #fff5f5; }
table.cm td { text-align: center; min-width: 88px; }
div.scroll { overflow-x: auto; max-width: 100%; }
table.cm td small { display: block; font-size: 11px; opacity: .85; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0 0 12px; }
figure img { max-width: 100%; border: 1px solid #e4e7eb; }
figure.plot img { max-width: 360px; }
figure.wide img { max-width: 100%; }
figcaption { font-size: 12px; color: #52606d; margin-top: 2px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.gallery figure img { width: 100%; }
.gallery figcaption.wrong { color: #8a041a; font-weight: 600; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f5f7fa; padding: 10px; overflow: auto; font-size: 12px; max-height: 600px; }
section.job { border-top: 3px solid #bcccdc; margin-top: 32px; }
.note { color: #7b8794; font-style: italic; }
footer { margin-top: 40px; color: #9aa5b1; font-size: 12px; }
"""


# The report never loads anything: images are data: URIs and styles are inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# ----------------------------------------------------------------------------- small helpers
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(data: bytes | None, caption: str, cls: str = "plot", alt: str | None = None) -> str:
    if not data:
        return ""
    return (
        f'<figure class="{cls}"><img src="{data_uri(data)}" alt="{esc(alt or caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def image_file(path: Path, caption: str, cls: str = "plot", caption_cls: str = "") -> str:
    """An image file as an embedded <figure>; a note when it is too big or unreadable."""
    mime = IMAGE_SUFFIXES.get(path.suffix.lower())
    try:
        size = path.stat().st_size
        if mime is None or size > MAX_IMAGE_BYTES:
            return f'<p class="note">{esc(path.name)} not embedded ({size} bytes).</p>'
        data = path.read_bytes()
    except OSError as error:
        return f'<p class="note">{esc(path.name)} unreadable: {esc(error)}</p>'
    cap_cls = f' class="{caption_cls}"' if caption_cls else ""
    return (
        f'<figure class="{cls}"><img src="{data_uri(data, mime)}" alt="{esc(path.name)}">'
        f"<figcaption{cap_cls}>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, body: Iterable[str]) -> str:
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head><body>",
            *body,
            f"<footer>Generated by fracture_lit.results on {esc(generated)}. "
            "Self-contained: images are embedded, nothing is loaded from the network.</footer>",
            "</body></html>",
            "",
        ]
    )


def html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Iterable[int] = (),
    row_classes: Sequence[str] | None = None,
    raw_columns: Iterable[int] = (),
) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already HTML)."""
    right, raw = set(right), set(raw_columns)
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in right else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes and row_classes[r] else ""
        cells = "".join(
            ('<td class="num">' if i in right else "<td>") + (c if i in raw else esc(c)) + "</td>"
            for i, c in enumerate(row)
        )
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_atomic(path: Path, text: str) -> Path:
    # A browser never sees a half-written report; two report writers never mix theirs.
    return write_text_atomic(path, text)


def output_path(default: Path, out: Path | str | None) -> Path:
    """Where a page goes: ``default`` (the folder's own ``report.html``), or ``out`` (a
    file, or a folder that gets a file of ``default``'s name)."""
    if out is None:
        return default
    out = Path(out).expanduser().resolve()
    return out / default.name if out.is_dir() or not out.suffix else out
