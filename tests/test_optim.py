"""bnviz/optim.py: weight decay, train_only, and BN's scale invariance — the mathematics
checked against computations of the tests' own."""
import math

import pytest
import torch
import torch.nn.functional as F

from bnviz import data as data_mod
from bnviz.config import KNOB, Config, make_config
from bnviz.model import build_lenet, norm_layers, scale_shift
from bnviz.optim import (invariance, make_optimizer, norm_params, other_params,
                         scale_invariant, trained_count, train_only_problem, weight_norms)
from bnviz.weights import GAMMA_OFF, gamma_off
from bnviz.speed.lenet import build_fast
from bnviz.trainer import Trainer

SMALL = Config(dataset="subset", train_size=256, batch_size=64, epochs=1, precise_samples=256)


@pytest.fixture(scope="module")
def batch():
    ds = data_mod.load("subset", 512, torch.device("cpu"), 0)
    return ds.train_x[:128], ds.train_y[:128]


def test_new_knobs_keep_old_ids():
    for name, default in (("weight_decay", 0.0), ("train_only", "all"),
                          ("track_weights", False)):
        assert KNOB[name].default == default
    assert Config().config_id() == "bf21a9e8fbc5"
    assert make_config(weight_decay=5e-4).config_id() != Config().config_id()
    assert KNOB["train_only"].check("some") and KNOB["weight_decay"].check(-1.0)


def loss_of(net, batch):
    x, y = batch
    with torch.no_grad():
        return float(F.cross_entropy(net(x.double()), y))


@pytest.mark.parametrize("layer", ["conv1", "conv2", "fc1"])
def test_bn_makes_the_loss_blind_to_a_layers_scale(batch, layer):
    """Weight and bias times 10: with BN right after, the loss does not move (float64; BN's
    eps, here its smallest, leaves a residue of about eps / var); without BN it does."""
    for norm, invariant in (("bn", True), ("none", False)):
        net = build_lenet(SMALL.replace(norm=norm, eps=1e-8)).double().train()
        before = loss_of(net, batch)
        mod = getattr(net, layer)
        with torch.no_grad():
            mod.weight.mul_(10)
            mod.bias.mul_(10)
        after = loss_of(net, batch)
        if invariant:
            assert abs(after - before) / before < 1e-7, (norm, layer, before, after)
        else:
            assert abs(after - before) / before > 1e-5, (norm, layer, before, after)


def test_float32_invariance_to_float_precision(batch):
    """The same in float32 with the smallest eps: the loss agrees to float32 rounding."""
    cfg = SMALL.replace(eps=1e-8)
    net = build_lenet(cfg).train()
    x, y = batch
    with torch.no_grad():
        before = float(F.cross_entropy(net(x), y))
        net.conv2.weight.mul_(10)
        net.conv2.bias.mul_(10)
        after = float(F.cross_entropy(net(x), y))
    assert abs(after - before) <= 1e-5 * abs(before)


def test_gradient_is_orthogonal_to_a_bn_followed_weight(batch):
    rows = {r.layer: r for r in invariance(SMALL, batch=batch)}
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        assert rows[layer].invariant and abs(rows[layer].cos) < 1e-4, rows[layer]
        assert rows[layer].relative_change < 1e-5
    assert not rows["fc3"].invariant and rows["fc3"].relative_change > 1e-2
    # The test's own gradient, for one layer: <dL/dw, w> + <dL/db, b> = 0.
    net = build_lenet(SMALL).double().train()
    x, y = batch
    loss = F.cross_entropy(net(x.double()), y)
    gw, gb = torch.autograd.grad(loss, [net.fc1.weight, net.fc1.bias])
    w, b = net.fc1.weight.detach(), net.fc1.bias.detach()
    cos = float((gw * w).sum() + (gb * b).sum()) / math.hypot(gw.norm(), gb.norm()) \
        / math.hypot(w.norm(), b.norm())
    assert abs(cos) < 1e-4 and math.isclose(cos, rows["fc1"].cos, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(rows["fc1"].weight_norm, float(w.norm()), rel_tol=1e-9)
    none = {r.layer: r for r in invariance(SMALL.replace(norm="none"), batch=batch)}
    assert not none["conv1"].invariant and abs(none["conv1"].cos) > 1e-3
    assert not scale_invariant(SMALL.replace(norm_position="after_act"), "conv1")


def test_weight_decay_is_one_sgd_step_with_the_l2_term(batch):
    """One step of the run's optimiser against w - lr (g + wd w), computed here."""
    x, y = batch
    for wd in (0.0, 0.01):
        cfg = SMALL.replace(weight_decay=wd, lr=0.5)
        net = build_lenet(cfg).train()
        w0 = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt = make_optimizer(net, cfg)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
        opt.step()
        for n, p in net.named_parameters():
            want = w0[n] - 0.5 * (grads[n] + wd * w0[n])
            torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-6)
    # Decay shrinks the weight: the decayed step is the plain one minus lr·wd·w.
    assert float(net.conv1.weight.detach().norm()) < float((w0["conv1.weight"]
                                                   - 0.5 * grads["conv1.weight"]).norm())


