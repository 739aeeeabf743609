"""The batch-size page's core: the normalisation-batch grid, BN at N = 2, and BN at N = 1."""
import math

import numpy as np
import pytest

from bnviz.config import Config, make_config, validate
from bnviz.experiments import (NORM_BATCH_SGD, batch_size_grid, norm_batch_grid,
                               per_bn_choices)
from bnviz.inside import two_example_outputs
from bnviz.runs.record import RunRecord
from bnviz.trainer import train


def test_norm_batch_grid_fixes_the_sgd_batch_and_varies_examples_per_bn():
    base = make_config(dataset="subset", epochs=2, lr=0.5, batch_size=64, devices=2)
    ms = (4, 16, 64, 256)
    pts = norm_batch_grid(base, ms)
    assert all(p.config.batch_size == NORM_BATCH_SGD == 256 for p in pts)
    assert all(validate(p.config) == [] for p in pts)
    assert all(p.config.lr == 0.5 and p.config.epochs == 2 for p in pts)  # one lr for all
    bn = [p for p in pts if p.config.norm == "bn"]
    assert [(p.label, p.config.devices) for p in bn] == [
        (f"BN, {m} per BN", 256 // m) for m in ms]
    refs = [p for p in pts if p.config.norm != "bn"]
    assert sorted(p.config.norm for p in refs) == ["group", "layer"]  # one point each
    assert all(p.config.devices == 1 and p.label.endswith("reference") for p in refs)
    assert {p.label for p in refs} == {"GroupNorm (2 groups), reference",
                                       "LayerNorm (1 group), reference"}
    # every m that can be simulated by default, all valid; one the knobs cannot hold refused
    default = norm_batch_grid(Config())
    assert [256 // p.config.devices for p in default if p.config.norm == "bn"] == list(
        per_bn_choices())
    assert all(validate(p.config) == [] for p in default)
    with pytest.raises(ValueError, match="examples per BN"):
        norm_batch_grid(base, (3,))


def test_sgd_batch_sweep_normalises_over_the_whole_batch():
    pts = batch_size_grid(make_config(devices=4), sizes=(8, 256), norms=("bn",))
    assert [(p.config.batch_size, p.config.devices) for p in pts] == [(8, 1), (256, 1)]


def test_fc_bn_on_two_examples_gives_plus_minus_one():
    for seed in (0, 2):  # seed 2 has many units whose two inputs barely differ
        r = two_example_outputs(Config(dataset="subset"), "fc1", seed=seed)
        assert r.xhat.shape == (2, 120)
        np.testing.assert_allclose(r.xhat[0], -r.xhat[1], atol=1e-4)  # one bit: the sign
        np.testing.assert_allclose(np.abs(r.xhat[0]), r.predicted, atol=1e-4)
        clear = r.diff > 0.15  # |x1 - x2| not tiny against sqrt(eps): 4·eps/d² < 2e-3
        assert clear.sum() > 0
        assert np.all(np.abs(np.abs(r.xhat[:, clear]) - 1) < 1e-3)
        np.testing.assert_allclose(r.output, r.xhat, atol=1e-4)  # at init gamma 1, beta 0
    with pytest.raises(ValueError):
        two_example_outputs(Config(dataset="subset"), "conv1")


@pytest.fixture
def one_thread():
    """Batch-1 steps are tiny: two threads only wait on each other (on a busy 2-core machine,
    ten times slower). The server's workers train with one thread each as well."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_conv_only_bn_at_batch_one_evaluates_with_per_image_statistics(one_thread):
    cfg = make_config(dataset="subset", train_size=200, epochs=1, batch_size=1, lr=0.02,
                      activation="relu", norm_fc1=False, norm_fc2=False, compare_eval=True,
                      device="cpu")
    rec = RunRecord("b1", cfg)
    train(cfg, [rec])
    v = rec.view()
    assert v.status == "finished", v.reason
    by_mode = v.evals[-1]["by_mode"]
    assert set(by_mode) == {"running", "precise", "batch"}
    assert all(0.0 <= a <= 1.0 and not math.isnan(a) for a in by_mode.values())
    assert not math.isnan(v.summary["test_acc_running"])
