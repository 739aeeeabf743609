import threading
import time

import pytest

from bnviz.config import make_config
from bnviz.jobs import JobManager, JobRefused, Limits
from bnviz.store import RunStore


def wait_for(mgr, run_id, statuses=("finished", "stopped", "failed", "diverged"), timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = mgr.get(run_id)
        if v and v.status in statuses:
            return v
        time.sleep(0.02)
    raise AssertionError(f"{run_id} still {mgr.get(run_id).status}")


@pytest.fixture
def mgr(tmp_path):
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), limits=Limits(per_session=1))
    yield m
    m.shutdown()
    assert not any(t.is_alive() for t in m._threads)


def test_run_goes_through_and_lands_in_the_store(mgr, tiny):
    run_id = mgr.submit(make_config(**tiny), session="a")
    v = wait_for(mgr, run_id)
    assert v.status == "finished" and len(v.steps) == 8
    stored = mgr.store.load(run_id)
    assert stored.status == "finished" and len(stored.steps) == 8


def test_queue_positions_and_one_active_run_per_session(mgr, tiny):
    slow = make_config(**{**tiny, "epochs": 40})
    a = mgr.submit(slow, session="a")
    b = mgr.submit(slow, session="b")
    c = mgr.submit(slow, session="c")
    with pytest.raises(JobRefused, match="already have 1 run"):
        mgr.submit(slow.replace(seed=5), session="a")
    wait_for(mgr, a, ("running",))
    assert mgr.get(b).position == 1 and mgr.get(c).position == 2
    assert mgr.cancel(b, session="b")
    assert mgr.get(b).status == "stopped" and mgr.get(c).position == 1
    assert not mgr.cancel(a, session="c")  # not yours
    assert mgr.cancel(a, session="a")
    assert wait_for(mgr, a).status == "stopped"
    wait_for(mgr, c, ("running",))
    mgr.cancel(c)
    assert wait_for(mgr, c).status == "stopped"


def test_finished_identical_run_is_reused(mgr, tiny):
    cfg = make_config(**tiny)
    first = mgr.submit(cfg, session="a")
    wait_for(mgr, first)
    assert mgr.submit(cfg, session="b") == first
    again = mgr.submit(cfg, session="b", reuse=False)
    assert again != first


def test_limits_refuse_with_the_limit_named(tmp_path, tiny):
    m = JobManager(workers=1, limits=Limits(max_epochs=3, max_work=1000))
    try:
        with pytest.raises(JobRefused, match="epochs is capped at 3"):
            m.submit(make_config(**{**tiny, "epochs": 5}))
        with pytest.raises(JobRefused, match="capped at 1,000"):
            m.submit(make_config(**{**tiny, "epochs": 2}))
    finally:
        m.shutdown()


def test_two_sessions_at_once_both_finish(tmp_path, tiny):
    m = JobManager(workers=2)
    try:
        ids = [m.submit(make_config(**tiny, seed=s), session=f"s{s}") for s in (1, 2)]
        views = [wait_for(m, i) for i in ids]
        assert [v.status for v in views] == ["finished", "finished"]
        assert views[0].steps[:, 2].tolist() != views[1].steps[:, 2].tolist()
    finally:
        m.shutdown()


def test_failed_run_frees_the_slot(mgr, tiny):
    bad = mgr.submit(make_config(**{**tiny, "batch_size": 1, "train_size": 10}), session="a")
    v = wait_for(mgr, bad)
    assert v.status == "failed" and "batch of one" in v.reason
    ok = mgr.submit(make_config(**tiny), session="a")
    assert wait_for(mgr, ok).status == "finished"


def test_shutdown_ends_every_thread(tiny):
    m = JobManager(workers=2)
    m.submit(make_config(**{**tiny, "epochs": 100}), session="x")
    time.sleep(0.3)
    before = threading.active_count()
    m.shutdown()
    assert not any(t.is_alive() for t in m._threads)
    assert threading.active_count() <= before - 2
