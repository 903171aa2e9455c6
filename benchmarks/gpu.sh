#!/usr/bin/env bash
# The GPU part of the benchmarks (needs CUDA): bf16, channels_last, torch.compile,
# standalone vs inside fracture_lit, loader headroom at 224 and 512 px, DDP 1 vs all GPUs.
#   bash benchmarks/gpu.sh            -> bench_results/gpu.json + a table
#   bash benchmarks/gpu.sh --no-ddp   (extra arguments go to bench_gpu.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "benchmarks/gpu.sh: no CUDA GPU on this machine; nothing to measure." >&2
  echo "(python benchmarks/bench_gpu.py --dry runs every path tiny on CPU.)" >&2
  exit 1
fi
exec "$PY" benchmarks/bench_gpu.py --out bench_results/gpu.json "$@"
