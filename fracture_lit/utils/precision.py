"""The precision a run trains in, and the one precision every score is computed in.

Training may use bf16 autocast where the hardware computes bf16 fast (``precision=auto``:
CUDA GPUs with bf16, CPUs with AMX or AVX-512 BF16). Scoring may not: a probability that is
reported, thresholded or compared (the module's validation and test epochs, hence the
Youden threshold stored in the checkpoint; eval, predict, serve, ensembles, the ONNX check)
is computed in IEEE fp32 (:data:`SCORE_PRECISION`) under :func:`fp32_scoring`, so one
checkpoint and one image give one probability whichever command computed it. bf16 scores
differ from fp32 ones by ~1e-3, enough to move a thresholded image across the line (issue
22: accuracy 0.539 from training, 0.526 from eval, on one checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from fracture_lit.errors import ConfigError

__all__ = [
    "FAST_BF16_CPU_FLAGS",
    "PRECISIONS",
    "SCORE_PRECISION",
    "PrecisionChoice",
    "choose_precision",
    "cpu_flags",
    "cpu_has_fast_bf16",
    "cpu_model",
    "fp32_scoring",
    "refuse_half_weights",
    "resolve_precision",
    "scoring_dtype",
    "uses_gpu",
]

#: What every reported probability is computed in (recorded in metrics.json as ``score``).
SCORE_PRECISION = "32-true"

# CPU flags of native bf16 arithmetic (Intel AMX, AVX-512 BF16; AMD Zen 4+ has the latter).
# Without them bf16 is emulated and slower than fp32, so ``auto`` keeps fp32.
FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})

#: ``trainer.precision`` values; ``auto`` is resolved by :func:`choose_precision`.
PRECISIONS = (
    "auto",
    "32",
    "32-true",
    "64",
    "64-true",
    "16",
    "16-mixed",
    "16-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
)
# Half-precision *weights*: no fp32 copy exists to score with, so they are refused.
_HALF_WEIGHTS = ("16-true", "bf16-true")


def _cpuinfo_field(keys: tuple[str, ...], cpuinfo: str | Path) -> str | None:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist, e.g. macOS)."""
    return frozenset((_cpuinfo_field(("flags", "Features"), cpuinfo) or "").split())


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's ``model name`` (what benchmarks and the README record beside a figure)."""
    return _cpuinfo_field(("model name",), cpuinfo) or "unknown"


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively (checked at run time, not at install)."""
    return bool(FAST_BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))


def uses_gpu(accelerator: str | None) -> bool:
    """Whether a trainer with this ``accelerator`` setting runs on a CUDA GPU here."""
    wants_gpu = accelerator in (None, "auto", "gpu", "cuda")
    return wants_gpu and torch.cuda.is_available()


@dataclass(frozen=True)
class PrecisionChoice:
    """The training precision, why it was chosen, and the scoring precision beside it."""

    train: str
    chosen_by: str
    score: str = SCORE_PRECISION

    def record(self) -> dict[str, str]:
        """The ``precision`` block of metrics.json (the model card reads it)."""
        return {"train": self.train, "score": self.score, "chosen_by": self.chosen_by}

    def sentence(self) -> str:
        """The one INFO line a run logs."""
        return (
            f"Precision: training in {self.train} ({self.chosen_by}); validation, test and "
            f"every prediction are scored in fp32 ({self.score})."
        )


def choose_precision(
    precision: str | int | None,
    accelerator: str | None = "auto",
    flags: frozenset[str] | None = None,
) -> PrecisionChoice:
    """``auto``: bf16 autocast where the hardware computes bf16 fast, fp32 elsewhere.

    GPUs with bf16 support (Ampere and newer) and CPUs with AMX or AVX-512 BF16 get
    ``bf16-mixed`` (measured on such a CPU: the main job 95 s in bf16, 145 s in fp32);
    older GPUs (fp16 would need loss scaling) and other CPUs (bf16 is emulated there,
    slower than fp32: ``benchmarks/bench_precision.py``) keep ``32-true``. Any other value
    is kept as given. ``flags`` stands in for /proc/cpuinfo (tests).
    """
    if precision not in (None, "auto"):
        return PrecisionChoice(str(precision), f"trainer.precision={precision} as configured")
    if uses_gpu(accelerator):
        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16-mixed", f"auto: the GPU {name} computes bf16")
        return PrecisionChoice("32-true", f"auto: the GPU {name} has no bf16")
    found = sorted(FAST_BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))
    if found:
        return PrecisionChoice(
            "bf16-mixed", f"auto: this CPU has {' and '.join(found)}, native bf16 arithmetic"
        )
    return PrecisionChoice(
        "32-true", "auto: this CPU has neither amx_bf16 nor avx512_bf16, bf16 would be emulated"
    )


def resolve_precision(
    precision: str | int | None,
    accelerator: str | None = "auto",
    flags: frozenset[str] | None = None,
) -> str | int:
    """The value the Trainer gets: :func:`choose_precision`'s, a given value unchanged."""
    if precision not in (None, "auto"):
        return precision
    return choose_precision(precision, accelerator, flags).train


def refuse_half_weights(precision: str | int | None, key: str = "trainer.precision") -> None:
    """``16-true`` / ``bf16-true`` keep no fp32 weights to score with: one clear refusal."""
    if str(precision) in _HALF_WEIGHTS:
        raise ConfigError(
            key,
            precision,
            "keeps the weights themselves in half precision, so validation and test could "
            "not score in fp32 as eval, predict and serve do",
            "Use bf16-mixed (fp32 weights, bf16 autocast while training) or 32-true.",
        )


def scoring_dtype(module: torch.nn.Module) -> torch.dtype:
    """float32, or float64 for weights kept in float64 (``64-true``: wider, never narrower)."""
    weight = next(module.parameters(), None)
    return torch.float64 if weight is not None and weight.dtype == torch.float64 else torch.float32


@contextmanager
def fp32_scoring(device_type: str = "cpu") -> Iterator[None]:
    """Score in IEEE fp32: autocast off, and no TF32 (CUDA) or reduced-precision oneDNN
    matmuls while inside (``torch.set_float32_matmul_precision("high")``, which training
    sets for speed, allows both). The previous settings come back on exit."""
    matmul = torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
