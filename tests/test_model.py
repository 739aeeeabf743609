import pytest
import torch

from bnviz.config import NORM_KINDS, make_config
from bnviz.speed.lenet import build_fast
from bnviz.model import build_lenet, count_params, norm_layers


def test_lenet_bn_parameter_counts_and_bias_saving():
    assert count_params(build_lenet(make_config())) == 44878
    assert count_params(build_lenet(make_config(bias=False))) == 44878 - (6 + 16 + 120 + 84)
    assert count_params(build_lenet(make_config("d2l-lenet"))) == 61706


@pytest.mark.parametrize("norm", NORM_KINDS)
@pytest.mark.parametrize("position", ["before_act", "after_act"])
def test_every_norm_and_placement_builds(norm, position):
    net = build_lenet(make_config(norm=norm, norm_position=position, norm_conv2=False))
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    sites = [s for s, _ in norm_layers(net)]
    assert sites == ([] if norm == "none" else ["conv1", "fc1", "fc2"])
    names = list(dict(net.named_children()))
    if norm != "none":
        i, j = names.index("conv1_norm"), names.index("conv1_act")
        assert (i < j) == (position == "before_act")


def test_dropout_swap_replaces_fc_norms():
    net = build_lenet(make_config(dropout_fc=True, dropout_p=0.3))
    names = dict(net.named_children())
    assert "fc1_dropout" in names and "fc1_norm" not in names and "conv1_norm" in names
    assert names["fc1_dropout"].p == 0.3


def test_gamma_beta_shapes_are_per_channel_and_freezable():
    net = build_lenet(make_config(freeze_affine=True))
    shapes = {s: tuple(m.weight.shape) for s, m in norm_layers(net)}
    assert shapes == {"conv1": (6,), "conv2": (16,), "fc1": (120,), "fc2": (84,)}
    assert not any(m.weight.requires_grad for _, m in norm_layers(net))


def test_fast_and_plain_builds_start_from_the_same_numbers():
    """Both draw from the config's seed with their own generators (no torch.manual_seed)."""
    cfg = make_config("d2l-lenet-bn")
    fast, plain = build_fast(cfg).state_dict(), build_lenet(cfg).state_dict()
    assert all(torch.equal(fast[k], plain[k]) for k in plain)
    w = fast["conv1.weight"]
    bound = (6 / (25 + 6 * 25)) ** 0.5  # xavier_uniform_: fan_in 1·5·5, fan_out 6·5·5
    assert w.abs().max() <= bound and w.std() > bound / 3
    b = build_lenet(make_config("d2l-lenet")).fc3.bias
    assert b.abs().max() <= 84 ** -0.5 and b.abs().max() > 0  # PyTorch's default U(±1/√fan_in)
