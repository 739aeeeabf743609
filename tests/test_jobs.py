import threading
import time

import pytest

from bnviz.config import make_config
from bnviz.runs.jobs import JobManager, JobRefused, Limits
from bnviz.runs.store import RunStore


def wait_for(mgr, run_id, statuses=("finished", "stopped", "failed", "diverged"), timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = mgr.get(run_id)
        if v and v.status in statuses:
            return v
        time.sleep(0.02)
    raise AssertionError(f"{run_id} still {mgr.get(run_id).status}")


def wait_stored(mgr, run_id, status, timeout=10):
    t0 = time.time()
    while (v := mgr.store.load(run_id)) is None or v.status != status:
        assert time.time() - t0 < timeout, f"{run_id} is {v and v.status} in the store"
        time.sleep(0.02)
    return v


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
    stored = wait_stored(mgr, run_id, "finished")  # the store follows memory by one save
    assert len(stored.steps) == 8


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


# -- hosting: fairness, ownership, expiry, faults ------------------------------------------
def test_queue_is_fair_between_sessions(tiny):
    m = JobManager(workers=0, limits=Limits(per_session=1))  # no worker: the queue stands still
    try:
        cfg = make_config(**tiny)
        grid = [m.submit(cfg.replace(seed=s), session="a", group="g") for s in range(5)]
        b = m.submit(cfg, session="b")
        c = m.submit(cfg, session="c")
        assert [m.get(r).position for r in grid] == [1, 4, 5, 6, 7]
        assert m.get(b).position == 2 and m.get(c).position == 3
    finally:
        m.shutdown()


def test_only_the_owner_may_stop_a_run(tiny):
    m = JobManager(workers=0)
    try:
        run = m.submit(make_config(**tiny), session="alice")
        assert m.owns(run, "alice") and not m.owns(run, "bob") and not m.owns(run, "")
        assert not m.cancel(run, session="bob") and m.get(run).status == "queued"
        assert m.cancel(run, session="alice") and m.get(run).status == "stopped"
    finally:
        m.shutdown()


def test_ended_runs_expire_while_the_queue_is_busy(tmp_path, tiny):
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"),
                   limits=Limits(per_session=1, keep_finished_s=0, expire_every_s=0))
    try:
        done = m.submit(make_config(**tiny), session="a")
        wait_for(m, done)
        busy = m.submit(make_config(**{**tiny, "epochs": 200}), session="b")
        wait_for(m, busy, ("running",))
        m.submit(make_config(**tiny, seed=3), session="c")  # waits behind the busy worker
        assert m.stats()["in_memory"] == 2 and m.stats()["expired"] == 1
        assert m.get(done).status == "finished"  # from the store now
    finally:
        m.shutdown()


def test_memory_stays_flat_over_start_stop_cycles(tmp_path, tiny):
    from tests.server import rss_mb
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"),
                   limits=Limits(keep_finished_s=0, expire_every_s=0))
    cfg = make_config(**{**tiny, "train_size": 256})

    def cycles(seeds):
        for s in seeds:
            run = m.submit(cfg.replace(seed=s), session="s", reuse=False)
            if s % 4 == 0:  # every fourth is stopped mid-run rather than in the queue
                wait_for(m, run, ("running", "finished"))
            m.cancel(run, session="s")
            wait_for(m, run)
    try:
        cycles(range(10))
        before = rss_mb()
        cycles(range(10, 70))
        assert m.stats()["in_memory"] <= 1 and m.stats()["expired"] >= 69
        assert rss_mb() - before < 150, "memory grows with every run"
        assert len(m.store.list_runs(limit=1000)) == 70
    finally:
        m.shutdown()


def raises_once(exc: BaseException):
    """An observer that raises `exc` at the first step it sees, then behaves."""
    def observer(e):
        if e.kind == "step" and observer.armed:
            observer.armed = False
            raise exc
    observer.armed = True
    return observer


