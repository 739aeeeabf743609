"""Batch Renormalization (bnviz.norms.BatchRenorm, Ioffe 2017): BN exactly at r_max = 1 and
d_max = 0, r and d constants for the gradient, the clipping, the warm-up schedule, simulated
devices, and the knobs (config ids unchanged at their defaults)."""
import pytest
import torch
from torch import nn

from bnviz import data
from bnviz.cli import build_parser, config_from_args
from bnviz.config import Config, ConfigError, make_config
from bnviz.evaluation import evaluate
from bnviz.model import build_lenet
from bnviz.norms import BatchNormScratch, BatchRenorm, GhostBatchNorm, make_norm


@pytest.fixture(autouse=True)
def seeded():
    """Random test inputs, the same every run."""
    torch.manual_seed(0)


SHAPES = [(16, 6, 5, 5), (32, 12)]


def step(layer, x):
    """One training forward and backward; (output, grad of x, grad of gamma, grad of beta)."""
    x = x.clone().requires_grad_(True)
    y = layer(x)
    (y * torch.linspace(-1, 2, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


@pytest.mark.parametrize("shape", SHAPES, ids=["conv", "fc"])
def test_rmax_1_dmax_0_is_batchnorm_exactly(shape):
    c, dims = shape[1], len(shape)
    renorm, bn = BatchRenorm(c, dims, rmax=1.0, dmax=0.0), BatchNormScratch(c, dims)
    torch_bn = (nn.BatchNorm2d if dims == 4 else nn.BatchNorm1d)(c)
    torch.manual_seed(0)
    for i in range(3):  # running statistics move away from 0 and 1: r, d would be active
        x = torch.randn(shape) * (2 + i) + 3
        got, want, ref = step(renorm, x), step(bn, x), step(torch_bn, x)
        for g, w, r in zip(got, want, ref):
            assert torch.equal(g, w)  # bit for bit against the same maths
            assert torch.allclose(g, r.view_as(g), rtol=1e-4, atol=1e-5)  # and nn.BatchNorm
        assert torch.equal(renorm.running_mean, bn.running_mean)
        assert torch.equal(renorm.running_var, bn.running_var)
    assert renorm.running_mean.abs().max() > 0.5  # the statistics did move
    z = torch.randn(shape)
    assert torch.equal(renorm.eval()(z), bn.eval()(z))


def test_r_and_d_receive_no_gradient():
    """The gradient is the one with r and d as constants, not the one through them."""
    layer = BatchRenorm(3, 2, rmax=3.0, dmax=5.0)
    with torch.no_grad():
        layer.running_mean.fill_(0.5)
        layer.running_var.fill_(4.0)
    x = torch.randn(20, 3) * 1.5 + 1
    _, gx, _, _ = step(layer, x)
    r, d = layer.last_r, layer.last_d
    assert not r.requires_grad and not d.requires_grad and r.grad_fn is None
    assert (r != 1).all() and (d != 0).all()  # active, inside the limits
    assert (r > 1 / 3).all() and (r < 3).all() and d.abs().max() < 5

    def by_hand(x, detach):
        mean, var = x.mean(0), x.var(0, unbiased=False)
        sb = torch.sqrt(var + 1e-5)
        rr, dd = sb / torch.sqrt(torch.tensor(4.0) + 1e-5), (mean - 0.5) / (4.0 + 1e-5) ** 0.5
        if detach:
            rr, dd = rr.detach(), dd.detach()
        return (x - mean) / sb * rr + dd

    for detach in (True, False):
        xx = x.clone().requires_grad_(True)
        y = by_hand(xx, detach)
        (y * torch.linspace(-1, 2, y.numel()).view_as(y)).sum().backward()
        assert torch.allclose(xx.grad, gx, atol=1e-5) == detach


def test_r_and_d_are_clipped():
    layer = BatchRenorm(4, 4, rmax=2.0, dmax=0.5)
    with torch.no_grad():
        layer.running_mean.fill_(10.0)
        layer.running_var.fill_(100.0)
    x = torch.randn(8, 4, 3, 3)  # sigma_B ~ 1, sigma 10: r ~ 0.1, d ~ -1
    y = layer.train()(x)
    assert torch.equal(layer.last_r, torch.full_like(layer.last_r, 0.5))
    assert torch.equal(layer.last_d, torch.full_like(layer.last_d, -0.5))
    mean = x.mean((0, 2, 3), keepdim=True)
    x_hat = (x - mean) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(y, x_hat * 0.5 - 0.5, atol=1e-6)


def test_warmup_starts_as_bn_and_relaxes_linearly():
    layer = BatchRenorm(2, 2, rmax=3.0, dmax=5.0, warmup=10)
    at = {s: tuple(float(t) for t in layer.limits(torch.tensor(s))) for s in (0, 5, 10, 40)}
    assert at == {0: (1.0, 0.0), 5: (2.0, 2.5), 10: (3.0, 5.0), 40: (3.0, 5.0)}
    assert tuple(float(t) for t in BatchRenorm(2, 2, warmup=0).limits(torch.tensor(0))) \
        == (3.0, 5.0)
    # the first step is BN's (r = 1, d = 0) even with the statistics far off; steps count up
    with torch.no_grad():
        layer.running_var.fill_(100.0)
    layer.train()(torch.randn(8, 2))
    assert torch.equal(layer.last_r, torch.ones(2)) and torch.equal(layer.last_d, torch.zeros(2))
    layer(torch.randn(8, 2))
    assert int(layer.steps) == 2 and (layer.last_r < 1).all()  # r_max 1.2 now: 1/1.2 < r


def test_eval_modes_do_not_advance_the_warmup():
    ds = data.load("subset")
    net = build_lenet(make_config(norm="renorm", dataset="subset"))
    for mode in ("running", "precise", "batch"):
        evaluate(net, ds.test_x[:256], ds.test_y[:256], mode, batch_size=64,
                 train_x=ds.train_x, precise_samples=256)
    assert int(net.conv1_norm.steps) == 0
    net.train()(ds.train_x[:32])
    assert int(net.conv1_norm.steps) == 1


def test_simulated_devices_renormalise_each_slice_against_the_same_averages():
    layer = make_norm("renorm", 3, 2, slices=2, renorm_rmax=3.0, renorm_dmax=5.0,
                      renorm_warmup=0)
    assert isinstance(layer, GhostBatchNorm)
    solo = BatchRenorm(3, 2, rmax=3.0, dmax=5.0)
    with torch.no_grad():
        for m in (layer.inner, solo):
            m.running_mean.fill_(1.0)
            m.running_var.fill_(2.0)
    x = torch.randn(16, 3) * 3
    out = layer.train()(x)
    want = []
    for part in x.chunk(2):
        fresh = BatchRenorm(3, 2, rmax=3.0, dmax=5.0)
        fresh.load_state_dict(solo.state_dict())
        want.append(fresh.train()(part))
    assert torch.allclose(out, torch.cat(want), atol=1e-6)
    first = BatchRenorm(3, 2, rmax=3.0, dmax=5.0)
    first.load_state_dict(solo.state_dict())
    first.train()(x[:8])  # only slice 0 (device 0) updates the statistics
    assert torch.equal(layer.inner.running_mean, first.running_mean)
    assert int(layer.inner.steps) == 1


def test_knobs_reach_the_layers_and_leave_config_ids_alone():
    assert Config().config_id() == "bf21a9e8fbc5"
    assert make_config(norm="renorm").non_defaults() == {"norm": "renorm"}
    cfg = make_config(norm="renorm", renorm_rmax=2, renorm_dmax=0.5, renorm_warmup=7)
    m = build_lenet(cfg).fc1_norm
    assert (m.rmax, m.dmax, m.warmup) == (2.0, 0.5, 7)
    args = build_parser().parse_args(["train", "--norm", "renorm", "--renorm-rmax", "1.5",
                                      "--renorm-warmup", "0"])
    got = config_from_args(args)
    assert (got.renorm_rmax, got.renorm_warmup) == (1.5, 0)
    with pytest.raises(ConfigError, match="renorm_rmax must be between 1 and 100"):
        make_config(renorm_rmax=0.5)
