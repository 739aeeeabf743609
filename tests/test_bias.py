"""Bias before BN (question 7): which biases a norm cancels, and an experiment that compares
like with like — the same initial weights with and without the bias, drawn from generators of
the run's own, whatever else uses torch's global RNG."""
import threading

import pytest
import torch
import torch.nn.functional as F

from bnviz import data

from bnviz.speed import fused
from bnviz.config import NORM_KINDS, SITES, make_config
from bnviz.speed.lenet import build_fast
from bnviz.model import build_lenet, cancels_bias, count_params

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
BN_KINDS = [k for k in ("bn", "bn_scratch", "bn_d2l") if k in NORM_KINDS]


@pytest.fixture(scope="module")
def ds():
    return data.load("subset")


def cfg_of(**kw):
    return make_config(dataset="subset", device="cpu", **kw)


def weights(net):
    return {s: getattr(net, s).weight for s in LAYERS}


def biases(net):
    return {s: getattr(net, s).bias for s in LAYERS}


def test_bias_off_keeps_the_same_initial_weights_and_remaining_biases():
    on, off = build_lenet(cfg_of(bias=True)), build_lenet(cfg_of(bias=False))
    for s in LAYERS:
        assert torch.equal(weights(on)[s], weights(off)[s]), s
    assert [s for s, b in biases(off).items() if b is not None] == ["fc3"]
    assert torch.equal(on.fc3.bias, off.fc3.bias)
    # Where nothing is dropped, both arms are the same model, biases included.
    a, b = (build_lenet(cfg_of(norm="layer", bias=v)) for v in (True, False))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


@pytest.mark.parametrize("kw, dropped", [
    (dict(), SITES),
    (dict(devices=2), SITES),  # ghost BN: each slice's mean still removes a constant
    *[(dict(norm=k), SITES) for k in BN_KINDS],
    (dict(norm_position="after_act"), ()),  # the activation sits between bias and norm
    (dict(norm="layer"), ()),
    (dict(norm="group"), ()),
    (dict(norm="group", groups=1), ()),
    (dict(norm="instance"), ("conv1", "conv2")),  # FC sites fall back to LayerNorm
    (dict(dropout_fc=True), ("conv1", "conv2")),  # dropout, not a norm, after fc1 and fc2
    (dict(norm_conv2=False), ("conv1", "fc1", "fc2")),
    (dict(norm="none"), ()),
])
def test_bias_off_drops_exactly_the_cancelled_biases(kw, dropped):
    cfg = cfg_of(**kw)
    assert tuple(s for s in SITES if cancels_bias(cfg, s)) == tuple(dropped)
    on, off = build_lenet(cfg.replace(bias=True)), build_lenet(cfg.replace(bias=False))
    widths = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}
    assert count_params(on) - count_params(off) == sum(widths[s] for s in dropped)
    assert {s for s in SITES if getattr(off, s).bias is None} == set(dropped)


def test_lenet_bn_without_bias_saves_226_parameters():
    assert count_params(build_lenet(cfg_of())) - count_params(build_lenet(cfg_of(bias=False))) \
        == 6 + 16 + 120 + 84 == 226


@pytest.mark.parametrize("kw", [dict(), dict(norm_position="after_act"), dict(norm="layer"),
                                dict(norm="group"), dict(norm="instance"), dict(devices=2),
                                dict(dropout_fc=True), dict(norm_conv2=False),
                                *[dict(norm=k) for k in BN_KINDS]])
def test_cancelled_biases_are_those_whose_gradient_is_zero(ds, kw):
    """The rule behind cancels_bias, checked against autograd: with the bias on, a bias the
    norm cancels gets a zero gradient (the loss does not depend on it), any other does not.
    float64, so that zero means ~1e-15 and not float32's rounding of a 37k-term sum."""
    cfg = cfg_of(**kw)
    net = build_lenet(cfg).double().train()
    F.cross_entropy(net(ds.train_x[:64].double()), ds.train_y[:64]).backward()
    for s in SITES:
        m = getattr(net, s)
        ratio = m.bias.grad.abs().max() / m.weight.grad.abs().max()
        assert (ratio < 1e-12) == cancels_bias(cfg, s), (s, ratio.item())


@pytest.mark.parametrize("fast_pool", [True, False])
def test_bn_gives_the_preceding_biases_no_gradient_in_float32(ds, fast_pool):
    """One step of LeNet-BN as trained (float32, train mode, and on the fast path the fused
    kernels): the conv1/conv2/fc1/fc2 bias gradients are rounding noise — measured up to
    ~7e-6 of the largest weight gradient (conv1: a sum over 256·24·24 values) — while fc3's,
    which no norm follows, is as large as its weight gradient."""
    net = (build_fast if fast_pool else build_lenet)(cfg_of()).train()
    F.cross_entropy(net(ds.train_x[:256]), ds.train_y[:256]).backward()
    for s in SITES:
        m = getattr(net, s)
        assert m.bias.grad.abs().max() < 1e-4 * m.weight.grad.abs().max(), s
        assert m.bias.grad.abs().max() < 2e-6, s
    assert net.fc3.bias.grad.abs().max() > 0.1 * net.fc3.weight.grad.abs().max()


