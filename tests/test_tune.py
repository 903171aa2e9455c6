"""The finders: ``python -m fracture_lit.tune lr|batch_size`` on the synthetic data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, compose_train, run_cli

SMALL = ["model=small_cnn_128", *TINY]


def test_lr_finder_suggests_where_the_loss_falls_fastest(tmp_path: Path, synthetic_root) -> None:
    run = tmp_path / "lr"
    result = run_cli(
        [
            "-m",
            "fracture_lit.tune",
            "lr",
            *SMALL,
            f"data.root={synthetic_root}",
            "tune.num_training=40",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    from fracture_lit.layout import RunLayout

    record = json.loads(RunLayout(run).tune_record.read_text())
    suggestion = record["suggestion"]
    assert f"Train with: model.optimizer.lr={suggestion:.3g}" in result.stdout
    assert record["override"] == f"model.optimizer.lr={suggestion:.3g}"

    # The steepest descent of the saved curve, recomputed here: the loss's gradient with
    # respect to the learning rate over the points the suggestion considers.
    with RunLayout(run).lr_curve.open() as stream:
        rows = [(float(r["lr"]), float(r["loss"])) for r in csv.DictReader(stream)]
    assert len(rows) == record["steps"] > record["skip_begin"] + record["skip_end"] + 1
    lrs, losses = np.array(rows).T
    kept = slice(record["skip_begin"], len(rows) - record["skip_end"])
    lrs, losses = lrs[kept], losses[kept]
    finite = np.isfinite(losses)
    slope = np.gradient(losses[finite], lrs[finite])
    steepest = int(np.argmin(slope))
    assert slope[steepest] < 0  # the loss falls there
    assert suggestion == pytest.approx(lrs[finite][steepest], rel=1e-9)
    assert np.all(np.diff(lrs) > 0)  # the range test grows the rate step by step

    png = RunLayout(run).lr_plot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    from PIL import Image

    assert Image.open(RunLayout(run).lr_plot).size[0] >= 400
    # Nothing a later run could resume from: no checkpoint at all in the finder's folder.
    assert not list(run.rglob("*.ckpt")) and not (run / "checkpoints").exists()


def test_batch_size_finder_states_the_ddp_split(tmp_path: Path, synthetic_root) -> None:
    from fracture_lit.layout import RunLayout
    from fracture_lit.tasks.tuning import run_finder

    cfg = compose_train(
        [
            *SMALL,
            f"data.root={synthetic_root}",
            "+tune=batch_size",
            "tune.max_val=16",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "model.optimizer.lr=0.001",
        ],
        tmp_path,
    )
    record = run_finder("batch_size", cfg)
    assert json.loads(RunLayout(tmp_path).tune_record.read_text()) == record
    per_device = record["per_device"]
    assert 2 <= per_device <= 16 and record["devices"] == 2
    assert record["override"] == f"data.batch_size={2 * per_device}"
    message = record["message"]
    assert f"gives each device {per_device}" in message
    if 2 * per_device != 16:  # the configured global batch (TINY) changes: lr scaled linearly
        assert record["lr_if_scaled"] == pytest.approx(0.001 * 2 * per_device / 16)
        assert "linear scaling rule" in message
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        (["ckpt_path=/some/run/checkpoints/last.ckpt"], {}, "not from a run being resumed"),
        ([], {"WORLD_SIZE": "2"}, "not under a distributed launch (WORLD_SIZE=2)"),
        (["debug=fast_dev_run"], {}, "fast_dev_run"),
    ],
    ids=["resumed-run", "ddp-launch", "fast-dev-run"],
)
def test_finders_refuse_where_they_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra, env, expected
) -> None:
    from fracture_lit.errors import UserError
    from fracture_lit.tasks.tuning import run_finder

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = compose_train([*SMALL, "+tune=lr", *extra], tmp_path)
    with pytest.raises(UserError, match=re.escape(expected)):
        run_finder("lr", cfg)


def test_finder_refuses_a_multirun_and_a_training_run_folder(tmp_path: Path) -> None:
    result = run_cli(["-m", "fracture_lit.tune", "lr", "-m", "seed=1,2"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: a finder cannot run inside a multirun")

    from fracture_lit.errors import UserError
    from fracture_lit.tasks.tuning import run_finder

    (tmp_path / "metrics.json").write_text('{"status": "done"}')
    cfg = compose_train([*SMALL, "+tune=batch_size"], tmp_path)
    with pytest.raises(UserError, match="already holds a training run"):
        run_finder("batch_size", cfg)
    assert (tmp_path / "metrics.json").read_text() == '{"status": "done"}'
