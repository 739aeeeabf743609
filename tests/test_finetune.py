"""Fine-tuning on a shifted part with BN frozen or updating (bnviz/finetune.py, bnviz/drift.py):
the split, the frozen treatment bit for bit, the probes against an independent computation,
the reading, the cost, the CLI's CSVs and the page."""
import csv
import math

import numpy as np
import pandas as pd
import pytest
import torch

from bnviz import cost, data, readings
from bnviz.config import Config, make_config
from bnviz.drift import drift_rows, final_drift
from bnviz.experiments import GRIDS, finetune_grid
from bnviz.finetune import Plan, rotate, split
from bnviz.library.catalog import PAGE, QUESTION
from bnviz.metrics import probes
from bnviz.model import norm_layers, running_stats, scale_shift
from bnviz.runs.limits import Limits
from bnviz.speed.lenet import build_fast
from bnviz.trainer import Trainer

TINY = dict(dataset="subset", train_size=384, batch_size=64, epochs=1, finetune_epochs=1,
            device="cpu")


def trained(**kw):
    """Train a tiny fine-tuning run: (config, final net, events, summary, conv1's weight when
    the fine-tuning began)."""
    cfg = make_config(**{**TINY, **kw})
    nets, events, at_start = [], [], []

    def build(c):
        nets.append(build_fast(c))
        return nets[-1]

    def listen(e):
        events.append(e)
        if e.kind == "snapshot" and e.epoch == cfg.epochs:
            at_start.append(nets[0].conv1.weight.detach().clone())
    summary = Trainer(cfg, [listen], build=build).run()
    assert summary["status"] == "finished", summary["reason"]
    return cfg, nets[0], events, summary, at_start[-1]


RUNS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread while these tiny runs train: on a shared CPU two threads spinning
    against other processes make them several times slower. Restored afterwards."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


def run_of(treatment: str):
    """One tiny run per treatment for the whole module (each costs seconds on a busy CPU)."""
    if treatment not in RUNS:
        RUNS[treatment] = trained(finetune_bn=treatment)
    return RUNS[treatment]


def snapshots(events):
    return [e for e in events if e.kind == "snapshot"]


def test_default_config_id_is_unchanged():
    assert Config().config_id() == "bf21a9e8fbc5"
    assert not any(m.id.startswith("acc_part") for m in probes(Config()))
    assert {m.id for m in probes(Config(finetune_epochs=1))} >= {"acc_part_a", "acc_part_b"}


def test_rotated_split_is_two_disjoint_halves_the_second_turned():
    ds = data.load("subset", 0, "cpu", 0)
    a, b = split(ds, "rotated")
    assert len(a.train_y) == len(b.train_y) == len(ds.train_y) // 2
    assert torch.equal(a.train_x, ds.train_x[0::2]) and torch.equal(a.train_y, ds.train_y[0::2])
    # turned exactly: a permutation of the pixels, back after four quarter turns
    assert torch.equal(b.train_x, torch.rot90(ds.train_x[1::2], 1, (2, 3)))
    assert torch.equal(rotate(rotate(rotate(rotate(ds.test_x)))), ds.test_x)
    assert torch.equal(a.test_x, ds.test_x) and torch.equal(b.test_x, rotate(ds.test_x))
    assert not torch.equal(b.test_x, a.test_x)


def test_classes_split_takes_0_to_4_then_5_to_9_as_many_of_each():
    ds = data.load("subset", 0, "cpu", 0)
    a, b = split(ds, "classes")
    assert len(a.train_y) == len(b.train_y) == 2500  # 500 per class in the subset
    assert int(a.train_y.max()) == 4 and int(b.train_y.min()) == 5
    assert set(a.test_y.tolist()) == {0, 1, 2, 3, 4} and set(b.test_y.tolist()) == {5, 6, 7, 8, 9}
    assert len(a.test_y) + len(b.test_y) == len(ds.test_y)


def test_a_split_too_small_is_refused_in_words():
    ds = data.load("subset", 0, "cpu", 0)
    tiny = data.Dataset(ds.train_x[:3], ds.train_y[:3], ds.test_x, ds.test_y, "subset", "")
    with pytest.raises(data.DataError, match="part A would have 1 image"):
        Plan(make_config(**TINY), tiny)


