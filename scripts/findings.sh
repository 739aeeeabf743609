#!/usr/bin/env bash
# Re-measures the numbers in README's "Findings" on the full Fashion-MNIST (about 30 min of
# 2 quiet cores). Results land in the run store and in out/findings/*/results.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
o=out/findings
python3 -m bnviz train --epochs 10 --dataset full --compare-eval --out $o/fluctuation
python3 -m bnviz ablation --epochs 10 --dataset full --out $o/ablation
python3 -m bnviz sweep lr --epochs 2 --dataset full --values 0.1,1,3,10,30 --out $o/lr
python3 -m bnviz sweep batch_size --epochs 1 --dataset full --values 4,16,64,256 --norms bn,group --out $o/batch_size
python3 -m bnviz sweep bias --epochs 3 --dataset full --values 0,1 --out $o/bias
python3 -m bnviz sweep devices --epochs 2 --dataset full --values 1,8 --out $o/devices
