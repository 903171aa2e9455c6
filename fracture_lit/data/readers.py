"""Read one image file for inference: JPEG/PNG/BMP/TIFF, or DICOM as radiology exports it.

Datasets are folders of JPEG/PNG (see :mod:`fracture_lit.data.cache`); images sent for
prediction often come straight from a PACS as DICOM. A DICOM's stored values are not
display grey levels: the modality LUT (rescale slope/intercept) gives physical values, the
VOI window (centre/width, or a VOI LUT) picks the range a radiologist looks at, and
``MONOCHROME1`` means high values are *dark*. Getting any of these wrong hands the model an
image unlike anything it was trained on, so each is applied here, in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fracture_lit.data.cache import BadImageError, decode_image, fit_to_square
from fracture_lit.data.image_limits import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    check_image_pixels,
)
from fracture_lit.data.samples import IMAGE_SUFFIXES

__all__ = [
    "DICOM_SUFFIXES",
    "decode_dicom",
    "MULTIFRAME_FRAME",
    "INPUT_SUFFIXES",
    "is_dicom",
    "list_inputs",
    "read_dicom",
    "read_image",
]

DICOM_SUFFIXES = (".dcm", ".dicom")
INPUT_SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES


def is_dicom(path: str | Path) -> bool:
    """By suffix, or by the ``DICM`` magic at byte 128 (PACS exports often have no suffix)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as stream:
            head = stream.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear VOI window (DICOM PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    width = max(float(width), 1.0)
    low = center - 0.5 - (width - 1.0) / 2.0
    return np.clip((values - low) / (width - 1.0), 0.0, 1.0)


def _first(value: object) -> float:
    """Window centre/width may be multi-valued (several presets): take the first."""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


#: Which frame of a multi-frame greyscale DICOM (a cine loop, a tomosynthesis stack) is
#: scored: the middle one, where a stack is usually centred on the anatomy. The CSV note
#: says "DICOM frame k/n" so a reader knows which image the probability belongs to.
MULTIFRAME_FRAME = "middle"

_ENCODINGS = {  # (implicit VR, little endian) -> the transfer syntax it implies
    (True, True): "1.2.840.10008.1.2",  # Implicit VR Little Endian
    (False, True): "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    (False, False): "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}


def _dcmread(path: Path) -> Any:
    """Read a DICOM; files without the 128-byte preamble and meta header are read with
    ``force=True`` (old PACS exports and raw datasets), but only kept when they hold
    pixel data: ``force`` reads almost any bytes as *some* dataset."""
    # pydicom costs ~1 s to import: only when a DICOM is read (predict, serve start-up).
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as error:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - forced reading of non-DICOM bytes fails anyhow
            ds = None
        if ds is None or "SOPClassUID" not in ds and "PixelData" not in ds:
            raise BadImageError(f"{path}: not a DICOM file ({error})") from error
    if "PixelData" in ds:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            ds.file_meta = meta = FileMetaDataset()
        if "TransferSyntaxUID" not in meta:
            # No meta header (or one without the syntax): the encoding pydicom read the
            # dataset with is the syntax of its (necessarily uncompressed) pixel data.
            encoding = tuple(ds.original_encoding)
            meta.TransferSyntaxUID = _ENCODINGS.get(encoding, _ENCODINGS[(True, True)])
    return ds


#: A truncated uncompressed file is scored when at most this share of its pixels is missing
#: (filled with zeros), as truncated JPEGs are decoded with what they have.
MAX_MISSING_PIXEL_SHARE = 0.1


def _repair(ds: Any) -> list[str]:
    """Mend what real exports get wrong but leaves the image intact; say what was done.

    * ``NumberOfFrames`` that is no integer (``'1A'``): the frame count is taken from the
      pixel data length when that divides into whole frames;
    * uncompressed pixel data a little short (an interrupted transfer): the missing tail
      is zero-filled, up to :data:`MAX_MISSING_PIXEL_SHARE` of the pixels.
    """
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    bits = int(ds.get("BitsAllocated") or 0)
    if syntax is None or syntax.is_compressed or bits < 8 or not ds.get("Rows"):
        return []
    notes = []
    frame_bytes = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * bits // 8
    data = ds.PixelData
    raw = ds.get("NumberOfFrames")
    if raw is not None and not str(raw).strip().isdigit():
        frames = len(data) // frame_bytes if frame_bytes and len(data) % frame_bytes == 0 else 1
        ds.NumberOfFrames = max(1, frames)
        notes.append(f"NumberOfFrames {str(raw)!r} unreadable: {max(1, frames)} from the data")
    expected = frame_bytes * int(ds.get("NumberOfFrames") or 1)
    missing = expected - len(data)
    if 0 < missing <= MAX_MISSING_PIXEL_SHARE * expected:
        ds.PixelData = bytes(data) + b"\0" * missing
        notes.append(f"truncated pixel data: {missing} of {expected} bytes zero-filled")
    return notes


def read_dicom(path: str | Path, window: tuple[float, float] | None = None) -> np.ndarray:
    """:func:`decode_dicom` without the note."""
    return decode_dicom(path, window)[0]


def decode_dicom(
    path: str | Path, window: tuple[float, float] | None = None
) -> tuple[np.ndarray, str]:
    """Decode a DICOM radiograph to display grey levels (uint8, H x W, bright = bone).

    ``window`` = (centre, width) overrides the file's own window. Without either, the 0.5 to
    99.5 percentile range of the modality values is used, which suits plain radiographs.
    Compressed pixel data (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) decode
    through pylibjpeg and its plugins. Returns the image and a note ("DICOM", or which
    frame of a multi-frame file was used).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut  # lazy: see _dcmread

    path = Path(path)
    ds = _dcmread(path)
    if "PixelData" not in ds:
        kind = str(getattr(ds, "SOPClassUID", "")) and getattr(ds.SOPClassUID, "name", "")
        what = f" (a {kind})" if kind else ""
        raise BadImageError(
            f"{path}: a DICOM without pixel data{what}: nothing to score. Pass the image "
            "objects of the study (CR, DX, ...), not its structure or report files."
        )
    notes = _repair(ds)
    try:
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        raise BadImageError(
            f"{path}: cannot decode the DICOM pixel data ({name}; {type(error).__name__}: "
            f"{_first_line(error)}). The file may be damaged or truncated."
        ) from error

    note = "; ".join(["DICOM", *notes])
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1 and pixels.ndim == (4 if samples == 3 else 3):
        index = pixels.shape[0] // 2  # MULTIFRAME_FRAME
        note = "; ".join([f"DICOM frame {index + 1}/{pixels.shape[0]}", *notes])
        pixels = pixels[index]
    if samples == 3:
        return fit_grey(pixels.astype(np.float32).mean(axis=2)), note

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    if window is not None:
        scaled = _window(values, *window)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        scaled = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    elif "VOILUTSequence" in ds:
        scaled = _unit(np.asarray(apply_voi_lut(pixels, ds), dtype=np.float32))
    else:
        low, high = np.percentile(values, [0.5, 99.5])
        scaled = np.clip((values - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        scaled = 1.0 - scaled  # MONOCHROME1: the minimum value is white
    return np.round(scaled * 255.0).astype(np.uint8), note


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:3])[:300]


def _unit(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / max(high - low, 1e-6)


def fit_grey(values: np.ndarray) -> np.ndarray:
    """Float image of any range to uint8 0..255."""
    return np.round(_unit(values.astype(np.float32)) * 255.0).astype(np.uint8)


def read_image(
    path: str | Path,
    size: int,
    mode: str = "resize",
    window: tuple[float, float] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, str]:
    """Greyscale uint8 ``size`` x ``size`` image and a note on anything unusual.

    The one reader of every inference path (eval's Grad-CAM, predict, the pipeline, the
    web app). Raises :class:`BadImageError` naming the file when it cannot be read, or
    when its header announces more than ``max_pixels`` pixels.
    """
    path = Path(path)
    if is_dicom(path):
        try:
            check_image_pixels(path, max_pixels)  # Rows x Columns from the header
        except ImageTooLargeError as error:
            raise BadImageError(str(error)) from error
        image, note = decode_dicom(path, window)
        return fit_to_square(image, size, mode), note
    return decode_image(str(path), size, mode, max_pixels)


def list_inputs(target: str | Path) -> list[Path]:
    """The files to predict: one file, or every image/DICOM under a folder (sorted).

    A folder also yields files without a known suffix that carry the DICOM magic.
    """
    target = Path(target).expanduser()
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(
            f"input={target}: no such file or folder. Pass an image, a DICOM file, or a "
            "folder of them."
        )
    files = [
        p
        for p in sorted(target.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(target).parts)
        and (p.suffix.lower() in INPUT_SUFFIXES or (not p.suffix and is_dicom(p)))
    ]
    return files
