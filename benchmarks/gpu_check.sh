#!/usr/bin/env bash
# The CUDA path in one short script, for a lent GPU machine (python3 + torch, no streamlit):
# the d2l LeNet-BN preset on cuda (examples/s, final numbers) beside the same seeds on that
# machine's CPU, and the book BN under a real torch.nn.parallel.replicate on one device.
# Needs the four Fashion-MNIST .gz files in $BNVIZ_DATA_DIR (default .data/).
set -uo pipefail
cd "$(dirname "$0")/.."
export BNVIZ_DATA_DIR="${BNVIZ_DATA_DIR:-$PWD/.data}" BNVIZ_CACHE_DIR=/tmp/bnviz-cache
out="${OUT:-out}/gpu"; mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
for seed in 0 1; do
  python3 -m bnviz train --preset d2l-lenet-bn --dataset full --device cuda --seed $seed \
      --no-store --quiet --out "$out/cuda-seed$seed" 2>&1 | tail -2 | tee -a "$out/runs.txt"
done
python3 -m bnviz train --preset d2l-lenet --dataset full --device cuda --seed 0 \
    --no-store --quiet --out "$out/cuda-lenet-seed0" 2>&1 | tail -2 | tee -a "$out/runs.txt"
# the same seed on this machine's CPU (16 cores), 10 epochs, for the CPU/GPU comparison
python3 -m bnviz train --preset d2l-lenet-bn --dataset full --device cpu --seed 0 \
    --no-store --quiet --out "$out/cpu-seed0" 2>&1 | tail -2 | tee -a "$out/runs.txt"
PYTHONPATH=. python3 benchmarks/replicate_check.py 2>&1 | tee "$out/replicate.txt"
