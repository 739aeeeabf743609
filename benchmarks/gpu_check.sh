#!/usr/bin/env bash
# The CUDA path in one short script, for a lent GPU machine (python3 + torch, no streamlit):
# the d2l LeNet-BN preset on cuda (examples/s, final numbers) beside the same seeds on that
# machine's CPU, and the book BN under a real torch.nn.parallel.replicate on one device.
# Needs the four Fashion-MNIST .gz files in $BNVIZ_DATA_DIR (default .data/).
# Exits non-zero, naming the step, when any step fails or no CUDA device is visible: each
# step's whole output goes to its own log, so no pipe can hide its exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
export BNVIZ_DATA_DIR="${BNVIZ_DATA_DIR:-$PWD/.data}" BNVIZ_CACHE_DIR=/tmp/bnviz-cache
out="${OUT:-out}/gpu"; mkdir -p "$out"
: >"$out/runs.txt"

fail() { echo "gpu_check: FAILED: $*" >&2; exit 1; }

# step NAME CMD...: run CMD with its output in $out/NAME.log; on failure show the log's end
# and stop; on success append its last two lines (the result) to runs.txt.
step() {
  local name=$1 rc=0
  shift
  "$@" >"$out/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 15 "$out/$name.log" >&2
    fail "$name exited with status $rc: $* (whole output in $out/$name.log)"
  fi
  tail -n 2 "$out/$name.log" | tee -a "$out/runs.txt"
}

command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this machine has no NVIDIA driver"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/gpu.txt" \
  || fail "nvidia-smi could not query a GPU"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
  >>"$out/gpu.txt" || fail "python3 cannot import torch"
cat "$out/gpu.txt"
python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || fail "torch sees no CUDA device (torch.cuda.is_available() is False)"

for seed in 0 1; do
  step "cuda-seed$seed" python3 -m bnviz train --preset d2l-lenet-bn --dataset full \
      --device cuda --seed $seed --no-store --quiet --out "$out/cuda-seed$seed"
done
step cuda-lenet-seed0 python3 -m bnviz train --preset d2l-lenet --dataset full --device cuda \
    --seed 0 --no-store --quiet --out "$out/cuda-lenet-seed0"
# the same seed on this machine's CPU (16 cores), 10 epochs, for the CPU/GPU comparison
step cpu-seed0 python3 -m bnviz train --preset d2l-lenet-bn --dataset full --device cpu \
    --seed 0 --no-store --quiet --out "$out/cpu-seed0"
step replicate env PYTHONPATH=. python3 benchmarks/replicate_check.py
cp "$out/replicate.log" "$out/replicate.txt"
echo "gpu_check: OK (results in $out)"
