"""BN folding (bnviz.folding.fold_bn): after real training steps (running statistics, gamma
and beta away from 0, 1, 1, 0) the folded and unfolded models agree in eval mode to 1e-5 with
fewer layers; what cannot be folded is refused with a clear message."""
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz import data
from bnviz.config import make_config
from bnviz.folding import fold_bn
from bnviz.model import build_lenet, norm_layers, running_stats, scale_shift


@pytest.fixture(autouse=True)
def seeded():
    """Random test inputs, the same every run."""
    torch.manual_seed(0)


def trained(cfg, steps=5):
    ds = data.load("subset")
    net = build_lenet(cfg)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(ds.train_y), (128,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(ds.train_x[i]), ds.train_y[i]).backward()
        opt.step()
    return net, ds


@pytest.mark.parametrize("norm,extra", [("bn", {}), ("bn", {"bias": False}),
                                        ("bn", {"devices": 2}), ("bn_scratch", {}),
                                        ("bn_d2l", {}), ("bn_d2l", {"bias": False}),
                                        ("bn_mean", {}), ("bn_var", {}), ("renorm", {})])
def test_folded_model_agrees_in_eval_mode_with_fewer_layers(norm, extra):
    net, ds = trained(make_config(norm=norm, dataset="subset", activation="relu", lr=0.1,
                                  **extra))
    for _, m in norm_layers(net):  # non-trivial statistics and affine parameters
        gamma, beta = scale_shift(m)
        mean, var = running_stats(m)
        assert (gamma - 1).abs().max() > 1e-4 and beta.abs().max() > 1e-4
        assert mean.abs().max() > 1e-3 and (var - 1).abs().max() > 1e-3
    folded = fold_bn(net)
    assert net.training  # the original is left as it was
    assert len(folded) == len(net) - 4 and not any(n.endswith("_norm") for n, _ in
                                                   folded.named_children())
    assert all(getattr(folded, s).bias is not None for s in ("conv1", "conv2", "fc1", "fc2"))
    net.eval()
    with torch.no_grad():
        x = ds.test_x[:500]
        want, got = net(x), folded(x)
    assert (got - want).abs().max() < 1e-5
    assert want.abs().max() > 0.1  # the outputs are not trivially small


def test_fold_formula_on_one_conv():
    """W' = W·gamma/sqrt(var + eps), b' = (b - mean)·gamma/sqrt(var + eps) + beta."""
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
        bn.running_mean.copy_(torch.tensor([1.0, -2, 0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1]))
    f = fold_bn(nn.Sequential(OrderedDict(conv1=conv, conv1_norm=bn)))
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(f.conv1.weight, conv.weight * s.view(3, 1, 1, 1))
    assert torch.allclose(f.conv1.bias, (conv.bias - bn.running_mean) * s + bn.bias)


@pytest.mark.parametrize("extra,match", [
    ({"norm_position": "after_act"}, "conv1_norm: it follows conv1_act, not a conv/linear"),
    ({"norm": "layer"}, "cannot fold conv1_norm: cannot fold GroupNorm: its eval mode uses"),
    ({"norm": "group"}, "cannot fold GroupNorm"),
    ({"norm": "instance"}, "cannot fold InstanceNorm2d"),
])
def test_unfoldable_norms_are_refused(extra, match):
    with pytest.raises(ValueError, match=match):
        fold_bn(build_lenet(make_config(**extra)))


def test_a_model_without_norms_folds_to_itself():
    net = build_lenet(make_config(norm="none")).eval()
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(fold_bn(net)(x), net(x)) and len(fold_bn(net)) == len(net)
