#!/usr/bin/env bash
# Sets bnviz up in a project-local virtual environment, .venv, which the README's commands use
# (.venv/bin/streamlit, .venv/bin/python, .venv/bin/bnviz). `--dev` adds what the tests need.
# A second run reuses .venv and installs again only when pyproject.toml or requirements*.txt
# changed (or something is missing), so it takes about a second.
#
# Python: $BNVIZ_PYTHON if set, else the first of python3, python3.14 ... python3.10 that is
# 3.10 or newer. Nothing is installed into that Python itself, so a distribution's own,
# externally managed Python (PEP 668) works as it is, and this part needs no root.
# Debian packages (the real Fashion-MNIST, gcc for bnviz's fused CPU kernels, a CJK font for
# the Chinese UI, Chromium for the browser tests) are installed when apt-get is there and we are root (or have password-less
# sudo); otherwise they are skipped with a message and the app uses its bundled subset.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
venv=.venv
stamp=$venv/.bnviz-setup

dev=0
for a in "$@"; do
  case "$a" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; echo "usage: scripts/setup.sh [--dev]"; exit 0 ;;
    *) echo "setup: unknown option '$a' (usage: scripts/setup.sh [--dev])" >&2; exit 2 ;;
  esac
done
say() { echo "setup: $*"; }
warn() { echo "setup: $*" >&2; }

# --- Debian packages (optional) -------------------------------------------------------------
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
apt_updated=0
can_apt() { command -v apt-get >/dev/null && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; }
apt_install() {  # apt_install PKG...: true once they are installed
  can_apt || return 1
  if [ $apt_updated = 0 ]; then $sudo apt-get update -qq || return 1; apt_updated=1; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
# gcc builds bnviz's fused CPU kernels (bnviz/speed/fused.c); without it training uses
# PyTorch's ops. fonts-noto-cjk gives a browser on this machine (and the screenshots of
# scripts/screenshot.py and the browser tests) the glyphs of the Chinese UI (?lang=zh).
pkgs=(dataset-fashion-mnist gcc libc6-dev fonts-noto-cjk)
[ $dev = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if ! can_apt; then
    warn "cannot install ${missing[*]} (no apt-get or no root); continuing without"
  else
    say "installing ${missing[*]} (apt-get)"
    apt_install "${missing[@]}" || warn "apt-get could not install ${missing[*]}; continuing without"
  fi
fi

# --- The Python to build .venv from ---------------------------------------------------------
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; }
# The interpreter a Python (or a virtual environment's Python) runs on, links resolved.
py_id() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null; }
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

py=""
if [ -n "${BNVIZ_PYTHON:-}" ]; then
  command -v "$BNVIZ_PYTHON" >/dev/null || { warn "BNVIZ_PYTHON=$BNVIZ_PYTHON: no such program"; exit 1; }
  py_ok "$BNVIZ_PYTHON" || {
    warn "BNVIZ_PYTHON=$BNVIZ_PYTHON is $("$BNVIZ_PYTHON" -V 2>&1); bnviz needs Python 3.10 or newer"; exit 1; }
  py=$BNVIZ_PYTHON
fi

# Reuse .venv unless its Python is gone or too old, the checkout moved since it was made (its
# scripts name the old path), or BNVIZ_PYTHON names another interpreter.
if [ -e $venv ]; then
  why=""
  if ! py_ok $venv/bin/python; then
    why="its Python no longer runs or is older than 3.10"
  elif [ -f $stamp ] && [ "$(sed -n 's/^root=//p' $stamp)" != "$root" ]; then
    why="it was made for $(sed -n 's/^root=//p' $stamp)"
  elif [ -n "$py" ] && [ "$(py_id "$py")" != "$(py_id $venv/bin/python)" ]; then
    why="it runs $(py_id $venv/bin/python), BNVIZ_PYTHON is $(py_id "$py")"
  fi
  if [ -n "$why" ]; then
    say "making $venv again: $why"
    rm -rf $venv
  fi
fi

