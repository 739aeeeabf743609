"""The Ray runner against a real local Ray cluster (ray.init(num_cpus=2)): the Runner
contract, a 4-run grid with the same numbers as JobManager, cancel within a step, and a worker
process killed mid-run."""
import os
import signal
import time

import pytest

from tests.conftest import RAY_PYTHON

if not RAY_PYTHON:
    pytest.skip("Ray ships no wheels for this Python; the ray extra leaves it out",
                allow_module_level=True)
# Elsewhere the test extra installs Ray: a missing Ray fails these tests (RayRunner says
# how to install it), it does not skip them.

from bnviz.config import Config  # noqa: E402
from bnviz.experiments import bias_grid, with_seeds  # noqa: E402
from bnviz.runs.jobs import JobManager, Limits  # noqa: E402
from bnviz.runs.ray_runner import RayRunner  # noqa: E402
from bnviz.runs.runner import Runner  # noqa: E402
from bnviz.runs.store import RunStore  # noqa: E402

TINY = Config().replace(dataset="subset", train_size=256, batch_size=64, epochs=1)
LONG = TINY.replace(train_size=2048, batch_size=16, epochs=200)


@pytest.fixture
def runner(ray_cluster, tmp_path):
    """A runner of its own, for a test that shuts it down. Such tests come before those
    using `shared` in this file: the shared runner's actors hold the cluster's 2 CPUs until
    the module ends."""
    r = RayRunner(store=RunStore(tmp_path / "runs.sqlite"), limits=Limits(per_session=8))
    yield r
    r.shutdown()


@pytest.fixture(scope="module")
def shared(ray_cluster, tmp_path_factory):
    """One runner for the tests that leave it serving: its Ray actors (each a worker process
    with torch imported and the data decoded) are started once, not once a test. Each test
    trains configs of its own, in a session of its own."""
    r = RayRunner(store=RunStore(tmp_path_factory.mktemp("ray") / "runs.sqlite"),
                  limits=Limits(per_session=8))
    yield r
    r.shutdown()


def wait(runner, run_id, timeout=120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = runner.get(run_id)
        if v is not None and not v.active:
            return v
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {runner.get(run_id).status}")


def test_ray_runner_keeps_the_runner_contract(runner):
    assert isinstance(runner, Runner) and runner.stats()["workers"] == 2
    run_id = runner.submit(TINY, session="a")
    v = wait(runner, run_id)
    assert v.status == "finished" and len(v.steps) == 4 and v.evals and v.snapshots
    assert runner.store.load(run_id).status == "finished"  # the web server saved it
    assert runner.find(TINY).run_id == run_id
    assert runner.submit(TINY, session="b") == run_id  # reused, not trained again
    assert not runner.cancel(run_id, session="b")
    runner.shutdown()
    with pytest.raises(Exception, match="shutting down"):
        runner.submit(TINY.replace(seed=9), session="a")


def test_a_grid_on_ray_gives_the_numbers_jobmanager_gives(shared, tmp_path):
    runner = shared
    points = with_seeds(bias_grid(TINY), 2)  # 4 runs, fanned out over the cluster
    ids = [runner.submit(p.config, session="g", group="grid") for p in points]
    on_ray = [wait(runner, i) for i in ids]
    local = JobManager(workers=2, store=RunStore(tmp_path / "local.sqlite"), torch_threads=1,
                       limits=Limits(per_session=8))
    try:
        here = [wait(local, local.submit(p.config, session="g", group="grid"))
                for p in points]
    finally:
        local.shutdown()
    for a, b in zip(on_ray, here):
        assert a.status == b.status == "finished"
        for k in ("train_loss", "train_acc", "test_acc_running", "test_acc_precise"):
            assert a.summary[k] == pytest.approx(b.summary[k], abs=1e-6), k
        assert len(a.steps) == len(b.steps) and len(a.evals) == len(b.evals)


def test_a_small_batch_grid_trains_as_one_batch_in_one_ray_task(shared, tmp_path):
    """At batch 4 a configuration's seeds train as batched models, one batch per Ray slot
    (2 here: 4 seeds in 2 batches of 2), each in one Ray task, with the numbers the same
    batches give on JobManager's threads."""
    small = TINY.replace(train_size=48, batch_size=4, device="cpu", lr=0.02)
    configs = [small.replace(seed=s) for s in range(4)]
    with shared.together():
        ids = [shared.submit(c, session="rb", group="small") for c in configs]
    on_ray = [wait(shared, i) for i in ids]
    local = JobManager(workers=len(shared._threads), store=RunStore(tmp_path / "local.sqlite"),
                       torch_threads=1, limits=Limits(per_session=8))
    try:
        with local.together():
            lids = [local.submit(c, session="rb", group="small") for c in configs]
        here = [wait(local, i) for i in lids]
    finally:
        local.shutdown()
    for a, b in zip(on_ray, here):
        assert a.status == b.status == "finished"
        assert a.summary["batched"] == b.summary["batched"] == \
            "trained with 2 runs as one batched model"
        assert list(a.steps[:, 2]) == pytest.approx(list(b.steps[:, 2]), abs=1e-6)


def test_cancel_reaches_the_ray_worker_within_a_step(shared):
    runner = shared
    run_id = runner.submit(LONG, session="c")
    t0 = time.time()
    while not len(runner.get(run_id).steps) and time.time() - t0 < 60:
        time.sleep(0.05)
    assert runner.get(run_id).status == "running"
    assert runner.cancel(run_id, session="c")
    t_stop = time.time()
    v = wait(runner, run_id, 30)
    assert v.status == "stopped"
    assert time.time() - t_stop < 5  # one step of batch 16, plus one pull
    assert runner.store.load(run_id).status == "stopped"


def test_a_killed_worker_fails_its_run_and_the_server_keeps_serving(shared):
    runner = shared
    run_id = runner.submit(LONG.replace(seed=3), session="k")
    t0 = time.time()
    while len(runner.get(run_id).steps) < 20 and time.time() - t0 < 60:
        time.sleep(0.05)
    steps_before = len(runner.get(run_id).steps)
    os.kill(runner.worker_pid(run_id), signal.SIGKILL)
    v = wait(runner, run_id, 60)
    assert v.status == "failed" and "Ray worker training it died" in v.reason
    stored = runner.store.load(run_id)
    assert stored.status == "failed" and len(stored.steps) >= steps_before  # nothing lost
    after = runner.submit(TINY.replace(seed=4), session="k")  # still serving
    assert wait(runner, after).status == "finished"


def test_a_server_picks_the_ray_runner_from_its_environment(ray_cluster, tmp_path):
    from bnviz.library.catalog import QUESTION
    from bnviz.runs.runner import runner_from_env
    r = runner_from_env({"BNVIZ_RUNNER": "ray", "BNVIZ_DB": str(tmp_path / "runs.sqlite"),
                         "BNVIZ_HOSTED": "1", "BNVIZ_RAY_CPUS_PER_RUN": "0.5"})
    try:
        assert isinstance(r, RayRunner) and r.limits.max_seconds == 120  # hosted caps kept
        # 2 CPUs at half a CPU a run: 4 in flight, past the hosted cap of 2 training threads
        # (that cap keeps a core for the web server; Ray trains elsewhere)
        assert r.stats()["workers"] == 4
        cfg = QUESTION["ablation"].points()[0].config
        served = r.get(r.submit(cfg, session="s"))  # the library answers: nothing trains
        assert served.info["source"] == "library" and r.stats()["ray_actors"] == 0
    finally:
        r.shutdown()
