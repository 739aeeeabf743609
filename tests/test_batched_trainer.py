"""The batched trainer (bnviz/speed/batched_trainer.py): M runs trained as one model, each heard
as an ordinary run, with the numbers it has when trained alone by bnviz.trainer.Trainer."""
import threading

import pytest
import torch

from bnviz import data
from bnviz.config import make_config
from bnviz.runs.record import RunRecord
from bnviz.speed.batched_trainer import BatchedTrainer
from bnviz.trainer import Trainer

BASE = dict(dataset="subset", train_size=256, batch_size=64, epochs=2, eval_every=3,
            precise_samples=128)


@pytest.fixture
def float64():
    """Compared in float64, where the grouped convolutions and batched products round too
    little to matter. (In float32 any two kernels that sum in different orders drift apart
    chaotically at lr 1: test_float32_runs_agree_to_the_measured_tolerance.)"""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def dataset64():
    """The run's data (BASE's 256 training images of the subset), in float64, and 300 test
    images."""
    ds = data.load("subset", BASE["train_size"], torch.device("cpu"), 0)
    return type(ds)(ds.train_x.double(), ds.train_y, ds.test_x[:300].double(), ds.test_y[:300],
                    ds.source, ds.origin)


def alone(cfg, ds=None) -> RunRecord:
    rec = RunRecord("a", cfg)
    Trainer(cfg, [rec], dataset=ds).run()
    return rec


def together(configs, ds=None, **kw) -> list[RunRecord]:
    recs = [RunRecord(f"b{i}", c) for i, c in enumerate(configs)]
    BatchedTrainer(configs, [[r] for r in recs], dataset=ds, **kw).run()
    return recs


def arms(n=3, **kw):
    base = make_config(**{**BASE, **kw})
    return [base.replace(seed=s, lr=base.lr * f) for s, f in ((0, 1.0), (1, 0.5), (2, 1.0))][:n]


@pytest.mark.parametrize("kw", [dict(), dict(norm="none", lr=0.5), dict(activation="relu"),
                                dict(norm_position="after_act"), dict(bias=False),
                                dict(norm_conv2=False, norm_fc2=False)])
def test_each_run_of_a_batch_is_the_run_trained_alone(kw, float64):
    ds = dataset64()
    configs = arms(2, **kw)
    for cfg, got in zip(configs, together(configs, ds)):
        want = alone(cfg, ds)
        g, w = got.view(), want.view()
        assert g.status == w.status == "finished"
        assert len(g.steps) == len(w.steps) == 8
        assert list(g.steps[:, 2]) == pytest.approx(list(w.steps[:, 2]), rel=1e-9, abs=1e-12)
        assert [e["iteration"] for e in g.evals] == [e["iteration"] for e in w.evals]
        assert len(w.evals) >= 3
        for a, b in zip(g.evals, w.evals):
            assert a["test_acc"] == b["test_acc"]
            assert a["train_acc"] == pytest.approx(b["train_acc"])
            assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-9)
        for key in ("test_acc_running", "test_acc_precise", "train_loss", "test_acc"):
            assert g.summary[key] == pytest.approx(w.summary[key], rel=1e-9), key
        # the gamma/beta history: the same snapshots at the same iterations
        assert [s[0] for s in g.snapshots] == [s[0] for s in w.snapshots]
        for a, b in zip(g.snapshots[-1][2].values(), w.snapshots[-1][2].values()):
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-8, abs=1e-12), k


def test_float32_runs_agree_to_the_measured_tolerance():
    """The default dtype: the same runs agree step by step to 1e-4 relative over 12 steps
    (measured: a few 1e-6), and end with test accuracies within 1 example in 1,000."""
    configs = arms()
    for cfg, got in zip(configs, together(configs)):
        g, w = got.view(), alone(cfg).view()
        assert list(g.steps[:, 2]) == pytest.approx(list(w.steps[:, 2]), rel=1e-4)
        assert g.summary["test_acc"] == pytest.approx(w.summary["test_acc"], abs=2e-3)


def test_a_diverging_run_ends_alone_and_the_others_are_unchanged(float64):
    ds = dataset64()
    base = make_config(**{**BASE, "activation": "relu", "norm": "none", "lr": 0.3})
    fine = [base.replace(seed=0), base.replace(seed=2)]
    wild = base.replace(seed=1, lr=80.0)
    recs = together([fine[0], wild, fine[1]], ds)
    views = [r.view() for r in recs]
    assert views[1].status == "diverged"
    assert "learning rate 80 is too high" in views[1].reason
    assert [v.status for v in (views[0], views[2])] == ["finished", "finished"]
    for v, cfg in zip((views[0], views[2]), fine):
        want = alone(cfg, ds).view()
        assert list(v.steps[:, 2]) == pytest.approx(list(want.steps[:, 2]), rel=1e-9)
        assert v.summary["test_acc"] == want.summary["test_acc"]


