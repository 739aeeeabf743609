#!/usr/bin/env bash
# Re-measures README's "Findings": the results library holds every question page's default
# grid over 5 paired seeds on the full Fashion-MNIST. `library build` trains only what the
# library lacks (runs already in your run store are copied; a stopped build resumes), then
# the README's sections are rewritten from the library by scripts/findings.py.
# From nothing: about 2 hours of 2 quiet cores (see the README's "Results library").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m bnviz library build --jobs 2
python3 -m bnviz library check
python3 scripts/findings.py
