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


# --- DICOM as hospitals send it: pydicom's own test files (shipped with pydicom) ---------
#: Of pydicom's 78 bundled test files, 18 hold no image (structured reports, RT plans,
#: waveforms, raw datasets without pixel data) or pixel data no maintained decoder reads
#: (12-bit lossy JPEG with a misplaced marker, JPEG 2000 with a broken header).
MIN_SCORED_PYDICOM_FILES = 60


def _pydicom_test_files() -> list[Path]:
    """The .dcm files pydicom ships (its data folder; get_testdata_files would also try to
    download the larger ones, and nothing may be downloaded)."""
    from pydicom.data.data_manager import DATA_ROOT

    return sorted(Path(DATA_ROOT, "test_files").glob("*.dcm"))


def test_pydicom_test_files_each_read_or_named_and_at_least_60_scored() -> None:
    files = _pydicom_test_files()
    assert len(files) == 78
    scored, errors = [], {}
    for path in files:
        try:
            image, note = read_image(path, 32)
        except BadImageError as error:  # the clean error a predict row carries
            assert path.name in str(error)
            errors[path.name] = str(error)
        else:
            assert image.shape == (32, 32) and image.dtype == np.uint8
            assert note.startswith("DICOM")
            scored.append(path.name)
    assert len(scored) + len(errors) == 78
    assert len(scored) >= MIN_SCORED_PYDICOM_FILES, sorted(errors)
    # Compressed transfer syntaxes decode (pylibjpeg + its libjpeg/openjpeg/rle plugins):
    # JPEG 2000, JPEG baseline, JPEG-LS, RLE.
    for name in (
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEGLSNearLossless_16.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_RLE.dcm",
    ):
        assert name in scored
    # A file 62 bytes short is read with the tail zero-filled, and says so.
    assert "MR_truncated.dcm" in scored
    # What holds no image says so, by its kind.
    assert "without pixel data (a RT Plan Storage)" in errors["rtplan.dcm"]


def test_a_dicom_without_meta_header_is_read_with_force(tmp_path: Path, gradient) -> None:
    import pydicom

    path = write_dicom(tmp_path / "full.dcm", gradient, window=(2048, 4096))
    ds = pydicom.dcmread(path)
    raw = tmp_path / "raw.dcm"  # the bare dataset: no preamble, no DICM, no meta header
    del ds.file_meta
    ds.preamble = None
    ds.save_as(raw, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert raw.read_bytes()[128:132] != b"DICM"
    image, note = read_image(raw, 48)
    assert note == "DICOM"
    assert np.abs(read_dicom(raw).astype(int) - gradient).max() <= 1


def test_multiframe_uses_the_middle_frame_and_says_so() -> None:
    from pydicom.data.data_manager import DATA_ROOT

    image, note = read_image(Path(DATA_ROOT, "test_files", "rtdose.dcm"), 32)
    assert note == "DICOM frame 8/15" and image.shape == (32, 32)