def test_stop_stops_every_run_of_the_batch():
    stop = threading.Event()
    configs = arms()
    recs = [RunRecord(f"b{i}", c) for i, c in enumerate(configs)]

    def stopper(e):
        if e.kind == "step" and e.iteration >= 2:
            stop.set()
    listeners = [[recs[0], stopper], [recs[1]], [recs[2]]]
    summaries = BatchedTrainer(configs, listeners, stop=stop).run()
    assert [s["status"] for s in summaries] == ["stopped"] * 3
    assert all(r.view().status == "stopped" for r in recs)
    assert all(len(r.view().steps) < 8 for r in recs)


def test_one_run_stopped_alone_leaves_the_others_running():
    configs = arms()
    stops = [threading.Event() for _ in configs]
    stops[1].set()
    summaries = BatchedTrainer(configs, stops=stops).run()
    assert [s["status"] for s in summaries] == ["finished", "stopped", "finished"]


def test_a_listener_that_raises_fails_its_own_run_only():
    configs = arms()

    def broken(e):
        if e.kind == "eval":
            raise RuntimeError("listener broke")
    summaries = BatchedTrainer(configs, [[], [broken], []]).run()
    assert [s["status"] for s in summaries] == ["finished", "failed", "finished"]
    assert "listener broke" in summaries[1]["reason"]


def test_configs_that_differ_in_structure_are_refused():
    base = make_config(**BASE)
    with pytest.raises(ValueError, match="cannot train as one batch"):
        BatchedTrainer([base, base.replace(norm="none")])
    with pytest.raises(ValueError, match="cannot train as one batch"):
        BatchedTrainer([base, base.replace(batch_size=32)])


def test_a_grid_is_split_into_batches_by_structure_and_by_where_batching_pays():
    from bnviz.runs.training import batches
    from bnviz.speed.batched import CPU_MAX_BATCH
    small = make_config(batch_size=CPU_MAX_BATCH, device="cpu")
    configs = [small.replace(seed=s) for s in range(3)]  # one config's seeds: one batch
    configs += [small.replace(norm="none", seed=s) for s in range(2)]  # another structure
    configs += [small.replace(norm="bn_scratch")]  # a kind the batched model lacks: alone
    configs += [small.replace(batch_size=256, seed=s) for s in range(2)]  # batching costs here
    configs += [small.replace(seed=s, lr=0.5) for s in range(3, 5)]  # lr may differ in a batch
    assert batches(configs) == [[0, 1, 2, 8, 9], [3, 4], [5], [6], [7]]
    assert batches(configs, max_size=2) == [[0, 1], [2, 8], [3, 4], [5], [6], [7], [9]]


def test_the_cli_grid_trains_a_small_batch_arm_as_one_batch(tmp_path, capsys, monkeypatch):
    from bnviz.cli import main
    from bnviz.runs.store import RunStore
    db = tmp_path / "runs.sqlite"
    monkeypatch.setenv("BNVIZ_DB", str(db))
    assert main(["sweep", "batch_size", "--values", "4", "--norms", "bn,group", "--seeds", "3",
                 "--dataset", "subset", "--train-size", "48", "--batch-size", "4", "--epochs", "1", "--device",
                 "cpu", "--again", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    # BN's three seeds as one batch; GroupNorm (not in the batched model) one run at a time
    assert err.count("trained with 3 runs as one batched model") == 3, err
    assert err.count("(trained, run") == 3, err
    store = RunStore(db)
    runs = [store.load(r["run_id"]) for r in store.list_runs()]
    assert len(runs) == 6 and {v.config.seed for v in runs} == {0, 1, 2}
    assert all(v.status == "finished" and len(v.steps) == 12 for v in runs)
    batched = [v for v in runs if v.config.norm == "bn"]
    assert all(v.summary["batched"] == "trained with 3 runs as one batched model"
               for v in batched)


def test_batches_are_spread_over_the_workers():
    from bnviz.runs.training import spread
    assert spread([[0, 1, 2, 3, 4]], 2) == [[0, 1, 2], [3, 4]]
    assert spread([[0, 1, 2, 3, 4], [5]], 2) == [[0, 1, 2, 3, 4], [5]]
    assert spread([[0], [1]], 4) == [[0], [1]]
    assert sorted(sum(spread([[0, 1, 2, 3]], 3), [])) == [0, 1, 2, 3]
