"""Faults a hosted server meets: a run out of memory, a config that cannot run here, a store
that is corrupt. Each must end as a message, never as a crashed page or a lost worker."""
import subprocess
import sys

import pytest
import torch

from bnviz.dashboard import ui
from bnviz.config import make_config
from bnviz.runs.jobs import JobManager
from tests.apptest import open_page
from tests.conftest import ROOT
from tests.test_jobs import wait_for

# A real out-of-memory error without a machine to exhaust: once the big run has started, its
# process may grow by only 64 MiB (RLIMIT_AS), so the first 4096-image batch cannot be
# allocated. The limit is lifted when that run ends and a normal run follows on the same worker.
OOM_SCRIPT = """
import resource, sys, time
sys.path.insert(0, %r)
import torch
torch.set_num_threads(1)
from bnviz.config import make_config
from bnviz.runs.jobs import JobManager

soft, hard = resource.getrlimit(resource.RLIMIT_AS)

def vm_bytes():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmSize"))
    return int(line.split()[1]) * 1024

def squeeze(e):
    if e.kind == "started" and e.total_steps == 1:
        resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + 64 * 2**20, hard))
    elif e.kind == "ended":
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

m = JobManager(workers=1, observers=[squeeze])
for cfg in (make_config(dataset="subset", train_size=4096, batch_size=4096, epochs=1),
            make_config(dataset="subset", train_size=256, batch_size=64, epochs=1)):
    run = m.submit(cfg, session="a")
    while m.get(run).active:
        time.sleep(0.05)
    print(m.get(run).status, "|", m.get(run).reason.splitlines()[0] if m.get(run).reason else "")
m.shutdown()
""" % str(ROOT)


@pytest.mark.slow
def test_out_of_memory_fails_that_run_and_the_next_one_trains():
    out = subprocess.run([sys.executable, "-c", OOM_SCRIPT], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    assert lines[0].startswith("failed | ran out of memory — try a smaller batch size"), lines
    assert lines[1].startswith("finished"), lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_config_that_cannot_run_here_fails_with_the_reason(tiny):
    m = JobManager(workers=1)
    try:
        run = m.submit(make_config(**{**tiny, "device": "cuda"}), session="a")
        v = wait_for(m, run)
        assert v.status == "failed" and "no CUDA GPU is available" in v.reason
        assert m.stats()["workers"] == 1
        assert [r["status"] for r in m.list_runs()] == ["failed"]
    finally:
        m.shutdown()


def test_corrupt_store_is_a_warning_on_the_page(tmp_path, monkeypatch):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"definitely not SQLite " * 300)
    monkeypatch.setenv("BNVIZ_DB", str(bad))
    ui.manager.clear()  # the server-wide runner is rebuilt against the broken file
    try:
        at = open_page("lab")
        assert not at.exception
        text = " ".join(w.value for w in at.warning)
        assert "could not be opened" in text and "corrupt" in text and str(bad) in text
        assert any(b.label == "▶ Train" and not b.disabled for b in at.button)
    finally:
        ui.manager.clear()  # the next test gets a runner on the healthy test store
