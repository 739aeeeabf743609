"""The README's set-up promise on a Python bnviz does not control: `scripts/setup.sh` with
Debian's own, externally managed Python (PEP 668) makes a project-local .venv, the dashboard
and the `bnviz` command run from it, and a second run reuses it in about a second.

It runs as a newcomer would, in a copy of the checkout (the real .venv is not touched) with a
scratch HOME and a minimal PATH. Only pip's own settings come along (PIP_* variables, proxies
and the user's pip.conf), so that a machine that reaches its package index only through them
can still install. The first set-up installs torch: a few minutes."""
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server import free_port, wait_healthy

SYSTEM_PYTHON = Path("/usr/bin/python3")
# Only at the top of the checkout: bnviz/runs is a package, not a run folder.
TOP_LEVEL_SKIP = {".git", ".venv", ".pytest_cache", ".hypothesis", ".benchmarks", ".data",
                  "runs", "out", "build"}
SETUP_TIMEOUT = 900

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(SETUP_TIMEOUT + 300),
    pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason=f"no {SYSTEM_PYTHON} on this machine"),
]


def _ignore(folder, names):
    top = Path(folder).resolve() == ROOT
    return {n for n in names
            if n == "__pycache__" or n.endswith(".egg-info") or (top and n in TOP_LEVEL_SKIP)}


def _newcomer_env(home: Path) -> dict:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "BNVIZ_PYTHON": str(SYSTEM_PYTHON)}
    env.update({k: v for k, v in os.environ.items()
                if k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
    for rel in (".config/pip/pip.conf", ".pip/pip.conf"):
        src = Path.home() / rel
        if src.is_file():
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, home / rel)
    return env


def _setup(repo: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True,
                       text=True, timeout=SETUP_TIMEOUT)
    took = time.monotonic() - t0
    assert r.returncode == 0, f"setup.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r, took


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the checkout after the README's set-up command on the system Python; removed
    afterwards."""
    base = tmp_path_factory.mktemp("install")
    repo, home = base / "bnviz", base / "home"
    home.mkdir()
    shutil.copytree(ROOT, repo, ignore=_ignore, symlinks=True)
    env = _newcomer_env(home)
    r, took = _setup(repo, env)
    print(f"fresh set-up: {took:.0f} s")
    yield repo, env, r, took
    shutil.rmtree(base, ignore_errors=True)  # the venv alone is over a GB


def test_setup_on_the_system_python_gives_a_working_venv(installed):
    repo, env, r, _ = installed
    venv = repo / ".venv"
    assert "making .venv with /usr/bin/python3" in r.stdout, r.stdout
    assert "externally-managed-environment" not in r.stdout + r.stderr
    # The venv is built from the system Python, and bnviz is this copy, installed editable.
    out = subprocess.run(
        [venv / "bin/python", "-c",
         "import os, sys, bnviz; print(sys.prefix); print(os.path.realpath(sys._base_executable));"
         "print(bnviz.__file__)"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    prefix, base_exe, bnviz_file = out.stdout.split("\n")[:3]
    assert Path(prefix).resolve() == venv.resolve()
    assert Path(base_exe) == SYSTEM_PYTHON.resolve()
    assert Path(bnviz_file).is_relative_to(repo / "bnviz")

    presets = subprocess.run([venv / "bin/bnviz", "presets"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=120)
    assert presets.returncode == 0, presets.stderr
    assert "d2l-lenet-bn" in presets.stdout and "d2l-lenet" in presets.stdout

    # The README's dashboard command (headless, on a free loopback port).
    port = free_port()
    log = open(repo / "streamlit.log", "w")
    p = subprocess.Popen(
        [venv / "bin/streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=repo, env={**env, "BNVIZ_DB": str(repo / "runs.sqlite")}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, timeout=120)
        except TimeoutError:
            pytest.fail(f"streamlit never answered:\n{(repo / 'streamlit.log').read_text()}")
        with urllib.request.urlopen(url + "/_stcore/health", timeout=10) as resp:
            assert resp.read() == b"ok"
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()


def test_second_setup_reuses_the_venv_and_is_fast(installed):
    repo, env, _, first = installed
    python = repo / ".venv/bin/python"
    before = python.lstat().st_mtime_ns
    r, took = _setup(repo, env)
    print(f"second set-up: {took:.1f} s (first: {first:.0f} s)")
    assert "making .venv" not in r.stdout and "installing" not in r.stdout, r.stdout
    assert ".venv is up to date" in r.stdout
    assert python.lstat().st_mtime_ns == before
    assert took < 20, f"a set-up with nothing to do took {took:.1f} s"