def capture():
    nets = []

    def build(cfg):
        nets.append(build_fast(cfg))
        return nets[-1]
    return nets, build


def test_weight_decay_run_has_smaller_weights_and_records_them():
    runs = {}
    for wd in (0.0, 0.01):
        nets, build = capture()
        evals = []
        cfg = SMALL.replace(weight_decay=wd, track_weights=True, epochs=2)
        s = Trainer(cfg, [lambda e: evals.append(e) if type(e).__name__ == "Evaluation"
                          else None], build=build).run()
        assert s["status"] == "finished", s["reason"]
        # The recorded norm is the final net's, computed here.
        for layer, v in weight_norms(nets[0]).items():
            assert math.isclose(evals[-1].metrics[f"wnorm_{layer}"], v, rel_tol=1e-6)
        runs[wd] = evals[-1].metrics
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert runs[0.01][f"wnorm_{layer}"] < runs[0.0][f"wnorm_{layer}"], layer
    # Not asked for: not measured.
    evals = []
    Trainer(SMALL, [lambda e: evals.append(e) if type(e).__name__ == "Evaluation" else None],
            build=build_fast).run()
    assert not any(k.startswith("wnorm_") for k in evals[-1].metrics)


def initial(cfg):
    return {n: p.detach().clone() for n, p in build_lenet(cfg).named_parameters()}


def test_train_only_bn_leaves_every_other_weight_bit_for_bit():
    cfg = SMALL.replace(train_only="bn", epochs=2)
    nets, build = capture()
    s = Trainer(cfg, build=build).run()
    assert s["status"] == "finished", s["reason"]
    net, init = nets[0], initial(cfg)
    bn = {id(p) for p in norm_params(net)}
    assert len(bn) == 8  # gamma and beta at four sites
    for n, p in net.named_parameters():
        if id(p) in bn:
            assert not torch.equal(p.detach(), init[n]), n  # trained
        else:
            assert torch.equal(p.detach(), init[n]), n  # fc3, the output layer, too
    assert trained_count(cfg) == 2 * (6 + 16 + 120 + 84)


def test_train_only_random_trains_exactly_that_many_weights():
    cfg = SMALL.replace(train_only="random", weight_decay=0.01)  # decay moves every entry
    nets, build = capture()
    s = Trainer(cfg, build=build).run()
    assert s["status"] == "finished", s["reason"]
    net, init = nets[0], initial(cfg)
    bn = {id(p) for p in norm_params(net)}
    changed = 0
    for n, p in net.named_parameters():
        diff = p.detach() != init[n]
        if id(p) in bn:
            assert not diff.any(), n  # gamma and beta stay at 1 and 0
        changed += int(diff.sum())
    assert changed == trained_count(cfg.replace(train_only="bn")) == 452
    # Seeded: the same entries again; another seed, others.
    again, build2 = capture()
    Trainer(cfg, build=build2).run()
    for a, b in zip(other_params(net), other_params(again[0])):
        assert torch.equal(a, b)


def test_train_only_needs_gamma_and_beta():
    for cfg in (SMALL.replace(train_only="bn", norm="none"),
                SMALL.replace(train_only="random", freeze_affine=True)):
        why = train_only_problem(cfg)
        assert why and "gamma" in why
        s = Trainer(cfg).run()
        assert s["status"] == "failed" and "gamma and beta" in s["reason"]
        assert "Traceback" not in s["reason"]
    assert train_only_problem(SMALL) is None


def test_gamma_off_fraction():
    assert gamma_off([[1.0, 0.05, -0.05], [0.2, -0.5]]) == pytest.approx(2 / 5)
    assert gamma_off([[0.09]], threshold=0.05) == 0.0 and GAMMA_OFF == 0.1
    assert math.isnan(gamma_off([]))
    net = build_lenet(SMALL)
    gammas = [scale_shift(m)[0].detach().numpy() for _, m in norm_layers(net)]
    assert gamma_off(gammas) == 0.0  # gamma starts at 1
