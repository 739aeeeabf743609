"""bnviz.cost: a run's cost counted before it is queued, the hosted cap on it, the time
budget while it runs, and no download on a hosted server."""
import time
import urllib.request

import pytest

from bnviz import cost, data
from bnviz.config import Config
from bnviz.runs.jobs import JobManager, JobRefused
from bnviz.runs.limits import Limits
from bnviz.runs.training import grid_seconds
from bnviz.runs.store import RunStore
from bnviz.trainer import Trainer

# The config from the issue: batch 2, evaluated all three ways and snapshotted after every
# step, 100,000 steps; accepted by the old epochs × images cap.
EXPENSIVE = Config(batch_size=2, eval_every=1, compare_eval=True, snapshot_every=1,
                   train_size=20000, epochs=10)


@pytest.mark.parametrize("kw", [
    dict(batch_size=32, epochs=2, eval_every=7, snapshot_every=5, compare_eval=True),
    dict(batch_size=50, epochs=3, eval_every=4, snapshot_every=0),  # epoch end is a multiple
    dict(batch_size=64, epochs=2, eval_every=0, snapshot_every=3, eval_mode="precise"),
    dict(batch_size=33, epochs=2, norm="layer", eval_every=100),
])
def test_counts_match_a_real_run(kw):
    cfg = Config(dataset="subset", train_size=300, device="cpu", **kw)
    counts = {"step": 0, "eval": 0, "snapshot": 0}
    values = [0]

    def listener(e):
        if e.kind in counts:
            counts[e.kind] += 1
        if e.kind == "snapshot":
            values[0] += sum(a.size for d in e.layers.values() for a in d.values())
        if e.kind == "ended":
            assert e.status == "finished", e.reason

    Trainer(cfg, [listener]).run()
    c = cost.estimate(cfg, *data.sizes("subset"))
    assert (c.train_steps, c.eval_points, c.snapshots) == \
        (counts["step"], counts["eval"], counts["snapshot"])
    assert c.snapshot_values == values[0]
    assert c.train_examples == 300 * cfg.epochs


def test_eval_examples_count_modes_precise_and_the_final_precise_pass():
    c = cost.estimate(Config(batch_size=256, epochs=1), 60000, 10000)
    # one evaluation (running) + the final PreciseBN (4096 training images, then the test
    # set) + the fixed probe batch twice
    assert c.eval_points == 1 and c.eval_examples == 10000 + 4096 + 10000 + 2 * 256
    e = cost.estimate(EXPENSIVE, 60000, 10000)
    assert e.train_steps == 100_000 and e.eval_points == 100_000
    assert e.eval_examples == 100_000 * (3 * 10000 + 4096 + 2 * 2)


def test_expensive_config_is_refused_on_a_hosted_server_saying_why():
    hosted = Limits.hosted()
    errs = hosted.check(EXPENSIVE, 60000, 10000)
    assert len(errs) == 1
    msg = errs[0]
    assert "would take about" in msg and " h " in msg and "allows 2 min" in msg
    for tip in ("set eval_every to 0", "turn off compare_eval", "raise batch_size",
                "snapshot_every"):
        assert tip in msg
    # the dominant term comes first: the evaluations
    assert msg.index("eval_every to 0") < msg.index("raise batch_size")
    # the old cap alone let it through
    assert not Limits(max_epochs=10, max_work=200_000).check(EXPENSIVE, 60000, 10000)


def test_d2l_preset_on_the_full_data_is_accepted_when_hosted():
    assert Limits.hosted().check(Config(), 60000, 10000) == []
    s = cost.estimate(Config(), 60000, 10000).seconds()
    assert 20 < s < Limits.hosted().max_seconds
    assert cost.describe_seconds(s).startswith("about ") and " s" in cost.describe_seconds(s)


def test_expensive_config_is_refused_by_a_hosted_job_manager():
    m = JobManager(workers=1, limits=Limits.hosted())
    try:
        with pytest.raises(JobRefused, match="this server allows"):
            m.submit(EXPENSIVE.replace(dataset="subset", train_size=0), session="a")
    finally:
        m.shutdown()


def test_a_run_over_its_time_budget_is_stopped_and_saved_with_the_reason(tmp_path):
    limits = Limits(max_seconds=1e6, budget_factor=0.0, budget_min_s=0.3)
    m = JobManager(workers=1, store=RunStore(tmp_path / "db"), limits=limits)
    try:
        cfg = Config(dataset="subset", batch_size=8, lr=0.1, epochs=5, device="cpu")
        run_id = m.submit(cfg, session="a")
        t0 = time.time()
        while (v := m.get(run_id)) is None or v.status in ("queued", "running"):
            assert time.time() - t0 < 60, "the run was not stopped"
            time.sleep(0.05)
        assert v.status == "stopped" and v.reason.startswith("over its time budget")
        assert 0 < len(v.steps) < 5 * 625  # it trained, and stopped early
        while (s := m.store.load(run_id)) is None or s.status != "stopped":
            assert time.time() - t0 < 60
            time.sleep(0.05)
        assert s.reason.startswith("over its time budget on this server")
    finally:
        m.shutdown()


