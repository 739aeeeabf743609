"""The Runner contract, checked against the shipped JobManager and a remote-style fake, and
the live-lab page driven through the fake: pages do not care who trains."""
import threading
import time

import pytest

from bnviz.dashboard import ui
from bnviz.config import make_config
from bnviz.runs.jobs import JobManager, Limits
from bnviz.runs.runner import JobRefused, Runner, runner_from_env
from bnviz.runs.store import RunStore
from tests.apptest import button, open_page
from tests.fake_runner import EagerRunner


@pytest.fixture(params=["jobmanager", "eager-fake", "ray"])
def runner(request, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    limits = Limits(max_epochs=3)
    if request.param == "ray":  # a real local Ray cluster (tests/conftest.py)
        request.getfixturevalue("ray_cluster")
        from bnviz.runs.ray_runner import RayRunner
        r = RayRunner(store=store, limits=limits)
    elif request.param == "jobmanager":
        r = JobManager(workers=1, store=store, limits=limits)
    else:
        r = EagerRunner(store, limits)
    yield r
    r.shutdown()


def settled(r: Runner, run_id: str, timeout: float = 60.0):
    t0 = time.time()
    while (v := r.get(run_id)) is not None and v.active and time.time() - t0 < timeout:
        time.sleep(0.05)
    return v


def test_runner_contract(runner, tiny):
    assert isinstance(runner, Runner)
    cfg = make_config(**tiny)
    run = runner.submit(cfg, session="alice")
    v = settled(runner, run)
    assert v.status == "finished" and v.config == cfg and len(v.steps) == 8
    assert runner.store.load(run).status == "finished"  # nothing only in memory
    assert runner.find(cfg).run_id == run
    listed = runner.list_runs(status="finished")
    assert [r["run_id"] for r in listed] == [run] and listed[0]["config"] == cfg.to_dict()
    assert runner.list_runs(status="failed") == []
    assert runner.submit(cfg, session="bob") == run  # a finished identical run is reused
    assert runner.owns(run, "alice") and not runner.owns(run, "bob")
    assert not runner.cancel(run, session="bob")
    assert runner.get("0123456789ab") is None
    with pytest.raises(JobRefused, match="epochs is capped at 3"):
        runner.submit(make_config(**{**tiny, "epochs": 4}), session="alice")
    assert {"queued", "running", "in_memory", "workers"} <= set(runner.stats())
    before = threading.active_count()
    runner.shutdown()
    assert threading.active_count() <= before
    with pytest.raises(JobRefused, match="shutting down"):
        runner.submit(cfg.replace(seed=9), session="alice")


def test_runner_from_env_picks_hosted_limits_and_survives_a_bad_store(tmp_path):
    bad = tmp_path / "corrupt.sqlite"
    bad.write_bytes(b"not a database" * 500)
    r = runner_from_env({"BNVIZ_HOSTED": "1", "BNVIZ_DB": str(bad), "BNVIZ_WORKERS": "9",
                         "BNVIZ_TORCH_THREADS": "0"})  # 0: leave this process's torch alone
    try:
        assert r.store is None and "corrupt" in r.last_store_error
        assert r.limits == Limits.hosted() and r.stats()["workers"] == Limits.hosted().max_workers
    finally:
        r.shutdown()


def test_lab_page_runs_on_another_runner(tmp_path, monkeypatch):
    fake = EagerRunner(RunStore(tmp_path / "runs.sqlite"))
    monkeypatch.setattr(ui, "manager", lambda: fake)
    at = open_page("lab", {"dataset": "subset", "train_size": "256", "batch_size": "64",
                           "epochs": "1"})
    button(at, "▶ Train").click().run()
    assert not at.exception and fake.submitted == 1
    assert any("Finished" in s.value for s in at.success)


@pytest.mark.slow
def test_local_default_trains_two_runs_of_a_grid_at_once(tmp_path):
    # BNVIZ_TORCH_THREADS=0 leaves this test process's torch thread count alone.
    r = runner_from_env({"BNVIZ_DB": str(tmp_path / "runs.sqlite"), "BNVIZ_TORCH_THREADS": "0"})
    hosted = runner_from_env({"BNVIZ_HOSTED": "1", "BNVIZ_DB": str(tmp_path / "h.sqlite"),
                              "BNVIZ_TORCH_THREADS": "0"})
    try:
        assert r.stats()["workers"] == 2 and hosted.stats()["workers"] == 1
        base = make_config("d2l-lenet-bn", dataset="subset", train_size=2048, batch_size=64,
                           epochs=2, device="cpu")
        ids = [r.submit(base.replace(seed=s), session="alice", group="grid", reuse=False)
               for s in range(3)]
        most, t0 = 0, time.time()
        while any(r.get(i).active for i in ids) and time.time() - t0 < 120:
            most = max(most, r.stats()["running"])
            time.sleep(0.01)
        assert most == 2  # two members side by side, never more than the workers
        assert [r.get(i).status for i in ids] == ["finished"] * 3
    finally:
        r.shutdown()
        hosted.shutdown()
