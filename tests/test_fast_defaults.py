"""The fast defaults: precision=auto from the CPU's flags, 1 input channel from scratch,
and epoch metrics that equal per-step updates although they are computed once per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fracture_lit.config import input_channels
from fracture_lit.metrics import build_metrics
from fracture_lit.models.module import StageMetrics
from fracture_lit.utils.environment import cpu_flags, cpu_has_fast_bf16, resolve_precision
from tests.conftest import compose_train

AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
ZEN4 = AVX2_ONLY | {"avx512f", "avx512_bf16"}
# AVX-512 without BF16 (Skylake-X): bf16 is emulated there, fp32 is faster.
SKYLAKE_X = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(AVX2_ONLY, "32-true"), (SKYLAKE_X, "32-true"), (ZEN4, "bf16-mixed"),
     (SAPPHIRE_RAPIDS, "bf16-mixed"), (frozenset(), "32-true")],
    ids=["avx2", "avx512-no-bf16", "zen4", "sapphire-rapids", "no-cpuinfo"],
)  # fmt: skip
def test_auto_precision_on_cpu_follows_the_bf16_flags(flags: frozenset, expected: str) -> None:
    assert resolve_precision("auto", accelerator="cpu", flags=flags) == expected
    assert resolve_precision(None, accelerator="cpu", flags=flags) == expected


def test_an_explicit_precision_is_never_changed() -> None:
    for value in ("32-true", "bf16-mixed", "16-mixed", 32):
        assert resolve_precision(value, accelerator="cpu", flags=SAPPHIRE_RAPIDS) == value


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\n"
        "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n"
    )
    flags = cpu_flags(cpuinfo)
    assert {"avx2", "amx_bf16"} <= flags and "model" not in flags
    assert cpu_has_fast_bf16(flags)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    # This machine: the answer agrees with its own /proc/cpuinfo.
    here = cpu_flags()
    assert cpu_has_fast_bf16() == bool({"amx_bf16", "avx512_bf16"} & here)


@pytest.mark.parametrize(
    ("pretrained", "pretrained_file", "preprocess", "expected"),
    [(False, None, None, 1), (True, None, None, 3), (False, "w.pth", None, 3),
     (False, None, "clahe", 1), (False, None, "jet", 3), (False, None, ["clahe", "jet"], 3)],
)  # fmt: skip
def test_input_channels_rule(pretrained, pretrained_file, preprocess, expected) -> None:
    assert input_channels(pretrained, pretrained_file, preprocess) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [([], 1), (["model.pretrained=true"], 3), (["data.preprocess=jet"], 3),
     (["model.in_chans=3"], 3), (["data=fracatlas"], 1)],
)  # fmt: skip
def test_composed_config_feeds_greyscale_from_scratch_as_one_channel(
    overrides: list[str], expected: int, tmp_path: Path
) -> None:
    cfg = compose_train(overrides, tmp_path)
    assert cfg.model.in_chans == expected
    assert cfg.data.in_chans == expected  # the datamodule's normaliser follows the model


@pytest.mark.parametrize("num_classes", [2, 3])
def test_epoch_metrics_equal_per_step_updates(num_classes: int) -> None:
    """Deferring the updates to the epoch's end must not change a single value."""
    g = torch.Generator().manual_seed(0)
    stage = StageMetrics(num_classes, "val")
    reference = build_metrics(num_classes, prefix="val/")
    losses, counts = [], []
    for size in (7, 16, 16, 3):
        targets = torch.randint(0, num_classes, (size,), generator=g)
        probs = torch.softmax(torch.randn(size, num_classes, generator=g), 1)
        scores = probs[:, 1] if num_classes == 2 else probs
        loss = torch.rand((), generator=g)
        stage.update(scores, targets, loss)
        reference.update(scores, targets)
        losses.append(float(loss) * size)
        counts.append(size)
    stage.flush()
    got = {k: float(v) for k, v in stage.collection.compute().items()}
    want = {k: float(v) for k, v in reference.compute().items()}
    assert got == pytest.approx(want)
    assert float(stage.loss.compute()) == pytest.approx(sum(losses) / sum(counts))
    assert stage.scores.compute().shape[0] == sum(counts)
    assert int(stage.confusion.compute().sum()) == sum(counts)
    stage.update(scores, targets, loss)
    stage.reset()
    stage.flush()  # nothing pending after a reset
    assert int(stage.confusion.compute().sum()) == 0
