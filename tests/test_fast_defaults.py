"""The fast defaults: precision=auto from the CPU's flags, 1 input channel from scratch,
channels_last weights on every device, epoch metrics that equal per-step updates although computed once per epoch, and
last.ckpt linked (not written again) when the best was saved at the same step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from fracture_lit.callbacks.checkpoint import ModelCheckpoint as ModelCheckpointOnce
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
    ("weights", "pretrained", "pretrained_file", "preprocess", "expected"),
    [("none", False, None, None, 1), ("none", True, None, None, 3),
     ("none", False, "w.pth", None, 3), ("none", False, None, "clahe", 1),
     ("none", False, None, "jet", 3), ("none", False, None, ["clahe", "jet"], 3),
     ("none", None, None, None, 1), ("imagenet", None, None, None, 3),
     ("/w/resnet18.pth", None, None, None, 3), (None, None, None, None, 1),
     ("imagenet", False, None, None, 1)],
)  # fmt: skip
def test_input_channels_rule(weights, pretrained, pretrained_file, preprocess, expected) -> None:
    # model.weights, then the deprecated pretrained/pretrained_file (which win when set).
    assert input_channels(weights, pretrained, pretrained_file, preprocess) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [([], 1), (["model.pretrained=true"], 3), (["model.weights=imagenet"], 3),
     (["data.preprocess=jet"], 3),
     (["model.in_chans=3"], 3), (["data=fracatlas"], 1)],
)  # fmt: skip
def test_composed_config_feeds_greyscale_from_scratch_as_one_channel(
    overrides: list[str], expected: int, tmp_path: Path
) -> None:
    cfg = compose_train(overrides, tmp_path)
    assert cfg.model.in_chans == expected
    assert cfg.data.in_chans == expected  # the datamodule's normaliser follows the model


def test_default_model_is_channels_last_on_cpu_and_gives_the_same_logits(tmp_path: Path) -> None:
    cfg = compose_train([], tmp_path)
    fast = hydra.utils.instantiate(cfg.model, num_classes=2, class_names=["a", "b"]).eval()
    cfg_nchw = compose_train(["model.channels_last=false"], tmp_path)
    plain = hydra.utils.instantiate(cfg_nchw.model, num_classes=2, class_names=["a", "b"]).eval()
    plain.load_state_dict(fast.state_dict())
    convs = [m.weight for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert all(
        m.weight.is_contiguous() for m in plain.net.modules() if isinstance(m, torch.nn.Conv2d)
    )
    x = torch.randn(4, cfg.model.in_chans, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-4)


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


class _Scripted(L.LightningModule):
    """A tiny model that logs a scripted ``score`` per epoch (to steer the best checkpoint)."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.scores = scores

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).sum()

    def on_train_epoch_end(self) -> None:
        self.log("score", self.scores[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.1)


def _fit_scripted(tmp_path: Path, scores: list[float], checkpoint_cls: type) -> Path:
    ckpt_dir = tmp_path / checkpoint_cls.__module__
    callback = checkpoint_cls(
        dirpath=ckpt_dir, filename="epoch_{epoch:03d}", monitor="score", mode="max",
        save_top_k=1, save_last=True, auto_insert_metric_name=False,
    )  # fmt: skip
    data = DataLoader(TensorDataset(torch.ones(8, 4)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=len(scores), accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    L.seed_everything(0, verbose=False)
    trainer.fit(_Scripted(scores), data)
    return ckpt_dir


def _contents(ckpt_dir: Path) -> dict[str, tuple[int, int, list[float]]]:
    """Per file: epoch, global step and the weights."""
    out = {}
    for path in sorted(ckpt_dir.iterdir()):
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = state["state_dict"]["layer.weight"].flatten().tolist()
        out[path.name] = (int(state["epoch"]), int(state["global_step"]), weights)
    return out


def test_last_checkpoint_links_to_the_best_written_at_the_same_step(tmp_path: Path) -> None:
    ours = _fit_scripted(tmp_path, [0.1, 0.5, 0.9], ModelCheckpointOnce)
    lightning = _fit_scripted(tmp_path, [0.1, 0.5, 0.9], LightningModelCheckpoint)
    # The same file names holding the same epochs, steps and weights as Lightning's ...
    assert _contents(ours) == _contents(lightning)
    # ... but last.ckpt is the best file's data under a second name, not a second write.
    assert (ours / "last.ckpt").samefile(ours / "epoch_002.ckpt")
    assert not (lightning / "last.ckpt").samefile(lightning / "epoch_002.ckpt")
    state = torch.load(ours / "last.ckpt", map_location="cpu", weights_only=True)
    # Lightning's state key: a resume restores the callback's best path either way.
    assert any(key.startswith("ModelCheckpoint{") for key in state["callbacks"])


def test_last_checkpoint_after_an_epoch_that_did_not_improve_is_its_own_file(
    tmp_path: Path,
) -> None:
    ours = _contents(_fit_scripted(tmp_path, [0.1, 0.9, 0.2], ModelCheckpointOnce))
    lightning = _contents(_fit_scripted(tmp_path, [0.1, 0.9, 0.2], LightningModelCheckpoint))
    assert ours["epoch_001.ckpt"] == lightning["epoch_001.ckpt"]
    assert ours["last.ckpt"][0] == 2  # the last epoch, written anew
    ckpt_dir = tmp_path / ModelCheckpointOnce.__module__
    assert not (ckpt_dir / "last.ckpt").samefile(ckpt_dir / "epoch_001.ckpt")


def test_a_later_last_checkpoint_never_overwrites_the_linked_best(tmp_path: Path) -> None:
    ckpt_dir = _fit_scripted(tmp_path, [0.1, 0.9], ModelCheckpointOnce)
    best, last = ckpt_dir / "epoch_001.ckpt", ckpt_dir / "last.ckpt"
    before = best.read_bytes()
    # Lightning writes a checkpoint to a temporary file and renames it over the name.
    from lightning.fabric.utilities.cloud_io import _atomic_save

    _atomic_save({"epoch": 99}, last)
    assert best.read_bytes() == before and not last.samefile(best)


def test_a_mid_epoch_state_dict_flushes_the_kept_batches() -> None:
    """Resume reads the metric states right after the model's state_dict mid-epoch."""
    stage = StageMetrics(2, "train")
    stage.update(torch.tensor([0.9, 0.2]), torch.tensor([1, 0]), torch.tensor(0.3))
    stage.state_dict()
    assert int(stage.confusion.confmat.sum()) == 2
    assert float(stage.loss.mean_value) == pytest.approx(0.6)


def test_a_run_keeps_deterministic_kernels_without_the_nan_fill(tmp_path: Path) -> None:
    """The Trainer ``train.py`` builds turns deterministic algorithms on
    (``trainer.deterministic: warn``) and the NaN fill of new tensors off (4% of a step)."""
    import torch.utils.deterministic

    from fracture_lit.tasks.training import instantiate_run

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        instantiate_run(compose_train(["logger=csv"], tmp_path))
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.utils.deterministic.fill_uninitialized_memory

        torch.utils.deterministic.fill_uninitialized_memory = True
        instantiate_run(compose_train(["logger=csv", "trainer.deterministic=false"], tmp_path))
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory  # left as it was
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]


# --------------------------------------------------------------------------------------------
# Start-up: what a plain run imports
# --------------------------------------------------------------------------------------------

#: Optional packages a plain training run must not load (each costs seconds of start-up).
NOT_IN_A_PLAIN_RUN = ("wandb", "pandas", "onnx", "onnxruntime", "gradio", "optuna")


def test_import_without_hides_a_package_only_while_the_module_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from fracture_lit.utils.import_guard import import_without

    (tmp_path / "fl_optional_pkg.py").write_text("VALUE = 1\n")
    (tmp_path / "fl_uses_optional.py").write_text(
        "try:\n    import fl_optional_pkg\nexcept ImportError:\n    fl_optional_pkg = None\n"
    )
    (tmp_path / "fl_needs_optional.py").write_text("import fl_optional_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("fl_optional_pkg", "fl_uses_optional", "fl_needs_optional"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    module = import_without("fl_uses_optional", "fl_optional_pkg", "sys")
    assert module.fl_optional_pkg is None  # hidden while it loaded
    assert "fl_optional_pkg" not in sys.modules and sys.modules["sys"] is sys
    import fl_optional_pkg  # importable again afterwards

    assert fl_optional_pkg.VALUE == 1
    assert import_without("fl_uses_optional", "fl_optional_pkg") is module  # already loaded
    monkeypatch.delitem(sys.modules, "fl_optional_pkg")
    with pytest.raises(ImportError):
        import_without("fl_needs_optional", "fl_optional_pkg")
    assert "fl_optional_pkg" not in sys.modules


def test_a_plain_run_imports_no_optional_package(tmp_path: Path) -> None:
    """What ``python -m fracture_lit.train`` imports up to the review's Grad-CAM, in a fresh
    interpreter: none of wandb, pandas, onnx, gradio or optuna (timm would import wandb,
    pytorch-grad-cam pandas), yet wandb stays importable for ``logger=wandb``."""
    import subprocess
    import sys

    code = (
        "import fracture_lit.train, fracture_lit.tasks.training, fracture_lit.tasks.evaluating\n"
        "import sys, timm, torch\n"  # as in a run: timm first loaded by fracture_lit.models
        "from fracture_lit.review.gradcam import CamExplainer\n"
        "net = timm.create_model('resnet18', num_classes=2, in_chans=1).eval()\n"
        "CamExplainer(net, torch.zeros(1, 1, 64, 64))\n"
        f"print(sorted(set({NOT_IN_A_PLAIN_RUN!r}) & set(sys.modules)))\n"
        "import wandb; print(hasattr(wandb, 'init'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.splitlines()
    assert out == ["[]", "True"]
