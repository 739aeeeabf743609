#!/usr/bin/env bash
# Installs what bnviz needs on a fresh machine. `--dev` adds what the tests need.
# Debian packages (the real Fashion-MNIST, Chromium for browser tests) are installed when
# apt-get is available and we may use it; without them the app uses its bundled subset.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; [ "${1:-}" = "--dev" ] && dev=1
# gcc builds bnviz's fused CPU kernels (bnviz/fused.c); without it training uses PyTorch's ops.
pkgs=(dataset-fashion-mnist gcc libc6-dev)
[ $dev = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: cannot install ${missing[*]} (no apt-get or no root); continuing without" >&2
  fi
fi
req=requirements.txt; [ $dev = 1 ] && req=requirements-dev.txt
python3 -m pip install -q --disable-pip-version-check -r "$req"