def train_arms(ds, fast_pool, dtype, steps=20, batch=256):
    """Bias on and bias off, same seed, LeNet-BN, SGD lr 1.0 on the same subset batches."""
    perm = torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(0))
    out = []
    for bias in (True, False):
        net = (build_fast if fast_pool else build_lenet)(cfg_of(bias=bias, lr=1.0)).to(dtype).train()
        opt = torch.optim.SGD(net.parameters(), lr=1.0)
        losses = []
        for k in range(steps):
            idx = perm[k * batch:(k + 1) * batch]
            loss = F.cross_entropy(net(ds.train_x[idx].to(dtype)), ds.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out.append((torch.tensor(losses, dtype=torch.float64), net))
    (la, a), (lb, b) = out
    wdiff = max((getattr(a, s).weight - getattr(b, s).weight).abs().max().item()
                for s in LAYERS)
    return (la - lb).abs(), wdiff, la


@pytest.mark.slow
@pytest.mark.parametrize("fast_pool", [True, False])
def test_training_with_and_without_the_cancelled_bias_is_the_same_in_float64(ds, fast_pool):
    """The exact result: the two arms are one function of the weights, so in float64 twenty
    steps at lr 1.0 give the same losses and weights to ~1e-13 (measured, batch 64: losses
    1e-13, weights 5e-14; batch 256 is the same and slower)."""
    ldiff, wdiff, losses = train_arms(ds, fast_pool, torch.float64, batch=64)
    assert losses[-1] < losses[0] - 0.5  # it trains
    assert ldiff.max() < 1e-10 and wdiff < 1e-10, (ldiff.max().item(), wdiff)


@pytest.mark.slow
@pytest.mark.parametrize("fast_pool", [True, False])
def test_training_with_and_without_the_cancelled_bias_agrees_in_float32(ds, fast_pool,
                                                                        monkeypatch):
    """As trained (float32; the fast path runs the fused kernels where they are on). The first
    loss differs by float rounding only (x + b - mean(x + b) is not bit-equal to x - mean(x),
    and the bias gradients are rounding noise, not 0); twenty steps at lr 1.0 amplify that to a
    measured max loss difference of 1.7e-5 (plain) / 1.1e-5 (fast), weights 6e-6 / 3e-6 —
    the same size as the fast path's own difference from the plain path for one arm (9e-6),
    and the float64 test above shows it is rounding: there the arms agree to 1e-13."""
    calls = []
    real = fused.bn_sigmoid_pool
    monkeypatch.setattr(fused, "bn_sigmoid_pool", lambda bn, x: calls.append(1) or real(bn, x))
    ldiff, wdiff, losses = train_arms(ds, fast_pool, torch.float32)
    assert bool(calls) == (fast_pool and fused.status() == "on")
    assert losses[-1] < losses[0] - 0.5
    assert ldiff[0] < 1e-6, ldiff[0].item()
    assert ldiff.max() < 1e-4 and wdiff < 1e-4, (ldiff.max().item(), wdiff)


def snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_initialisation_ignores_the_global_rng():
    cfg = cfg_of()
    torch.manual_seed(0)
    ref = snapshot(build_lenet(cfg))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert same(snapshot(build_lenet(cfg)), ref)
    assert torch.equal(torch.get_rng_state(), state)  # not even read: nothing drawn from it
    assert same(snapshot(build_fast(cfg)), ref)
    # The seed decides: cfg.seed, or the seed argument in its place.
    other = snapshot(build_lenet(cfg.replace(seed=7)))
    assert not torch.equal(other["conv1.weight"], ref["conv1.weight"])
    assert not torch.equal(other["fc3.bias"], ref["fc3.bias"])
    assert same(snapshot(build_lenet(cfg, seed=7)), other)


def test_initialisation_is_the_same_while_another_thread_draws_from_the_global_rng():
    """A page view (inside.py, pages/bias.py) building or sampling on its thread while a worker
    builds its run's model must not change the worker's initial weights."""
    cfg = cfg_of(bias=False)
    ref = snapshot(build_lenet(cfg))
    stop = threading.Event()
    draws = []

    def hammer():
        while not stop.is_set():
            draws.append(torch.rand(64).sum())

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        built = [snapshot(build_lenet(cfg)) for _ in range(20)]
    finally:
        stop.set()
        t.join()
    assert draws  # the other thread did draw meanwhile
    assert all(same(b, ref) for b in built)


@pytest.mark.slow
def test_bias_equivalence_is_exact_in_float64_and_nothing_where_no_bias_is_cancelled():
    from bnviz.bias import bias_equivalence
    eq = bias_equivalence(cfg_of(lr=1.0), steps=8, batch=32)
    assert eq.loss_diff < 1e-10 and eq.weight_diff < 1e-10 and eq.last_loss < eq.first_loss
    same = bias_equivalence(cfg_of(norm="layer"), steps=4, batch=32)
    assert same.loss_diff == 0.0  # LayerNorm cancels nothing: both arms keep every bias


def test_bias_page_states_the_exact_result():
    from tests.apptest import open_page
    at = open_page("bias", {"dataset": "subset"})
    assert not at.exception
    exact = next(m.value for m in at.markdown if "The exact result" in m.value)
    diff = float(exact.split("differ by at most **")[1].split("**")[0])
    assert diff < 1e-10 and "226 parameters apart" in exact
