import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Pythons the `ray` extra installs Ray on (pyproject.toml); elsewhere the Ray tests skip.
RAY_PYTHON = sys.version_info < (3, 14)
# Tests never touch the user's real cache or run store.
os.environ.setdefault("BNVIZ_CACHE_DIR", str(ROOT / ".pytest_cache" / "bnviz-cache"))
os.environ["BNVIZ_DB"] = os.path.join(tempfile.mkdtemp(prefix="bnviz-test-"), "runs.sqlite")


# Slow tests in files whose owners have not marked them yet (each 7-20 s here): marked
# from here so that `pytest -m "not slow"` stays under a minute. Move the mark into the file
# (@pytest.mark.slow) and drop the line when that file is next edited.
@pytest.fixture
def tiny():
    """Quick-run overrides: a slice of the bundled subset, one epoch."""
    return dict(dataset="subset", train_size=512, batch_size=64, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (its own browser download cannot work
    here), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.server import CHROMIUM, CHROMIUM_ARGS
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster (2 CPUs) for every test that trains on Ray. The test extra
    installs Ray, so a missing Ray is an error, except on a Python the Ray extra leaves out."""
    if not RAY_PYTHON:
        pytest.skip("Ray ships no wheels for this Python; the ray extra leaves it out")
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()