def test_frozen_stats_fine_tuning_leaves_the_running_statistics_bit_for_bit():
    cfg, net, events, _, _ = run_of("frozen_stats")
    snaps = snapshots(events)
    start = [s for s in snaps if s.epoch <= cfg.epochs][-1].layers
    for site, m in norm_layers(net):
        mean, var = running_stats(m)
        assert np.array_equal(mean.numpy(), start[site]["running_mean"]), site
        assert np.array_equal(var.numpy(), start[site]["running_var"]), site
        # ... while gamma and beta kept learning, and so did every weight
        assert not np.array_equal(scale_shift(m)[0].detach().numpy(), start[site]["gamma"])
    started = next(e for e in events if e.kind == "started")
    pretraining_steps = started.total_steps // (cfg.epochs + cfg.finetune_epochs) * cfg.epochs
    assert all(int(m.num_batches_tracked) == pretraining_steps for _, m in norm_layers(net))
    assert final_drift_of(cfg, events) == 0.0


def test_frozen_all_also_keeps_gamma_and_beta_while_the_weights_move():
    cfg, net, events, _, conv1 = run_of("frozen_all")
    start = [s for s in snapshots(events) if s.epoch <= cfg.epochs][-1].layers
    for site, m in norm_layers(net):
        gamma, beta = scale_shift(m)
        assert np.array_equal(gamma.detach().numpy(), start[site]["gamma"])
        assert np.array_equal(beta.detach().numpy(), start[site]["beta"])
        assert np.array_equal(running_stats(m)[0].numpy(), start[site]["running_mean"])
    assert not torch.equal(net.conv1.weight, conv1)  # fine-tuned nonetheless


def final_drift_of(cfg, events):
    from bnviz.runs.record import RunRecord
    rec = RunRecord("x", cfg)
    for e in events:
        rec(e)
    return final_drift(rec.view())


def test_updating_bn_moves_the_running_means_and_the_drift_says_how_far():
    cfg, net, events, summary, _ = run_of("update")
    start = [s for s in snapshots(events) if s.epoch <= cfg.epochs][-1].layers
    moved = []
    for site, m in norm_layers(net):
        mean, _ = running_stats(m)
        ref = start[site]
        moved.append(np.mean(np.abs(mean.numpy() - ref["running_mean"])
                             / np.sqrt(ref["running_var"] + cfg.eps)))
    assert min(moved) > 0
    assert final_drift_of(cfg, events) == pytest.approx(np.mean(moved), rel=1e-6)
    assert "bn_drift" not in summary  # derived from the record's snapshots, not measured


def test_part_accuracies_agree_with_an_independent_count():
    cfg, net, _, summary, _ = run_of("frozen_stats")
    ds = data.load("subset", cfg.train_size, "cpu", cfg.seed)
    net.eval()
    with torch.no_grad():
        upright = int((net(ds.test_x).argmax(1) == ds.test_y).sum()) / len(ds.test_y)
        turned = int((net(torch.rot90(ds.test_x, 1, (2, 3))).argmax(1) == ds.test_y).sum())
    assert summary["acc_part_a"] == pytest.approx(upright, abs=1e-12)
    assert summary["acc_part_b"] == pytest.approx(turned / len(ds.test_y), abs=1e-12)


def test_the_grid_pretrains_the_same_run_and_fine_tunes_three_ways():
    pts = finetune_grid(Config(epochs=2))
    assert [p.arm for p in pts] == ["update", "frozen_stats", "frozen_all"]
    assert all(p.config.finetune_epochs == 1 for p in pts)  # 0 in the base: one epoch
    assert GRIDS["finetune"] is finetune_grid
    q = QUESTION["finetune"]
    assert q.page in PAGE and q.base().epochs + q.base().finetune_epochs <= 3


def test_cost_and_caps_count_the_fine_tuning_epochs_on_half_the_data():
    plain = cost.estimate(Config(epochs=3), 60000, 10000)
    ft = cost.estimate(Config(epochs=2, finetune_epochs=1), 60000, 10000)
    assert ft.train_examples == 3 * 30000 and ft.train_steps == 3 * math.ceil(30000 / 256)
    assert plain.train_examples == 3 * 60000
    assert ft.probe_examples > 0 and plain.probe_examples == 0
    errs = Limits(max_epochs=10).check(Config(epochs=8, finetune_epochs=3), 60000)
    assert errs and "8 + 3 fine-tuning" in errs[0]
    assert not Limits(max_epochs=10).check(Config(epochs=8, finetune_epochs=2), 60000)


