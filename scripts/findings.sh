#!/usr/bin/env bash
# Re-measures README's "Findings" on the full Fashion-MNIST, every grid over 5 paired seeds
# (about 85 min of 2 quiet cores), then rewrites that section from the results:
#   findings/<grid>/results.csv  one row per run (every varied setting, seed included)
#   findings/<grid>/summary.csv  per configuration: mean, 95% CI half-width, n
# Runs already in the run store are reused, so a stopped run of this script resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
o=findings
common=(--dataset full --seeds 5 --jobs 2)
python3 -m bnviz sweep bias --epochs 3 "${common[@]}" --out $o/bias
python3 -m bnviz sweep dataparallel --epochs 3 "${common[@]}" --out $o/dataparallel
python3 -m bnviz sweep lr --epochs 2 --values 0.1,1,3,10,30 "${common[@]}" --out $o/lr
python3 -m bnviz sweep fluctuation --epochs 10 "${common[@]}" --out $o/fluctuation
python3 -m bnviz sweep norm_batch --epochs 2 --values 4,16,64,256 "${common[@]}" --out $o/norm_batch
python3 -m bnviz ablation --epochs 10 "${common[@]}" --out $o/ablation
# d2l's three presets; d2l-lenet-bn is the ablation's "all four BN layers", reused
python3 -m bnviz sweep presets --epochs 10 "${common[@]}" --out $o/presets
python3 scripts/findings.py --out $o
