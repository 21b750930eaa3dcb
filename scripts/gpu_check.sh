#!/usr/bin/env bash
# The GPU check, in one go, on a machine with a CUDA GPU and PyTorch (nothing is installed):
# the CUDA tests (tests/test_gpu.py), then the GPU benchmark (benchmarks/bench_gpu.py: seconds per
# layer of a LLaMA-7B-shaped stack and the fraction of the GPU's batched float64 eigenvalue
# throughput). Needs numpy, scipy, pandas, tqdm, safetensors and pytest beside torch; the widget's
# packages are not needed. A few minutes on an H100/H200.
#
#     bash scripts/gpu_check.sh [--layers 4]
#
# The output also goes to $OUT/gpu_check.log when OUT names a folder.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log=/dev/null
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then log="$OUT/gpu_check.log"; fi

{
  python3 - <<'EOF' || exit 2
import importlib, sys
missing = [m for m in ("torch", "numpy", "scipy", "pandas", "tqdm", "safetensors", "pytest")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {missing}: install them first")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device: run this on a machine with a GPU")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF
  status=0
  echo "== CUDA tests"
  timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py || status=1
  echo "== GPU benchmark"
  timeout 420 python3 benchmarks/bench_gpu.py "$@" || status=1
  echo "== gpu_check exit status $status"
  exit $status
} 2>&1 | tee "$log"