def test_trainer_steps_match_the_cost_estimate():
    cfg, _, events, summary, _ = run_of("update")
    started = next(e for e in events if e.kind == "started")
    n_train, n_test = data.sizes("subset")
    c = cost.estimate(cfg, n_train, n_test)
    assert started.total_steps == c.train_steps == summary["iterations"]


def table(rows):
    """A summary frame of the reading's shape from (arm, metric → list of seed values)."""
    out = []
    from bnviz.stats import mean_ci
    for arm, metrics in rows.items():
        row = {"run": arm, "arm": arm, "n": 3, "runs": 3}
        for m, xs in metrics.items():
            e = mean_ci(xs)
            row[m], row[f"{m}_ci"] = e.mean, e.half
        out.append(row)
    return pd.DataFrame(out)


def test_reading_claims_differences_only_where_intervals_separate():
    s = table({"update": {"acc_part_a": [0.2, 0.21, 0.19], "acc_part_b": [0.8, 0.81, 0.79],
                          "bn_drift": [0.5, 0.6, 0.55], "train_loss": [0.8, 0.9, 0.85]},
               "frozen_stats": {"acc_part_a": [0.5, 0.52, 0.48], "acc_part_b": [0.6, 0.9, 0.7],
                                "bn_drift": [0.0, 0.0, 0.0], "train_loss": [1.8, 1.9, 2.0]},
               "frozen_all": {"acc_part_a": [0.5, 0.5, 0.5], "acc_part_b": [0.1, 0.11, 0.1],
                              "bn_drift": [0.0, 0.0, 0.0], "train_loss": [2.2, 2.3, 2.2]}})
    r = readings.finetune(s)
    assert r.verdict == "moved"
    assert r.comparison("frozen_stats", "update", "acc_part_a").verdict == "a"
    assert r.comparison("frozen_stats", "update", "acc_part_b").verdict == "same"
    assert r.comparison("frozen_stats", "update", "train_loss").verdict == "a"
    assert r.comparison("frozen_all", "frozen_stats", "acc_part_b").verdict == "b"
    assert r.comparison("update", "frozen_stats", "bn_drift").verdict == "a"
    assert r.at_chance == ("frozen_all",)
    assert "n = 3 seeds" in readings.finetune_text(r) and "exactly 0" in readings.finetune_text(r)
    s.loc[s.arm == "frozen_stats", "bn_drift"] = 0.01
    assert readings.finetune(s).verdict == "frozen moved"


def test_cli_sweep_writes_the_csvs(tmp_path, capsys):
    from bnviz.cli import main
    rc = main(["sweep", "finetune", "--dataset", "subset", "--train-size", "256",
               "--batch-size", "64", "--epochs", "1", "--finetune-epochs", "1",
               "--snapshot-every", "1", "--seeds", "2", "--no-store", "--device", "cpu",
               "--out", str(tmp_path)])
    assert rc == 0
    said = capsys.readouterr().out
    assert "running standard deviations" in said and "exactly 0" in said  # the reading
    res = pd.read_csv(tmp_path / "results.csv")
    assert sorted(set(res.arm)) == ["frozen_all", "frozen_stats", "update"]
    assert (res[res.arm != "update"].bn_drift == 0).all() and (res[res.arm == "update"].bn_drift > 0).all()
    with open(tmp_path / "finetune_drift.csv") as f:
        rows = list(csv.DictReader(f))
    frozen = [float(r["drift"]) for r in rows if r["arm"] != "update" and float(r["epoch"]) >= 1]
    assert frozen and max(frozen) == 0.0
    acc = pd.read_csv(tmp_path / "finetune_accuracy.csv")
    assert len(acc) == 3 * 2 * 2  # arms × seeds × evaluations (one per epoch)
    assert acc.acc_part_a.between(0, 1).all() and acc.acc_part_b.between(0, 1).all()


@pytest.mark.parametrize("kw", [dict(devices=2), dict(norm="bn_d2l"), dict(norm="bn_scratch")],
                         ids=["ghost-bn", "book-bn", "scratch-bn"])
def test_frozen_is_exact_for_other_bn_modules_too(kw):
    cfg, net, events, _, _ = trained(finetune_bn="frozen_stats", **kw)
    start = [s for s in snapshots(events) if s.epoch <= cfg.epochs][-1].layers
    for site, m in norm_layers(net):
        mean, var = running_stats(m)
        assert np.array_equal(mean.detach().numpy().ravel(), start[site]["running_mean"]), site
        assert np.array_equal(var.detach().numpy().ravel(), start[site]["running_var"]), site