def test_a_batch_costs_one_runs_training_times_its_measured_factor_plus_each_runs_evaluation():
    """bnviz.cost.batch_seconds: M runs trained as one model cost one run's training ×
    (0.8 + 0.2 M) (benchmarks/batched_step.py) and every run's own evaluation; a grid is
    counted in the batches its runner trains, so a batch-4 question costs less than its runs
    alone and a batch-256 one (trained apart) exactly their sum."""
    base = Config(dataset="subset", batch_size=4, lr=0.01, epochs=1, device="cpu")
    runs = [base.replace(seed=s) for s in range(5)]
    one = cost.estimate(base, 4096, 1000).parts()
    train, rest = one["training"] + one["steps"], one["evaluation"] + one["snapshots"]
    assert cost.batch_seconds(runs[:1], 4096, 1000) == pytest.approx(train + rest)
    assert cost.batch_seconds(runs, 4096, 1000) == pytest.approx(
        train * (cost.BATCH_FIXED + 5 * cost.BATCH_PER_RUN) + 5 * rest + 5 * one["probes"])
    assert cost.BATCH_FIXED + cost.BATCH_PER_RUN == 1.0
    alone = sum(cost.estimate(c, 4096, 1000).seconds() for c in runs)
    assert grid_seconds(runs, 4096, 1000) == pytest.approx(
        cost.batch_seconds(runs, 4096, 1000)) and grid_seconds(runs, 4096, 1000) < alone
    big = [c.replace(batch_size=256) for c in runs]  # not batched on a CPU: each alone
    assert grid_seconds(big, 4096, 1000) == pytest.approx(
        sum(cost.estimate(c, 4096, 1000).seconds() for c in big))
    # a run of a batch may train as long as its batch is estimated to
    hosted = Limits.hosted()
    budget = hosted.budget(base, 60000, 10000, batch=runs)
    assert budget > hosted.budget_min_s and budget == pytest.approx(
        hosted.budget_factor * cost.batch_seconds(runs, 60000, 10000))
    assert hosted.budget(base, 60000, 10000, batch=runs[:1]) == hosted.budget(base, 60000, 10000)


def test_no_budget_without_max_seconds():
    assert Limits().budget(Config(), 60000, 10000) == 0
    assert Limits.hosted().budget(Config(), 60000, 10000) >= 60


def test_hosted_server_never_downloads_the_data(tmp_path, monkeypatch):
    def no(*a, **k):
        raise AssertionError("a hosted server tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no)
    monkeypatch.setenv("BNVIZ_HOSTED", "1")
    monkeypatch.delenv("BNVIZ_OFFLINE", raising=False)
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("BNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    data.clear_caches()
    try:
        with pytest.raises(data.DataError, match="BNVIZ_HOSTED=1") as e:
            data.load("full")
        assert "never downloads" in str(e.value)
        assert data.load("auto").source == "subset"
    finally:
        data.clear_caches()


def test_lab_page_shows_the_estimate_before_train():
    from tests.apptest import open_page
    at = open_page("lab")
    shown = [c.value for c in at.caption if c.value.startswith("Estimated run time")]
    want = cost.describe_seconds(cost.estimate(Config(), *data.sizes("auto")).seconds())
    assert shown == [f"Estimated run time: {want} here."]


def test_a_server_estimates_with_its_own_measured_rates(tmp_path, monkeypatch):
    """BNVIZ_COST_RATES names the JSON that benchmarks/cost_rates.py --out writes: a server
    ten times slower than the defaults estimates ten times longer and caps accordingly."""
    import json

    from bnviz.config import Config
    from bnviz.cost import Rates, estimate, server_rates
    from bnviz.runs.limits import Limits
    cfg = Config()
    base = estimate(cfg, 60000, 10000).seconds()
    slow = {k: 10 * v for k, v in Rates().__dict__.items()}
    path = tmp_path / "rates.json"
    path.write_text(json.dumps({**slow, "measured": "2026-11-27"}))
    monkeypatch.setenv("BNVIZ_COST_RATES", str(path))
    assert server_rates() == Rates(**slow)
    assert estimate(cfg, 60000, 10000).seconds() == pytest.approx(10 * base)
    assert Limits.hosted().check(cfg, 60000, 10000)  # the d2l preset no longer fits
    path.write_text("not json")
    import os
    os.utime(path, (1, 1))  # a new mtime: read again, unreadable, defaults
    assert server_rates() == Rates()


def test_a_new_questions_quoted_training_time_counts_its_batches():
    """The text a page shows before Run quotes the grid's estimated training here as the
    grid runner trains it: a batch-4 question's seeds as one batched model."""
    from bnviz.dashboard.grid import no_answer_text
    from bnviz.experiments import GridPoint
    base = Config(dataset="subset", batch_size=4, lr=0.01, epochs=1, device="cpu")
    points = [GridPoint("bn", base.replace(seed=s)) for s in range(5)]
    text = no_answer_text(points)
    secs = grid_seconds([p.config for p in points], *data.sizes("subset"))
    assert f"(5 runs, {cost.describe_seconds(secs)} of training here)" in text, text
    alone = sum(cost.estimate(p.config, *data.sizes("subset")).seconds() for p in points)
    assert cost.describe_seconds(alone) not in text and secs < alone
