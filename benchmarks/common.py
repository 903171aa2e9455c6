"""What every benchmark shares: where the real samples are, the machine, medians, JSON out.

Benchmarks report ratios measured in the same run (baseline and fracture_lit interleaved,
medians), because on a shared machine absolute times move with the load; absolute
times are written too, but nothing asserts on them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "FRACTURE_LIT_SHARED_DATA"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def shared_data_dir() -> Path:
    """``$FRACTURE_LIT_SHARED_DATA``, else ``../shared/data`` next to the repository."""
    override = os.environ.get(SHARED_DATA_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def machine() -> dict[str, Any]:
    """The hardware and software a figure was measured on."""
    import torch

    from fracture_lit.utils.environment import cpu_has_fast_bf16, resolve_precision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "precision_auto": resolve_precision("auto"),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles: how far the ratios of single epochs spread."""
    if len(values) < 2:
        return (median(values), median(values))
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (float(q1), float(q3))


def write_json(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")


def report(result: dict[str, Any], out: Path, print_table: Callable[[dict[str, Any]], None]) -> int:
    """Every benchmark's ending: the result to ``out`` (JSON), its table to the console."""
    write_json(result, out)
    print_table(result)
    return 0


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text (and Markdown) table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )
