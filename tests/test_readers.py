"""Reading images for prediction: DICOM windowing, MONOCHROME1, magic detection, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fracture_lit.data.cache import BadImageError
from fracture_lit.data.readers import is_dicom, list_inputs, read_dicom, read_image
from tests.dicom_files import write_dicom


@pytest.fixture
def gradient() -> np.ndarray:
    """A bright 'bone' band on a darker ramp: asymmetric, so an inversion shows."""
    image = np.tile(np.linspace(20, 120, 64, dtype=np.float32), (48, 1))
    image[:, 28:36] = 230
    return image.astype(np.uint8)


def test_window_from_the_file_recovers_display_values(tmp_path: Path, gradient) -> None:
    # Window covering the whole 12-bit range: display value = stored / 16, i.e. the original.
    path = write_dicom(tmp_path / "a.dcm", gradient, window=(2048, 4096))
    assert np.abs(read_dicom(path).astype(int) - gradient).max() <= 1


def test_monochrome1_is_inverted_back(tmp_path: Path, gradient) -> None:
    normal = read_dicom(write_dicom(tmp_path / "m2.dcm", gradient, window=(2048, 4096)))
    inverted = read_dicom(
        write_dicom(tmp_path / "m1.dcm", gradient, monochrome1=True, window=(2048, 4096))
    )
    assert np.abs(inverted.astype(int) - normal).max() <= 1  # bone stays bright
    assert inverted[:, 30].mean() > inverted[:, 2].mean() + 100


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path, gradient) -> None:
    plain = read_dicom(write_dicom(tmp_path / "p.dcm", gradient, window=(2048, 4096)))
    rescaled = read_dicom(
        write_dicom(tmp_path / "r.dcm", gradient, window=(2048, 4096), slope=2.0, intercept=-64)
    )
    assert np.abs(rescaled.astype(int) - plain).max() <= 2


def test_narrow_window_clips_and_stretches(tmp_path: Path, gradient) -> None:
    # Centre on the soft tissue ramp: bone saturates white, the ramp spreads over more greys.
    image = read_dicom(write_dicom(tmp_path / "w.dcm", gradient, window=(70 * 16, 50 * 16)))
    assert image[:, 30].min() == 255
    assert image[:, :28].std() > gradient[:, :28].std()


def test_no_window_uses_the_value_range(tmp_path: Path, gradient) -> None:
    image = read_dicom(write_dicom(tmp_path / "n.dcm", gradient))
    assert image.min() == 0 and image.max() == 255
    assert np.corrcoef(image.ravel(), gradient.ravel())[0, 1] > 0.99


def test_dicom_without_suffix_is_found_by_its_magic(tmp_path: Path, gradient) -> None:
    write_dicom(tmp_path / "IM0001", gradient)
    (tmp_path / "notes.txt").write_text("not an image")
    cv2.imwrite(str(tmp_path / "b.png"), gradient)
    assert is_dicom(tmp_path / "IM0001") and not is_dicom(tmp_path / "b.png")
    assert [p.name for p in list_inputs(tmp_path)] == ["IM0001", "b.png"]
    image, note = read_image(tmp_path / "IM0001", 32)
    assert image.shape == (32, 32) and note == "DICOM"


def test_broken_files_raise_with_their_name(tmp_path: Path) -> None:
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\0" * 200)
    with pytest.raises(BadImageError, match="fake.dcm"):
        read_image(fake, 32)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(BadImageError, match="bad.jpg"):
        read_image(bad, 32)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_inputs(tmp_path / "nowhere")
