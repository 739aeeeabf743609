"""The weight-decay and train-only pages run their grids and show what the runs measured;
their readings and CLI sweeps, on tables and runs whose answer is checked here."""
import math

import pandas as pd
import pytest

from bnviz import readings
from bnviz.cli import main
from bnviz.config import Config
from bnviz.experiments import train_only_grid, weight_decay_grid
from bnviz.library.catalog import PAGE, QUESTION
from bnviz.stats import mean_ci
from tests.apptest import button, open_page, wait_until_idle

TINY = {"dataset": "subset", "train_size": "256", "epochs": "1", "batch_size": "64",
        "seeds": "2"}


def test_grids_have_their_arms_and_the_catalog_its_questions():
    wd = {p.arm: p.config for p in weight_decay_grid(Config(weight_decay=1e-3))}
    assert list(wd) == ["bn_wd0", "bn_wd", "none_wd0", "none_wd"]
    assert wd["bn_wd"].weight_decay == wd["none_wd"].weight_decay == 1e-3
    assert wd["bn_wd0"].weight_decay == 0 and wd["none_wd0"].norm == "none"
    assert all(c.track_weights for c in wd.values())
    to = {p.arm: p.config for p in train_only_grid(Config(norm="none", freeze_affine=True))}
    assert [c.train_only for c in to.values()] == ["all", "bn", "random"]
    assert all(c.norm == "bn" and not c.freeze_affine for c in to.values())
    for key, page in (("weight_decay", "weight-decay"), ("train_only", "train-only")):
        q = QUESTION[key]
        assert q.page == page and PAGE[page].file and q.base().epochs <= 5
        assert len(q.points()) == 5 * len(q.make(q.base()))


def summary_of(rows):
    """A summarize()-shaped frame from {arm: {metric: [values per seed]}}."""
    out = []
    for arm, metrics in rows.items():
        row = {"run": arm, "arm": arm}
        for m, vals in metrics.items():
            e = mean_ci(pd.Series(vals))
            row[m], row[f"{m}_ci"], row["n"] = e.mean, e.half, e.n
        out.append(row)
    return pd.DataFrame(out)


def test_weight_decay_reading_claims_only_separated_differences():
    norms = {f"final_wnorm_{s}": v for s, v in
             (("conv1", [3.0, 3.1, 3.2]), ("conv2", [5.0, 5.1, 5.2]), ("fc1", [14, 14.2, 14.1]),
              ("fc2", [11.0, 11.1, 11.2]))}
    small = {k: [x / 2 for x in v] for k, v in norms.items()}
    small["final_wnorm_fc2"] = norms["final_wnorm_fc2"]  # fc2: no shrink
    acc = [0.85, 0.86, 0.84]
    s = summary_of({"bn_wd0": {"test_acc_precise": acc, **norms},
                    "bn_wd": {"test_acc_precise": [0.84, 0.86, 0.85], **small},
                    "none_wd0": {"test_acc_precise": [0.60, 0.61, 0.62], **norms},
                    "none_wd": {"test_acc_precise": [0.50, 0.51, 0.52], **small}})
    r = readings.weight_decay(s)
    assert r.facts["layers_shrunk"] == ("conv1", "conv2", "fc1") and r.facts["n"] == 3
    assert r.comparisons[0].verdict == "same" and r.comparisons[1].verdict == "b"
    text = readings.weight_decay_text(r)
    assert "conv1, conv2, fc1" in text and "not distinguishable" in text
    assert "lower than 0.610 without" in text


def test_train_only_reading():
    s = summary_of({"all": {"test_acc_precise": [0.85, 0.86, 0.84], "final_gamma_off": [0, 0, 0]},
                    "bn_only": {"test_acc_precise": [0.69, 0.70, 0.68],
                                "final_gamma_off": [0.10, 0.12, 0.11]},
                    "random": {"test_acc_precise": [0.69, 0.72, 0.66],
                               "final_gamma_off": [0, 0, 0]}})
    r = readings.train_only(s)
    assert [c.verdict for c in r.comparisons] == ["same", "b", "b", "a"]
    text = readings.train_only_text(r)
    assert "not distinguishable from as many random weights" in text
    assert "lower than training everything" in text and "11.0%" in text


