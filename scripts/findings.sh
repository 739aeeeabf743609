#!/usr/bin/env bash
# Re-measures the numbers in README's "Findings" on the full Fashion-MNIST (about 20 min on
# 2 cores). Results land in the run store and in out/findings/*/results.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
o=out/findings
python3 -m bnviz sweep lr --epochs 3 --dataset full --out $o/lr
python3 -m bnviz sweep batch_size --epochs 1 --dataset full --out $o/batch_size
python3 -m bnviz sweep bias --epochs 5 --dataset full --out $o/bias
python3 -m bnviz train --epochs 10 --dataset full --compare-eval --eval-every 47 --out $o/fluctuation
python3 -m bnviz train --epochs 10 --dataset full --compare-eval --eval-every 47 --momentum 0.01 --out $o/fluctuation_m001
python3 -m bnviz sweep devices --epochs 3 --dataset full --out $o/devices
python3 -m bnviz ablation --epochs 10 --dataset full --out $o/ablation
