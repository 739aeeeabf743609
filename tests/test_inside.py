import numpy as np
import torch

from bnviz.config import make_config
from bnviz.inside import layer_io, per_device_stats, real_batch

CFG = make_config(dataset="subset")


def test_conv_statistics_are_per_channel_over_n_h_w():
    io = layer_io(CFG, 8, "conv1")
    assert io.input_shape == (8, 6, 24, 24) and io.axes == (0, 2, 3)
    assert io.count == 8 * 24 * 24 and io.stats_shape == (1, 6, 1, 1)
    assert io.gamma_shape == (6,) and io.mean.shape == (6,)
    assert np.allclose(io.out_mean, 0, atol=1e-5) and np.allclose(io.out_std, 1, atol=1e-2)


def test_fc_statistics_are_per_feature_over_n():
    io = layer_io(CFG, 16, "fc1")
    assert io.input_shape == (16, 120) and io.axes == (0,) and io.count == 16
    assert io.stats_shape == (120,) and io.gamma_shape == (120,)


def test_batch_of_one_normalises_fc_to_exactly_zero_but_not_conv():
    fc = layer_io(CFG, 1, "fc1")  # nn.BatchNorm1d refuses: shown with d2l's version
    assert np.count_nonzero(fc.output) == 0
    conv = layer_io(CFG.replace(norm="bn_scratch"), 1, "conv1")
    assert conv.count == 576 and conv.out_std.min() > 0.9


def test_per_device_stats_are_slice_statistics():
    means, vars_, whole_m, whole_v = per_device_stats(CFG, 32, 4, "fc1")
    assert means.shape == (4, 120) and whole_m.shape == (120,)
    # equal slices: the whole-batch mean is the mean of the slice means
    assert np.allclose(means.mean(0), whole_m, atol=1e-5)
    # and the whole-batch variance adds the spread of the slice means (law of total variance)
    assert np.allclose(vars_.mean(0) + means.var(0), whole_v, atol=1e-4)
    assert not np.allclose(means[0], whole_m, atol=1e-3)


def test_real_batch_is_real_data():
    x = real_batch(CFG, 5)
    assert x.shape == (5, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.unique(x).numel() > 50
