"""Fault injection with real processes and real files (issue 10, item 5).

Every fault ends in one clear line (``Error: ...`` on stderr, exit code 1, no traceback) or
is absorbed where it belongs (a bad image costs one row or one skipped file), and never
costs what was already done: killed cache builds leave nothing that blocks or fools the
next run, checkpoints written before a fault stay intact.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fracture_lit.data.cache import build_cache, cache_key
from fracture_lit.data.dataset_info import DatasetLayoutError
from fracture_lit.data.datasets.image_folder import index_image_folder
from fracture_lit.data.image_limits import DEFAULT_MAX_PIXELS, check_image_pixels
from fracture_lit.errors import ConfigError, UserError, check_command_line
from tests.conftest import QUICK_TRAINER, TINY, compose_entry, compose_train, run_cli

PY_ENV_ROOT = "FRACTURE_LIT_ROOT"


# --------------------------------------------------------------------------- helpers


def png_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A valid-looking PNG whose header says ``width`` x ``height``, in ~100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


def write_pngs(folder: Path, count: int, size: int = 24, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img_{seed}_{i:03d}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (size, size), dtype=np.uint8))
        paths.append(path)
    return paths


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_one_clean_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 1, one ``Error:`` line on stderr holding ``fragments``, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in output
    return errors[0]


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's PID 1 may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Evil:
    """Unpickling this runs a shell command: what weights_only=True must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One tiny 2-epoch run (its folder): best and last checkpoints for the module."""
    from fracture_lit.tasks.training import run

    out = tmp_path_factory.mktemp("faults-run")
    cfg = compose_train(
        [*TINY, f"data.root={synthetic_root}", "trainer.max_epochs=2", "test=false"], out
    )
    try:
        results = run(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert results["status"] == "done"
    assert (out / "checkpoints" / "last.ckpt").is_file()
    return out


def best_ckpt(run_dir: Path) -> Path:
    return next(p for p in sorted((run_dir / "checkpoints").glob("epoch_*.ckpt")))


# --------------------------------------------------------------------------- bad values


BAD_TRAIN_VALUES = [
    (["data.image_size=-5"], "data.image_size=-5: must be an integer in [16, 4096]"),
    (["data.image_size=64.5"], "data.image_size=64.5: must be an integer"),
    (["data.batch_size=0"], "data.batch_size=0: must be an integer >= 1"),
    (["data.eval_batch_size=-1"], "data.eval_batch_size=-1: must be an integer >= 1"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: must be an integer >= 1 (or -1)"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be an integer >= 1 (or -1)"),
    (["trainer.min_epochs=5", "trainer.max_epochs=2"], "is more than trainer.max_epochs=2"),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5: must be a number in [0, 1)"),
    (["data.val_fraction=0.6", "data.test_fraction=0.5"], "leaves no training images"),
    (["data.n_folds=5", "data.fold=7"], "data.fold=7: must be an integer in [0, 4]"),
    (["data.n_folds=1"], "data.n_folds=1: must be an integer >= 2"),
    (["data.fold=1"], "data.fold=1: needs data.n_folds"),
    (["data.max_bad_fraction=2"], "data.max_bad_fraction=2: must be a number in [0, 1]"),
    (["data.max_image_pixels=0"], "data.max_image_pixels=0: must be an integer in [1,"),
    (["data.resize_mode=crop"], "data.resize_mode=crop: must be one of resize, letterbox"),
    (["data.augment=[flip_rotate,sparkle]"], "'sparkle' is not one of"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0: must be a number in (0, 10]"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr=abc: must be a number"),
    (["model.drop_rate=1.5"], "model.drop_rate=1.5: must be a number in [0, 1)"),
    (["model.class_weights=[1,-2]"], "model.class_weights=[1,-2]: must be null, balanced"),
    (["monitor=val/aucroc"], "the model does not log this metric (did you mean val/auroc?)"),
    (["monitor_mode=maximum"], "monitor_mode=maximum: must be one of min, max"),
    (["trainer.precision=16-mixed"], "float16 needs a CUDA GPU"),
    (["trainer.precision=fp8"], "trainer.precision=fp8: must be one of auto"),
    (["trainer.accelerator=gpu"], "this machine has no CUDA GPU"),
    (["trainer.devices=0"], "trainer.devices=0: must be a positive integer"),
    (["trainer.devices=4", "data.batch_size=2"], "split across 4 devices"),
    (["callbacks.early_stopping.patience=-1"], "patience=-1: must be an integer >= 0"),
]


@pytest.mark.parametrize(("overrides", "expected"), BAD_TRAIN_VALUES)
def test_each_bad_train_value_is_one_line_naming_key_and_value(
    tmp_path: Path, overrides: list[str], expected: str
) -> None:
    from fracture_lit.validation import validate_train

    if torch.cuda.is_available() and "CUDA" in expected:
        pytest.skip("this machine has a GPU")
    cfg = compose_train([*TINY, *overrides], tmp_path)
    with pytest.raises(ConfigError) as info:
        validate_train(cfg)
    assert expected in info.value.one_line()
    assert "\n" not in info.value.one_line()
    # Refused before anything was built: no data, no cache, no checkpoint.
    assert not (tmp_path / "data").exists()


def test_class_list_and_positive_class_are_checked(tmp_path: Path) -> None:
    from fracture_lit.validation import validate_train

    cases = [
        (["data.classes=[fractured]"], "data.classes=[fractured]: must be a list of at least"),
        (
            ["data.classes=[intact,fractured]", "data.positive_class=broken"],
            "data.positive_class=broken: is not one of data.classes",
        ),
    ]
    for overrides, expected in cases:
        cfg = compose_train([*QUICK_TRAINER, "data=image_folder", *overrides], tmp_path)
        with pytest.raises(ConfigError) as info:
            validate_train(cfg)
        assert expected in str(info.value)


def test_unknown_backbone_is_refused_before_data(tmp_path: Path) -> None:
    from fracture_lit.validation import validate_train

    cfg = compose_train([*TINY, "model.backbone=resnet_18"], tmp_path)
    with pytest.raises(UserError, match="resnet18"):
        validate_train(cfg)
    assert not (tmp_path / "data").exists()


def test_typo_in_a_key_or_option_names_the_nearest(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        check_command_line("train", ["data.imge_size=64"])
    assert info.value.code == 1
    line = capsys.readouterr().err.strip()
    assert line == (
        "Error: data.imge_size=64: no such key in the train config. Did you mean "
        "data.image_size=64? (To add a new key on purpose, write +data.imge_size=64.)"
    )
    with pytest.raises(SystemExit):
        check_command_line("train", ["-m", "model=resnt18,resnet50"])
    line = capsys.readouterr().err.strip()
    assert line.startswith("Error: model=resnt18: no such option. Did you mean model=resnet18?")
    check_command_line("train", ["-m", "model=resnet18,resnet50", "data.image_size=64"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.image_size=-5"], "Error: data.image_size=-5: must be an integer in [16, 4096]."),
        (["data.batch_size=0"], "Error: data.batch_size=0: must be an integer >= 1."),
        (["trainer.max_epochs=abc"], "Error: trainer.max_epochs=abc: must be an integer >= 1"),
    ],
)
def test_bad_values_on_the_command_line_exit_before_any_work(
    tmp_path: Path, overrides: list[str], expected: str
) -> None:
    result = run_cli(
        ["-m", "fracture_lit.train", *TINY, *overrides],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=180,
    )
    line = assert_one_clean_line(result)
    assert line.startswith(expected), line
    assert "Instantiating datamodule" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # the synthetic data was never generated


def test_unwritable_checkpoint_folder_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoints should go")
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            *TINY,
            f"callbacks.model_checkpoint.dirpath={blocker}/checkpoints",
        ],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=180,
    )
    assert_one_clean_line(
        result, f"callbacks.model_checkpoint.dirpath={blocker}/checkpoints: cannot write there"
    )
    assert "Instantiating datamodule" not in result.stdout + result.stderr


def test_run_folder_under_a_file_is_refused_before_hydra_creates_it(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for flags, key in (([], "hydra.run.dir"), (["-m"], "hydra.sweep.dir")):
        with pytest.raises(SystemExit):
            check_command_line("train", [*flags, f"{key}={blocker}/run"])
        line = capsys.readouterr().err.strip()
        assert line == (
            f"Error: {key}={blocker}/run: {blocker} is a file, not a folder. Move it away or "
            f"choose another folder with {key}=..."
        )


def test_run_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from fracture_lit.errors import OutputNotWritableError
    from fracture_lit.validation import validate_train

    cfg = compose_train(TINY, tmp_path)
    target = tmp_path / "run_is_a_file"
    target.write_text("x")
    cfg.paths.output_dir = str(target)
    with pytest.raises(OutputNotWritableError, match="this is a file, not a folder"):
        validate_train(cfg)


def test_bad_values_of_eval_predict_export_audit_pipeline(tmp_path: Path, trained: Path) -> None:
    from fracture_lit import validation

    ckpt = best_ckpt(trained)
    cases = [
        ("eval", [f"ckpt_path={ckpt}", "split=tests"], "split=tests: must be one of"),
        ("eval", [f"ckpt_path={ckpt}", "threshold=1.5"], "threshold=1.5: must be a number in"),
        ("eval", [f"ckpt_path={ckpt}", "n_bootstrap=-1"], "n_bootstrap=-1: must be an integer"),
        ("predict", [f"ckpt_path={ckpt}", f"input={tmp_path}/nothing"], "no such file"),
        ("predict", [f"ckpt_path={ckpt}", f"input={ckpt}", "batch_size=0"], "batch_size=0"),
        ("predict", [f"ckpt_path={ckpt}", f"input={ckpt}", "window=[40]"], "window=[40]"),
        ("predict", [f"ckpt_path={ckpt}", f"input={ckpt}", f"output={tmp_path}"], "a folder"),
        ("export", [f"ckpt_path={ckpt}", "atol=0"], "atol=0: must be a number > 0"),
        ("export", [f"ckpt_path={ckpt}", "opset=3"], "opset=3: must be an integer in [7, 30]"),
        ("audit", ["audit.split=theirs"], "audit.split=theirs: must be one of given, ours"),
        ("audit", ["audit.max_hamming=99"], "audit.max_hamming=99"),
        ("pipeline", ["threshold=2"], "threshold=2: must be a number in [0, 1]"),
        ("pipeline", ["min_per_class=0"], "min_per_class=0: must be an integer >= 1"),
    ]
    for entry, overrides, expected in cases:
        cfg = compose_entry(entry, overrides, tmp_path / entry)
        with pytest.raises(UserError) as info:
            getattr(validation, f"validate_{entry}")(cfg)
        assert expected in info.value.one_line(), (entry, info.value.one_line())
    GlobalHydra.instance().clear()


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("entry", ["train", "eval", "predict", "export"])
def test_malicious_pickle_is_refused_by_every_entry_point(tmp_path: Path, entry: str) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": Evil(marker)}, evil)  # a .ckpt-shaped zip with a payload
    image = write_pngs(tmp_path / "in", 1)[0]
    extra = {"train": [*TINY], "predict": [f"input={image}"]}.get(entry, [])
    result = run_cli(
        ["-m", f"fracture_lit.{entry}", f"ckpt_path={evil}", *extra],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=180,
    )
    assert_one_clean_line(
        result, f"ckpt_path={evil}: not a checkpoint that loads with weights_only=True"
    )
    assert not marker.exists()


def test_corrupted_last_ckpt_at_resume_is_one_line_and_keeps_the_others(
    tmp_path: Path, trained: Path, synthetic_root: Path
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    for ckpt in (trained / "checkpoints").glob("*.ckpt"):
        (run_dir / "checkpoints" / ckpt.name).write_bytes(ckpt.read_bytes())
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # torn write
    best = best_ckpt(run_dir)
    before = best.read_bytes()
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            *TINY,
            f"data.root={synthetic_root}",
            f"ckpt_path={last}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=180,
    )
    assert_one_clean_line(result, f"ckpt_path={last}: not a checkpoint that loads")
    assert best.read_bytes() == before
    torch.load(best, map_location="cpu", weights_only=True)  # still a good checkpoint


def test_checkpoint_of_another_backbone_is_refused_at_resume(tmp_path: Path, trained: Path) -> None:
    from fracture_lit.validation import validate_train

    cfg = compose_train(
        [*TINY, "model=resnet50", f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}"], tmp_path
    )
    with pytest.raises(ConfigError, match="was trained with backbone 'resnet18'"):
        validate_train(cfg)


def test_checkpoint_whose_settings_do_not_fit_its_weights_is_one_line(
    tmp_path: Path, trained: Path, synthetic_root: Path
) -> None:
    from fracture_lit.models.loading import CheckpointError, load_checkpoint
    from fracture_lit.tasks.training import run

    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    other = 1 if checkpoint["hyper_parameters"]["in_chans"] == 3 else 3
    checkpoint["hyper_parameters"]["in_chans"] = other  # settings the weights contradict
    lying = tmp_path / "lying.ckpt"
    torch.save(checkpoint, lying)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(lying)
    assert "its weights do not fit the model its settings describe" in info.value.one_line()
    assert "size mismatch" in info.value.one_line()

    # Resuming training with settings the checkpoint's weights do not fit.
    cfg = compose_train(
        [
            *TINY,
            f"data.root={synthetic_root}",
            f"model.in_chans={other}",
            f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}",
        ],
        tmp_path / "resume",
    )
    try:
        with pytest.raises(CheckpointError) as info:
            run(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert "its weights do not fit the configured model (size mismatch" in str(info.value)


# --------------------------------------------------------------------------- training faults


@pytest.mark.parametrize("check_every", ["null", "4"])
def test_nan_loss_stops_naming_epoch_and_step(
    tmp_path: Path, synthetic_root: Path, check_every: str
) -> None:
    """Checked every step (CPU's default) or read from the device every 4 steps (a GPU's
    way): the same first bad step is named, and no checkpoint holds NaN weights."""
    from fracture_lit.callbacks.nonfinite import NonFiniteLossError
    from fracture_lit.tasks.training import run

    # Class weights beyond float32 become inf: the weighted loss is NaN at the first step.
    cfg = compose_train(
        [
            *TINY,
            f"data.root={synthetic_root}",
            "model.class_weights=[1e39,1e39]",
            f"callbacks.nonfinite_loss.check_every_n_steps={check_every}",
        ],
        tmp_path,
    )
    try:
        with pytest.raises(NonFiniteLossError) as info:
            run(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert "the training loss is nan at epoch 0, step 0 (batch 0)" in str(info.value)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and "NonFiniteLossError" in record["error"]
    assert not list(tmp_path.rglob("*.ckpt"))


def test_full_disk_at_checkpoint_time_is_one_line(tmp_path: Path, synthetic_root: Path) -> None:
    """RLIMIT_FSIZE makes the first checkpoint write fail as a full disk would (even as root,
    where a read-only folder is still writable)."""
    import resource

    limit = 2 * 1024 * 1024  # logs, the cache and config fit; a resnet18 checkpoint does not

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, PY_ENV_ROOT: str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fracture_lit.train",
            *TINY,
            f"data.root={synthetic_root}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    line = assert_one_clean_line(result, "at epoch 0 (File too large)")
    assert "resume with ckpt_path=" in line
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert not list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))  # no torn file


# --------------------------------------------------------------------------- images


def test_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    from fracture_lit.data.cache import BadImageError, decode_image

    bomb = png_bomb(tmp_path / "bomb.png")
    big = png_bomb(tmp_path / "big.png", 30_000, 30_000)
    for path, pixels in ((bomb, "2,500,000,000"), (big, "900,000,000")):
        started = time.monotonic()
        with pytest.raises(BadImageError, match=f"{path.name}: the header says {pixels} pixels"):
            decode_image(str(path), 32)
        assert time.monotonic() - started < 2
    check_image_pixels(big, 10**9)  # a raised limit lets it through
    assert DEFAULT_MAX_PIXELS == 89_478_485


def test_bomb_in_training_data_is_one_skipped_file(tmp_path: Path, caplog) -> None:
    from fracture_lit.data.datasets.image_folder import ImageFolderDataModule

    root = tmp_path / "folder"
    write_pngs(root / "fractured", 70, seed=1)
    write_pngs(root / "intact", 70, seed=2)
    bomb = png_bomb(root / "fractured" / "zz_bomb.png")
    datamodule = ImageFolderDataModule(
        root,
        image_size=32,
        batch_size=8,
        cache_dir=tmp_path / "cache",
        decode_workers=2,  # real worker processes (141 files // 64 = 2)
        group_duplicates=False,
        use_given_split=False,
    )
    with caplog.at_level("WARNING"):
        datamodule.setup("fit")
    assert str(bomb) not in {s.path for s in datamodule.samples}
    assert len(datamodule.samples) == 140
    assert "header says 2,500,000,000 pixels" in caplog.text or str(bomb) in caplog.text
    datamodule.max_bad_fraction = 0.001
    datamodule.datasets = {}
    with pytest.raises(UserError, match=r"max_bad_fraction"):
        datamodule.setup("fit")


def test_bomb_in_predict_folder_costs_one_row(tmp_path: Path, trained: Path) -> None:
    folder = tmp_path / "scans"
    good = write_pngs(folder, 2)
    bomb = png_bomb(folder / "bomb.png")
    out = tmp_path / "pred.csv"
    result = run_cli(
        [
            "-m",
            "fracture_lit.predict",
            f"ckpt_path={best_ckpt(trained)}",
            f"input={folder}",
            f"output={out}",
        ],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert {p.name for p in good} | {"bomb.png"} == set(rows)
    assert rows["bomb.png"]["status"] == "error"
    assert "2,500,000,000 pixels" in rows["bomb.png"]["error"]
    assert all(rows[p.name]["status"] == "ok" and rows[p.name]["probability"] for p in good)
    assert bomb.exists()


# --------------------------------------------------------------------------- folder dataset


def test_positive_class_is_chosen_by_name_not_by_sort_order(tmp_path: Path) -> None:
    for negative, positive in (("intact", "fractured"), ("normal", "abnormal"), ("no", "yes")):
        root = tmp_path / f"{negative}_{positive}"
        write_pngs(root / positive, 2, seed=1)
        write_pngs(root / negative, 2, seed=2)
        index = index_image_folder(root)
        assert index.classes == [negative, positive]
        labels = {Path(s.path).parent.name: s.label for s in index.samples}
        assert labels == {negative: 0, positive: 1}


def test_binary_names_that_do_not_tell_need_positive_class(tmp_path: Path) -> None:
    root = tmp_path / "ab"
    write_pngs(root / "a", 2, seed=1)
    write_pngs(root / "b", 2, seed=2)
    with pytest.raises(ConfigError) as info:
        index_image_folder(root)
    assert "Set data.positive_class=b (or a)" in str(info.value)
    assert index_image_folder(root, positive_class="a").classes == ["b", "a"]


def test_empty_class_folder_is_refused_with_its_path(tmp_path: Path) -> None:
    root = tmp_path / "three"
    write_pngs(root / "fractured", 2, seed=1)
    write_pngs(root / "intact", 2, seed=2)
    (root / "other").mkdir()
    with pytest.raises(DatasetLayoutError) as info:
        index_image_folder(root)
    assert f"class folder {root / 'other'} holds no image" in info.value.one_line()


# --------------------------------------------------------------------------- cache


def test_stale_lock_held_by_orphans_of_a_dead_build_is_cleared(tmp_path: Path, caplog) -> None:
    paths = [str(p) for p in write_pngs(tmp_path / "img", 4)]
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    key = cache_key(paths, 32, "resize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_tmp = cache_dir / f".{key}.{dead.pid}.tmp.npy"
    stale_tmp.write_bytes(b"\0" * 4096)
    holder = (
        "import fcntl, sys, time\n"
        f"f = open({str(cache_dir / (key + '.lock'))!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        f"f.truncate(0); f.write({socket.gethostname() + ' ' + str(dead.pid)!r}); f.flush()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    orphan = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with caplog.at_level("INFO"):
            cached = build_cache(paths, size=32, cache_dir=cache_dir)
        assert time.monotonic() - started < 30
    finally:
        orphan.kill()
        orphan.wait()
    assert f"held by leftovers of process {dead.pid}" in caplog.text
    assert f"partial cache left by process {dead.pid}" in caplog.text
    assert not stale_tmp.exists()
    assert cached.array.shape == (4, 32, 32) and not cached.bad


@pytest.mark.timeout(300)
def test_sigkill_during_first_cache_build_leaves_no_orphans_and_rebuilds(
    tmp_path: Path, caplog
) -> None:
    root = tmp_path / "folder"
    write_pngs(root / "fractured", 70, seed=1)
    write_pngs(root / "intact", 70, seed=2)
    pipe = root / "fractured" / "zz_stuck.png"
    os.mkfifo(pipe)  # a decode worker blocks reading it: the build is caught mid-way
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fracture_lit.train",
            "data=image_folder",
            f"data.root={root}",
            "data.image_size=32",
            "data.group_duplicates=false",
            "data.decode_workers=2",
            f"paths.data_dir={data_dir}",
            *QUICK_TRAINER,
        ],
        cwd=tmp_path,
        env={**os.environ, PY_ENV_ROOT: str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache_dir = data_dir / ".cache"
    try:
        wait_for(lambda: list(cache_dir.glob(".*.tmp.npy")), 120, "the cache build to start")
        wait_for(lambda: len(children_of(proc.pid)) >= 2, 30, "the decode workers")
        workers = children_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not any(running(w) for w in workers), 10, "the decode workers to die")
    (lock,) = cache_dir.glob("*.lock")
    with open(lock, "a+") as handle:  # nobody holds it any more
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    (partial,) = cache_dir.glob("*.npy")  # only the partial .<key>.<pid>@<host>.tmp.npy
    assert partial.name.startswith(".") and partial.name.endswith(".tmp.npy")

    pipe.unlink()
    write_pngs(root / "fractured", 1, seed=9)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    with caplog.at_level("INFO"):
        cached = build_cache(paths, size=32, cache_dir=cache_dir, workers=2)
    assert f"Removing {partial}" in caplog.text
    assert not partial.exists()
    assert cached.array.shape[0] == len(paths) and not cached.bad


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_during_training_then_resume_finishes(tmp_path: Path, synthetic_root: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        "-m",
        "fracture_lit.train",
        *TINY,
        f"data.root={synthetic_root}",
        "trainer.max_epochs=30",
        "~callbacks.early_stopping",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=tmp_path,
        env={**os.environ, PY_ENV_ROOT: str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        wait_for(last.is_file, 300, "the first checkpoint")
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    epoch = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert epoch < 29
    resumed = run_cli(
        [*args[:-1], f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'resumed'}"],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert record["status"] == "done" and record["epochs"] == 30


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bomb_in_training_data_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    write_pngs(root / "fractured", 70, seed=1)
    write_pngs(root / "intact", 70, seed=2)
    bomb = png_bomb(root / "intact" / "zz_bomb.png")
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "data=image_folder",
            f"data.root={root}",
            "data.image_size=32",
            "data.group_duplicates=false",
            f"hydra.run.dir={tmp_path / 'run'}",
            *QUICK_TRAINER,
        ],
        cwd=tmp_path,
        env={PY_ENV_ROOT: str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Skipping 1 unreadable files" in output and str(bomb) in output
    assert "positive (label 1, the 'probability' column) = 'fractured'" in output
