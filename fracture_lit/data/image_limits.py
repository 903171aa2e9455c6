"""How many pixels an image may have, checked from its header before anything decodes it.

A PNG or JPEG whose header says 50,000 x 50,000 would make the decoder allocate 2.5 GB
(or OpenCV/Pillow stop the whole run with their own bomb errors, without naming the file).
Reading width x height from the header costs a few hundred bytes, so every decode checks
it first; an image over the limit is then an ordinary bad file: skipped and counted under
``data.max_bad_fraction`` in training, an error row in predict.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OPENCV_MAX_PIXELS",
    "ImageTooLargeError",
    "check_image_pixels",
    "header_pixels",
]

#: Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``): ~89.5 megapixels,
#: a 9,459 x 9,459 image; radiographs are at most about 4,300 x 3,500.
DEFAULT_MAX_PIXELS = 89_478_485
#: OpenCV refuses to decode more than 2**30 pixels whatever this module allows.
OPENCV_MAX_PIXELS = 2**30


class ImageTooLargeError(ValueError):
    """The header announces more pixels than the configured limit."""


def _dicom_pixels(path: Path) -> int | None:
    import pydicom  # ~1 s to import: only when a file may be a DICOM

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)  # DICM magic or an error
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * max(1, frames)
    except Exception:  # noqa: BLE001 - the reader reports what is wrong with the file
        return None


def header_pixels(path: str | Path) -> int | None:
    """width x height (x frames for DICOM) from the header; None when unknown."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # lazy: reads the header only
                width, height = image.size
        return int(width) * int(height)
    except Image.DecompressionBombError as error:
        # Pillow refuses at open above twice its own limit; its message carries the size.
        digits = "".join(c if c.isdigit() else " " for c in str(error)).split()
        return int(digits[0]) if digits else None
    except Image.UnidentifiedImageError:
        return _dicom_pixels(path)  # None for anything that is not DICOM either
    except Exception:  # noqa: BLE001 - unreadable: the decoder says what is wrong
        return None


def check_image_pixels(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Raise :class:`ImageTooLargeError` naming the file when its header is over the limit."""
    if not max_pixels:
        return
    pixels = header_pixels(path)
    if pixels is not None and pixels > max_pixels:
        raise ImageTooLargeError(
            f"{path}: the header says {pixels:,} pixels, over the limit of {max_pixels:,} "
            "(data.max_image_pixels); skipped without decoding. Raise data.max_image_pixels "
            "if this really is a valid image."
        )
