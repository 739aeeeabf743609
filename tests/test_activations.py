"""The distribution at each activation (bnviz/activations.py): its numbers against a direct
computation, what BN and the lite kinds do to it, and that recording it changes no run."""
import numpy as np
import pytest
import torch

from bnviz import activations, data
from bnviz.dashboard import distributions
from bnviz.config import SITES, make_config
from bnviz.evaluation import kept_buffers
from bnviz.model import build_lenet
from bnviz.runs.record import RunRecord
from bnviz.runs.training import train
from bnviz.speed.lenet import build_fast

TINY = dict(dataset="subset", train_size=512, batch_size=64, epochs=1, eval_every=4)


def batch(n=64):
    ds = data.load("subset", 512, torch.device("cpu"), 0)
    return ds.train_x[:n], ds.train_y[:n]


def by_hand(net, x):
    """Each activation's input and output, walking the Sequential module by module."""
    out = {}
    for name, m in net.named_children():
        y = m(x)
        if name.endswith("_act"):
            out[name[:-4]] = (x, y)
        x = y
    return out


@pytest.mark.parametrize("kw", [dict(), dict(norm="none", activation="relu"),
                                dict(norm_position="after_act")])
def test_statistics_match_a_direct_computation(kw):
    cfg = make_config(**kw)
    net = build_lenet(cfg).train()
    xb = batch()
    with kept_buffers(net):
        got = activations.measure(net, xb, cfg.activation)
    with torch.no_grad():
        raw = by_hand(net, xb[0])
    assert set(got) == set(SITES)
    for site, (a_in, a_out) in raw.items():
        for side, t in (("act_in", a_in), ("act_out", a_out)):
            v = t.numpy()
            flat = v.ravel()
            ch = np.moveaxis(v, 1, 0).reshape(v.shape[1], -1)
            want = {f"p{q}": np.percentile(flat, q) for q in activations.PERCENTILES}
            want.update(chmean=ch.mean(1).mean(), chmean_sd=ch.mean(1).std(),
                        chvar=ch.var(1).mean())
            if side == "act_out":
                want["sat"] = (np.mean((flat < 0.01) | (flat > 0.99))
                               if cfg.activation == "sigmoid" else np.mean(flat == 0))
            for stat, w in want.items():
                assert got[site][side][stat] == pytest.approx(w, rel=1e-4, abs=1e-5), \
                    (site, side, stat)


def test_bn_and_the_lite_kinds_shape_the_activation_input_as_they_should():
    xb = batch()
    seen = {}
    for norm in ("bn", "bn_mean", "bn_var", "none"):
        net = build_lenet(make_config(norm=norm)).train()  # gamma 1, beta 0
        seen[norm] = activations.measure(net, xb, "sigmoid")
    for site in SITES:
        bn, mean_only = seen["bn"][site]["act_in"], seen["bn_mean"][site]["act_in"]
        var_only, raw = seen["bn_var"][site]["act_in"], seen["none"][site]["act_in"]
        assert abs(bn["chmean"]) < 1e-5 and bn["chmean_sd"] < 1e-5
        assert bn["chvar"] == pytest.approx(1, abs=1e-2)
        assert abs(mean_only["chmean"]) < 1e-5 and mean_only["chmean_sd"] < 1e-5
        assert var_only["chvar"] == pytest.approx(1, abs=1e-2)
        assert var_only["chmean_sd"] > 1e-3  # its means are scaled, not removed
    # mean-only leaves conv1's variance as the raw layer's (same weights, same input)
    assert seen["bn_mean"]["conv1"]["act_in"]["chvar"] == pytest.approx(
        seen["none"]["conv1"]["act_in"]["chvar"], rel=1e-4)


@pytest.mark.slow  # four tiny runs
@pytest.mark.parametrize("kw", [dict(), dict(dropout_fc=True)])
def test_recording_changes_no_step_and_lands_in_the_run(kw):
    cfg = make_config(**TINY, **kw)
    plain, probed = RunRecord("a", cfg), RunRecord("b", cfg.replace(record_activations=True))
    train(cfg, [plain])
    train(cfg.replace(record_activations=True), [probed])
    plain, probed = plain.view(), probed.view()
    assert plain.steps_frame().loss.tolist() == probed.steps_frame().loss.tolist()  # bitwise
    frame = distributions.frame(probed, "fc1", "act_in")
    assert len(frame) == len(probed.evals) > 1 and frame["p50"].notna().all()
    assert distributions.frame(plain, "fc1", "act_in").empty
    assert "act_fc1_act_in_p50" not in plain.summary


def test_the_fast_model_measures_the_same_numbers():
    cfg = make_config()
    xb = batch()
    slow, fast = build_lenet(cfg).train(), build_fast(cfg).train()
    a = activations.measure(slow, xb, "sigmoid")
    b = activations.measure(fast, xb, "sigmoid")
    for site in SITES:
        for side in activations.SIDES:
            for stat, v in a[site][side].items():
                assert b[site][side][stat] == pytest.approx(v, rel=1e-4, abs=1e-6)


def test_the_cost_model_counts_the_recording():
    from bnviz import cost
    cfg = make_config(eval_every=10)
    off = cost.estimate(cfg, 60000, 10000)
    on = cost.estimate(cfg.replace(record_activations=True), 60000, 10000)
    assert off.probe_examples == 0
    # one forward of the step's batch per evaluation, counted as 0.4 of a training example each
    assert on.probe_examples == round(on.eval_points * 0.4 * cfg.batch_size)
    assert on.seconds() > off.seconds()
