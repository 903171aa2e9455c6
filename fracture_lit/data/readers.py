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

import numpy as np

from fracture_lit.data.cache import BadImageError, decode_image, fit_to_square
from fracture_lit.data.image_limits import check_image_pixels
from fracture_lit.data.samples import IMAGE_SUFFIXES

__all__ = [
    "DICOM_SUFFIXES",
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


def read_dicom(path: str | Path, window: tuple[float, float] | None = None) -> np.ndarray:
    """Decode a DICOM radiograph to display grey levels (uint8, H x W, bright = bone).

    ``window`` = (centre, width) overrides the file's own window. Without either, the 0.5 to
    99.5 percentile range of the modality values is used, which suits plain radiographs.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except InvalidDicomError as error:
        raise BadImageError(f"{path}: not a DICOM file ({error})") from error
    except (AttributeError, KeyError) as error:
        raise BadImageError(f"{path}: DICOM without pixel data ({error})") from error
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        raise BadImageError(
            f"{path}: cannot decode the DICOM pixel data ({type(error).__name__}: {error}). "
            "Compressed transfer syntaxes need pylibjpeg or gdcm installed."
        ) from error

    samples = int(getattr(ds, "SamplesPerPixel", 1))
    if samples == 1 and pixels.ndim == 3:
        pixels = pixels[pixels.shape[0] // 2]  # multi-frame: the middle frame
    if samples == 3:
        pixels = pixels[0] if pixels.ndim == 4 else pixels
        return fit_grey(pixels.astype(np.float32).mean(axis=2))

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
    return np.round(scaled * 255.0).astype(np.uint8)


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
) -> tuple[np.ndarray, str]:
    """Greyscale uint8 ``size`` x ``size`` image and a note on anything unusual.

    Raises :class:`BadImageError` naming the file when it cannot be read.
    """
    path = Path(path)
    if is_dicom(path):
        check_image_pixels(path)  # Rows x Columns from the header, before pixel_array
        return fit_to_square(read_dicom(path, window), size, mode), "DICOM"
    return decode_image(str(path), size, mode)


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
