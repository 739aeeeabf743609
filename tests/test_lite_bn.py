"""The "lite" BN kinds of d2l's exercise 4 (bnviz.norms.LiteBatchNorm): mean only and
variance only, their maths against direct computation, their bias rule against autograd, and
a tiny real run of each new kind (lite BN and Batch Renorm) through the Trainer and the store."""
import math

import pytest
import torch
from torch import nn

from bnviz import data, norm_kinds
from bnviz.config import SITES, make_config
from bnviz.evaluation import evaluate, precise_stats, set_running_stats
from bnviz.model import build_lenet, norm_layers, running_stats
from bnviz.norms import LiteBatchNorm, make_norm


@pytest.fixture(autouse=True)
def seeded():
    """Random test inputs, the same every run."""
    torch.manual_seed(0)


SHAPES = [(32, 6, 5, 5), (64, 12)]
DIMS = {4: (0, 2, 3), 2: (0,)}


def channel_stats(t):
    dims = DIMS[t.dim()]
    return t.mean(dims), t.var(dims, unbiased=False)


@pytest.mark.parametrize("shape", SHAPES, ids=["conv", "fc"])
def test_mean_only_removes_the_mean_and_leaves_the_variance(shape):
    x = torch.randn(shape) * 3 + 5
    y = make_norm("bn_mean", shape[1], len(shape)).train()(x)
    mean, var = channel_stats(y)
    assert mean.abs().max() < 1e-5
    assert torch.allclose(var, channel_stats(x)[1], rtol=1e-5)
    assert channel_stats(x)[1].min() > 4  # so "untouched" is not "1"


@pytest.mark.parametrize("shape", SHAPES, ids=["conv", "fc"])
def test_variance_only_gives_unit_variance_and_keeps_the_mean(shape):
    x = torch.randn(shape) * 3 + 5
    layer = make_norm("bn_var", shape[1], len(shape)).train()
    y = layer(x)
    mean, var = channel_stats(y)
    m_in, v_in = channel_stats(x)
    assert torch.allclose(var, v_in / (v_in + layer.eps), atol=1e-5)  # 1 up to eps
    assert torch.allclose(mean, m_in / torch.sqrt(v_in + layer.eps), rtol=1e-5)
    assert mean.min() > 1  # the mean is scaled, not removed


@pytest.mark.parametrize("part", LiteBatchNorm.PARTS)
def test_gamma_beta_and_eval_mode_use_the_running_statistics(part):
    layer = LiteBatchNorm(4, 4, part)
    x = torch.randn(16, 4, 3, 3) * 2 + 1
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, 1, 0.5, 3]).view(1, 4, 1, 1))
        layer.bias.copy_(torch.tensor([1.0, -1, 0, 2]).view(1, 4, 1, 1))
    y = layer.train()(x)
    mean, var = (t.view(1, 4, 1, 1) for t in channel_stats(x))
    x_hat = x - mean if part == "mean" else x / torch.sqrt(var + 1e-5)
    assert torch.allclose(y, layer.weight * x_hat + layer.bias, atol=1e-6)
    n = 16 * 9  # running statistics as nn.BatchNorm keeps them: unbiased variance
    assert torch.allclose(layer.running_mean, 0.1 * mean, atol=1e-6)
    assert torch.allclose(layer.running_var, 0.9 + 0.1 * var * n / (n - 1), atol=1e-6)
    z = torch.randn(5, 4, 3, 3)
    rm, rv = layer.running_mean, layer.running_var
    want = z - rm if part == "mean" else z / torch.sqrt(rv + 1e-5)
    assert torch.allclose(layer.eval()(z), layer.weight * want + layer.bias, atol=1e-6)


def test_bias_cancelled_by_mean_only_not_by_variance_only():
    """The entries' cancels_bias against autograd: with the mean removed the loss does not
    depend on the bias before the norm; divided by the std only, it does."""
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    for kind, cancels in (("bn_mean", True), ("bn_var", False)):
        cfg = make_config(norm=kind)
        assert [norm_kinds.cancels_bias(cfg, s) for s in SITES] == [cancels] * 4
        net = build_lenet(cfg)
        nn.functional.cross_entropy(net(x), y).backward()
        grads = [getattr(net, s).bias.grad.abs().max().item() for s in SITES]
        assert (max(grads) < 1e-6) == cancels, (kind, grads)
        assert (getattr(build_lenet(cfg.replace(bias=False)), "conv1").bias is None) == cancels


@pytest.mark.parametrize("kind", ["bn_mean", "bn_var"])
def test_precise_bn_recomputes_the_lite_statistics(kind):
    """PreciseBN sets the lite layers' running mean/variance to the population statistics of
    their inputs, as for BN; evaluate() leaves the model as it was."""
    ds = data.load("subset")
    net = build_lenet(make_config(norm=kind, dataset="subset"))
    stats = precise_stats(net, ds.train_x[:512], 128)
    assert set(stats) == set(SITES)
    before = [t.clone() for _, m in norm_layers(net) for t in running_stats(m)]
    evaluate(net, ds.test_x[:256], ds.test_y[:256], "precise", batch_size=128,
             train_x=ds.train_x, precise_samples=512)
    assert all(torch.equal(a, b) for a, b in
               zip(before, [t for _, m in norm_layers(net) for t in running_stats(m)]))
    set_running_stats(net, stats)
    m = net.conv1_norm
    assert torch.allclose(m.running_mean.view(-1), stats["conv1"][0]) and \
        m.running_mean.abs().max() > 0.01


@pytest.mark.slow  # three training runs: seconds
@pytest.mark.parametrize("kind", ["bn_mean", "bn_var", "renorm"])
def test_new_kind_trains_and_round_trips_the_store(kind, tmp_path):
    from bnviz.runs.record import RunRecord
    from bnviz.runs.store import RunStore
    from bnviz.trainer import Trainer

    cfg = make_config(dataset="subset", device="cpu", train_size=512, epochs=1, norm=kind)
    rec = RunRecord(f"{kind}_run0001", cfg)
    Trainer(cfg, [rec]).run()
    view = rec.view()
    assert view.status == "finished" and len(view.steps) == 512 // 256
    assert math.isfinite(view.summary["train_loss"]) and view.summary["test_acc"] > 0
    assert view.snapshots and "running_var" in view.snapshots[-1][2]["fc2"]
    store = RunStore(tmp_path / "runs.sqlite")
    store.save(view)
    back = RunStore(tmp_path / "runs.sqlite").load(f"{kind}_run0001")
    assert back.config == cfg and back.config.config_id() == cfg.config_id()
    assert back.summary["test_acc"] == view.summary["test_acc"]
    assert (back.steps == view.steps).all()
