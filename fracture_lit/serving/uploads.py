"""Check an uploaded file before anything decodes it: size, kind, and pixel count.

A web server must survive whatever is dropped on it. The order matters: the byte size is
free to check; the kind comes from the first bytes (the suffix of an upload is whatever
the sender chose); the pixel count comes from the header (a 100 kB PNG can announce
40,000 x 40,000 pixels and make a decoder allocate gigabytes). Only a file that passes all
three reaches the image reader, whose own errors (corrupt, truncated) are then the last
word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fracture_lit.data.image_limits import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    check_image_pixels,
    header_pixels,
)
from fracture_lit.errors import UserError

__all__ = ["UploadError", "UploadLimits", "check_upload", "sniff_kind"]

# First bytes of the formats the page accepts (DICOM: "DICM" after a 128-byte preamble).
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_DICOM_SUFFIXES = (".dcm", ".dicom")


class UploadError(UserError, ValueError):
    """An upload the page refuses; the message names the file and what is wrong."""


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may be: ``serve.yaml``'s ``max_upload_mb`` and ``max_image_pixels``."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_files: int = 32

    @property
    def max_mb(self) -> float:
        return self.max_bytes / (1024 * 1024)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 1024:.1f} kB"


def sniff_kind(path: Path) -> str | None:
    """JPEG, PNG, BMP, TIFF or DICOM from the file's first bytes; None for anything else.

    A DICOM without the preamble (``force`` reading) is recognised by its ``.dcm`` suffix
    and left to the DICOM reader to judge.
    """
    with path.open("rb") as stream:
        head = stream.read(132)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) == 132 and head[128:132] == b"DICM":
        return "DICOM"
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return "DICOM"
    return None


def check_upload(path: str | Path, limits: UploadLimits, name: str | None = None) -> str:
    """Return the file's kind, or raise :class:`UploadError` saying why it is refused.

    ``name`` is what the user called the file (the server's copy has another path).
    """
    path = Path(path)
    shown = name or path.name
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UploadError(f"{shown}: the upload cannot be read ({error.strerror}).") from error
    if size == 0:
        raise UploadError(f"{shown}: the file is empty.")
    if size > limits.max_bytes:
        raise UploadError(
            f"{shown}: {_size(size)}, over the upload limit of {_size(limits.max_bytes)} "
            "(max_upload_mb=). Send a smaller export of the image."
        )
    kind = sniff_kind(path)
    if kind is None:
        raise UploadError(
            f"{shown}: not an image the model can read (expected JPEG, PNG, BMP, TIFF or "
            "DICOM; the file's first bytes match none of them)."
        )
    try:
        check_image_pixels(path, limits.max_pixels)
    except ImageTooLargeError as error:
        raise UploadError(
            f"{shown}: its header announces {header_pixels(path) or 0:,} pixels, over the limit of "
            f"{limits.max_pixels:,} (max_image_pixels=): refused without decoding, as a "
            "possible decompression bomb."
        ) from error
    return kind