if [ ! -e $venv ]; then
  if [ -z "$py" ]; then
    for c in python3 python3.14 python3.13 python3.12 python3.11 python3.10; do
      if command -v $c >/dev/null && py_ok $c; then py=$c; break; fi
    done
    if [ -z "$py" ]; then
      have=$(python3 -V 2>&1 || echo "no python3")
      warn "bnviz needs Python 3.10 or newer (found: $have); install one, or set BNVIZ_PYTHON=/path/to/python3.X"
      exit 1
    fi
  fi
  say "making $venv with $(command -v "$py") (Python $(py_version "$py"))"
  log=$(mktemp); trap 'rm -f "$log"' EXIT
  if ! "$py" -m venv $venv >"$log" 2>&1; then
    rm -rf $venv
    if "$py" -c 'import ensurepip' >/dev/null 2>&1; then
      cat "$log" >&2; warn "could not make $venv with $py"; exit 1
    fi
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
    pkg="python$(py_version "$py")-venv"
    exe=$(py_id "$py")
    if dpkg -S "$exe" >/dev/null 2>&1 && can_apt; then
      say "$py has no ensurepip: installing $pkg (apt-get)"
      apt_install "$pkg" || { warn "apt-get could not install $pkg"; exit 1; }
      "$py" -m venv $venv >"$log" 2>&1 || { rm -rf $venv; cat "$log" >&2; exit 1; }
    elif dpkg -S "$exe" >/dev/null 2>&1; then
      warn "$py cannot make a virtual environment: its ensurepip is missing."
      warn "Install it as root:  apt-get install $pkg   (or: sudo apt-get install $pkg)"
      warn "or set BNVIZ_PYTHON to another Python 3.10 or newer; then run this again."
      exit 1
    else
      warn "$py cannot make a virtual environment: it has no ensurepip module."
      warn "Set BNVIZ_PYTHON to a Python 3.10 or newer that has it (python -m ensurepip works)."
      exit 1
    fi
  fi
fi

# --- bnviz and its requirements into .venv --------------------------------------------------
extras=""; [ $dev = 1 ] && extras="[test]"
hash=$(cat pyproject.toml requirements.txt requirements-dev.txt 2>/dev/null | sha256sum | cut -c1-16)
mods="bnviz streamlit torch numpy pandas plotly"
[ $dev = 1 ] && mods="$mods pytest pytest_timeout xdist hypothesis playwright"
installed() {  # the stamp matches and the modules are there, bnviz from this checkout
  [ -f $stamp ] && grep -qx "hash=$hash" $stamp || return 1
  [ $dev = 0 ] || grep -qx "dev=1" $stamp || return 1
  [ -x $venv/bin/streamlit ] && [ -x $venv/bin/bnviz ] || return 1
  $venv/bin/python - "$root" $mods <<'EOF' >/dev/null 2>&1
import os, sys
from importlib.util import find_spec
root, mods = sys.argv[1], sys.argv[2:]
if any(find_spec(m) is None for m in mods):
    sys.exit(1)
sys.exit(not os.path.realpath(find_spec("bnviz").origin).startswith(root + os.sep))
EOF
}
if installed; then
  say "$venv is up to date (Python $(py_version $venv/bin/python))"
else
  if [ -f $stamp ]; then say "updating bnviz${extras} and its requirements in $venv"
  else say "installing bnviz${extras} and its requirements into $venv (minutes: torch is large)"; fi
  # PIP_USER=0: a user-wide `user = true` in pip's configuration cannot apply inside a venv.
  PIP_USER=0 $venv/bin/python -m pip install -q --disable-pip-version-check --progress-bar off \
    -e ".${extras}"
  was_dev=0; [ -f $stamp ] && grep -qx "dev=1" $stamp && grep -qx "hash=$hash" $stamp && was_dev=1
  [ $dev = 1 ] && was_dev=1
  printf 'root=%s\nhash=%s\ndev=%s\n' "$root" "$hash" "$was_dev" > $stamp
fi
say "ready: $venv/bin/streamlit run app.py$([ $dev = 1 ] && echo '; tests: .venv/bin/python -m pytest -n 2 --dist loadfile')"
