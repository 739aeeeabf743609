"""The GPU checks (benchmarks/gpu_check.sh, benchmarks/replicate_check.py) fail when what they
check fails, and on a machine without CUDA they fail saying so instead of passing. Their GPU
half runs on a lent GPU machine only; this is the half every machine can check."""
import importlib.util
import os
import stat
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def replicate_check():
    spec = importlib.util.spec_from_file_location("replicate_check",
                                                  ROOT / "benchmarks" / "replicate_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_replicate_check_passes_only_what_the_devices_page_says():
    problems = replicate_check().problems
    assert problems((0.0, 1.0), (0.52, 1.83)) == []
    kept = problems((0.5, 1.8), (0.52, 1.83))
    assert len(kept) == 1 and kept[0].startswith("book BN kept something")
    lost = problems((0.0, 1.0), (0.0, 1.0))
    assert len(lost) == 1 and lost[0].startswith("buffer BN did not update in place")
    assert len(problems((0.5, 1.8), (0.0, 1.0))) == 2


@pytest.mark.slow
@no_cuda
def test_replicate_check_fails_without_cuda():
    r = subprocess.run([sys.executable, "benchmarks/replicate_check.py"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and "FAILED: no CUDA device is visible" in r.stderr, r


def fake_nvidia_smi(bin_dir):
    """An nvidia-smi that answers like a driver would, so the script gets past it to torch."""
    for name, body in (("nvidia-smi", "echo 'Fake GPU, 1 MiB, 0.0'"),
                       ("python3", f'exec "{sys.executable}" "$@"')):  # ours has torch
        f = bin_dir / name
        f.write_text(f"#!/bin/sh\n{body}\n")
        f.chmod(f.stat().st_mode | stat.S_IXUSR)


@pytest.mark.slow
@no_cuda
@pytest.mark.parametrize("driver", [False, True], ids=["no-driver", "driver-but-no-cuda"])
def test_gpu_check_fails_clearly_without_cuda(tmp_path, driver):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = "/usr/bin:/bin"
    if driver:
        fake_nvidia_smi(bin_dir)
        path = f"{bin_dir}:{path}"
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120,
                       env={"PATH": path, "OUT": str(tmp_path / "out"), "HOME": str(tmp_path)})
    assert r.returncode == 1, r
    said = ("torch sees no CUDA device" if driver else "nvidia-smi not found")
    assert f"gpu_check: FAILED: {said}" in r.stderr, r.stderr
    assert "OK" not in r.stdout