def test_a_listener_that_raises_fails_only_its_run(tmp_path, tiny):
    broken = raises_once(RuntimeError("chart exporter broke"))
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), observers=[broken])
    try:
        worker = m._threads[0]
        bad = m.submit(make_config(**tiny), session="a")
        v = wait_for(m, bad)
        assert v.status == "failed" and "chart exporter broke" in v.reason
        ok = m.submit(make_config(**tiny, seed=1), session="a")
        assert wait_for(m, ok).status == "finished" and m._threads[0] is worker
    finally:
        m.shutdown()


def test_a_worker_thread_that_dies_fails_its_run_and_is_replaced(tmp_path, tiny):
    # SystemExit passes every `except Exception` and ends the thread
    fatal = raises_once(SystemExit("simulated death of the worker thread"))
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), observers=[fatal])
    try:
        dead = m._threads[0]
        run = m.submit(make_config(**tiny), session="a")
        v = wait_for(m, run)
        assert v.status == "failed" and "worker running it died" in v.reason
        wait_stored(m, run, "failed")
        dead.join(5)
        assert not dead.is_alive() and m.stats()["workers"] == 1
        again = m.submit(make_config(**tiny, seed=1), session="a")  # the slot is free
        assert wait_for(m, again).status == "finished"
    finally:
        m.shutdown()
    assert not any(t.is_alive() for t in m._threads)


def test_a_locked_store_delays_saving_but_loses_nothing(tmp_path, tiny):
    import sqlite3
    m = JobManager(workers=1, store=RunStore(tmp_path / "db", timeout=0.2))
    backup = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        backup.execute("BEGIN EXCLUSIVE")  # another program holds the database
        run = m.submit(make_config(**tiny), session="a")
        assert wait_for(m, run).status == "finished"  # training does not wait for the store
        assert "locked" in m.last_store_error
        backup.execute("ROLLBACK")
        m.submit(make_config(**tiny, seed=1), session="b")  # the next save catches up
        assert wait_stored(m, run, "finished") and m.last_store_error == ""
    finally:
        backup.close()
        m.shutdown()


SMALL = dict(dataset="subset", train_size=48, batch_size=4, epochs=1, device="cpu")


def test_a_grids_small_batch_runs_train_as_one_batch_and_each_is_its_own_run(tmp_path):
    """A page's grid at batch 4 (where batching pays on a CPU): the seeds of a configuration
    leave the queue together and train as one batched model; a configuration the batched
    model cannot train (GroupNorm) trains alone; every run is stored as an ordinary run."""
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), limits=Limits(per_session=8))
    try:
        with m.together():
            bn = [m.submit(make_config(**SMALL, seed=s), session="a", group="g")
                  for s in range(3)]
            gn = m.submit(make_config(**SMALL, norm="group"), session="a", group="g")
        views = [wait_for(m, r) for r in bn]
        assert [v.status for v in views] == ["finished"] * 3
        assert all(v.summary["batched"] == "trained with 3 runs as one batched model"
                   for v in views)
        assert all(len(v.steps) == 12 and v.config.seed == s for s, v in enumerate(views))
        alone = wait_for(m, gn)
        assert alone.status == "finished" and "batched" not in alone.summary
        for r in bn:
            assert wait_stored(m, r, "finished").summary["batched"]
    finally:
        m.shutdown()


def test_stopping_one_run_of_a_batch_stops_it_alone(tmp_path):
    long = {**SMALL, "train_size": 2048, "epochs": 50}
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), limits=Limits(per_session=8))
    try:
        with m.together():
            ids = [m.submit(make_config(**long, seed=s), session="a", group="g")
                   for s in range(3)]
        t0 = time.time()
        while not len(m.get(ids[0]).steps):
            assert time.time() - t0 < 60
            time.sleep(0.02)
        assert m.cancel(ids[1], session="a")
        assert wait_for(m, ids[1]).status == "stopped"
        time.sleep(0.3)
        assert [m.get(i).status for i in (ids[0], ids[2])] == ["running", "running"]
        before = len(m.get(ids[0]).steps)
        time.sleep(0.5)
        assert len(m.get(ids[0]).steps) > before  # the others train on
    finally:
        m.shutdown()
