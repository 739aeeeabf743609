"""kill -9 the server in the middle of a run, start it again, and check the run store: intact,
the finished run whole, the cut-off run marked interrupted — in the store and on the page."""
import os
import re
import signal
import time

import pytest

from bnviz.runs.store import RunStore
from tests.server import serve

pytestmark = pytest.mark.slow  # kills and restarts a real server

# The live lab lives at "/lab"; About is the default page at "/".
DONE = "/lab?dataset=subset&train_size=256&batch_size=64&epochs=1&seed=1"
LONG = "/lab?dataset=subset&train_size=2048&batch_size=16&epochs=200&seed=2"


def run_id(page) -> str:
    return re.search(r"[?&]run=([0-9a-f]{12})", page.url).group(1)


def poll(fn, timeout=30.0, why=lambda: ""):
    t0 = time.time()
    while not (v := fn()):
        assert time.time() - t0 < timeout, f"timed out; {why()}"
        time.sleep(0.1)
    return v


def state(store, run_id, log):
    """What the store holds for a run and the end of the server's log: a failure says why."""
    v = store.load(run_id)
    tail = log.read_text()[-3000:] if log.exists() else "(no log)"
    return f"store: {v and (v.status, v.reason)}; server log ends:\n{tail}"


def test_kill_9_mid_run_then_restart(tmp_path, browser):
    db = tmp_path / "runs.sqlite"
    with serve(db) as (url, server):
        page = browser.new_page()
        page.goto(url + DONE)
        page.get_by_role("button", name="▶ Train").click()
        page.get_by_text("Finished").first.wait_for(timeout=60_000)
        done = run_id(page)
        page.goto(url + LONG)  # a new browser session, so a second run is allowed
        page.get_by_role("button", name="▶ Train").click()
        # the run's status line; a bare "Running" would also match the eval-mode widget's
        # "running statistics" (Playwright's text match ignores case) and not wait at all
        page.get_by_text(re.compile(r"Running — epoch")).first.wait_for(timeout=60_000)
        cut = run_id(page)
        store = RunStore(db)
        poll(lambda: store.load(cut) and store.load(cut).status == "running",
             why=lambda: state(store, cut, tmp_path / "streamlit.log"))
        steps_done = len(poll(lambda: store.load(done)).steps)
        os.kill(server.pid, signal.SIGKILL)  # no shutdown hook, no last save
        server.wait()
        page.close()

    assert store.integrity() == "ok"
    assert store.load(cut).status == "running"  # nobody has noticed yet

    with serve(db) as (url, _):
        page = browser.new_page()
        page.goto(f"{url}{LONG}&run={cut}")  # the share link of the cut-off run
        page.get_by_text("Interrupted").first.wait_for(timeout=60_000)
        assert "server stopped while this run was going" in page.content()
        page.goto(f"{url}{DONE}&run={done}")
        page.get_by_text("Finished").first.wait_for(timeout=60_000)
        page.close()

    assert store.integrity() == "ok"
    finished = store.load(done)
    assert finished.status == "finished" and len(finished.steps) == steps_done == 4
    assert finished.summary["test_acc"] == finished.summary["test_acc"]  # a number, not NaN
    interrupted = store.load(cut)
    assert interrupted.status == "interrupted" and interrupted.ended is not None
    assert {r["status"] for r in store.list_runs()} == {"finished", "interrupted"}