def test_sweeps_write_csvs_with_the_final_norms_and_every_evaluation(tmp_path, capsys):
    out = tmp_path / "wd"
    assert main(["sweep", "weight_decay", "--dataset", "subset", "--train-size", "256",
                 "--batch-size", "64", "--epochs", "1", "--eval-every", "2", "--seeds", "1",
                 "--no-store", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "Test accuracy (PreciseBN) with weight decay" in said  # the page's reading, printed
    res = pd.read_csv(out / "results.csv")
    assert list(res.arm) == ["bn_wd0", "bn_wd", "none_wd0", "none_wd"]
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        a, b = res[f"final_wnorm_{layer}"].iloc[:2]
        assert b < a, layer  # the decayed run ends with the smaller weights
    ev = pd.read_csv(out / "evals.csv")
    assert set(ev.arm) == set(res.arm) and ev.groupby("arm").size().min() >= 2
    last = ev[ev.arm == "bn_wd"].iloc[-1]
    assert math.isclose(last["wnorm_fc1"], res["final_wnorm_fc1"].iloc[1], rel_tol=1e-9)
    summary = pd.read_csv(out / "summary.csv")
    assert "final_wnorm_conv1" in summary and "final_wnorm_conv1_ci" in summary


def test_weight_decay_page_runs_its_grid():
    at = open_page("weight_decay", {**TINY, "eval_every": "2"})
    assert not at.exception, at.exception
    button(at, "▶ Run the experiment").click().run()
    wait_until_idle(8, 120)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.markdown)
    assert "Test accuracy (PreciseBN) with weight decay" in said and "n = 2 paired" in said
    tables = [d.value for d in at.dataframe]
    inv = next(t for t in tables if "relative change" in t.columns)
    assert set(inv["layer"]) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    norms = next(t for t in tables if "‖w‖ at the end" in t.columns)
    assert len(norms) == 4 * 5
    assert len(at.get("plotly_chart")) >= 3


def test_train_only_page_runs_its_grid():
    at = open_page("train_only", TINY)
    assert not at.exception, at.exception
    button(at, "▶ Run the experiment").click().run()
    wait_until_idle(6, 120)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.markdown)
    assert "Training only gamma and beta reached" in said
    off = next(d.value for d in at.dataframe if "|γ| < 0.1" in d.value.columns)
    assert len(off) == 3
    assert len(at.get("plotly_chart")) >= 3  # the grid's chart and two histograms


def test_train_only_page_says_the_output_layer_is_frozen_and_what_lenet_cannot_show():
    """The page's two explanations, and the numbers they quote checked against the model."""
    from bnviz.model import build_lenet, norm_layers
    from bnviz.optim import make_optimizer, trained_count
    at = open_page("train_only", TINY)
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.markdown)
    # the output layer: frozen, and why
    for phrase in ("**The output layer is frozen too.**", "fc3 (84 → 10) keeps its random "
                   "weights", "a fixed random read-out of the 84 features",
                   "every bit of learning is in γ and β",
                   "all weights but BatchNorm's at their initialisation",
                   "Training fc3 as well would add 850 parameters, nearly twice BN's 452",
                   "a trained linear classifier on random features instead"):
        assert phrase in said, phrase
    # the paper's deep ResNets, and what LeNet cannot show
    for phrase in ("Sufficiently deep ResNets then still reach about 82% on CIFAR-10",
                   "γ learns to switch off about a third of the random features",
                   "**What LeNet cannot show.**", "accuracy with only BatchNorm trained grows "
                   "with depth", "LeNet has four BN layers and 452 γ and β",
                   "not a test of the paper's claim at depth"):
        assert phrase in said, phrase
    # what the text says of the model is so
    cfg = next(p.config for p in train_only_grid(Config()) if p.arm == "bn_only")
    net = build_lenet(cfg)
    assert (net.fc3.in_features, net.fc3.out_features) == (84, 10)
    assert sum(p.numel() for p in net.fc3.parameters()) == 850
    assert len(norm_layers(net)) == 4 and trained_count(cfg) == 452
    opt = make_optimizer(net, cfg)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in trained or p.requires_grad for p in net.fc3.parameters())
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 452


def test_effective_step_curve_is_the_lr_over_each_evaluations_squared_weight_norm():
    """Issue 20's η/‖w‖² (norm_curves(..., "step")): at epoch 0 from the initial weights, then
    at every evaluation lr / wnorm² of the run's own recorded norm, averaged over seeds."""
    from bnviz.dashboard.weights import norm_curves
    from bnviz.model import build_lenet
    from bnviz.runs.training import train_record
    base = Config(dataset="subset", train_size=256, batch_size=64, epochs=1, eval_every=2,
                  lr=0.5, weight_decay=5e-3, track_weights=True, device="cpu")
    views = [train_record(base.replace(seed=s)).view() for s in (0, 1)]
    assert all(v.status == "finished" and len(v.evals) == 2 for v in views)
    for layer in ("conv1", "fc1", "fc3"):
        curve = norm_curves({"g": views}, layer, "step")
        assert list(curve.epoch) == [0.0, 0.5, 1.0] and list(curve.n) == [2, 2, 2]
        # computed here from each run's weights at initialisation and its evaluations
        per_run = []
        for v in views:
            w0 = float(getattr(build_lenet(v.config), layer).weight.detach().norm())
            per_run.append([0.5 / w0 ** 2] + [0.5 / e["metrics"][f"wnorm_{layer}"] ** 2
                                               for e in v.evals])
        want = [sum(col) / 2 for col in zip(*per_run)]
        assert list(curve["mean"]) == pytest.approx(want, rel=1e-9), layer
        assert (curve.lo <= curve["mean"]).all() and (curve["mean"] <= curve.hi).all()
        assert curve["mean"].iloc[0] != pytest.approx(curve["mean"].iloc[-1], rel=1e-6)
        norms = norm_curves({"g": views}, layer, "norm")  # the same points' ‖w‖
        assert list(norms["mean"]) == pytest.approx(
            [sum(col) / 2 for col in zip(*[[(0.5 / x) ** 0.5 for x in r] for r in per_run])],
            rel=1e-9)
