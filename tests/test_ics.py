"""Internal covariate shift (bnviz/ics.py) and noisy BN (bnviz/noisy_bn.py), against
independent computations: G and G′ on the same batch, G′ after exactly the earlier layers'
SGD step, the probe leaving the model and the next steps bit for bit unchanged, and noisy
BN's noise having the configured distribution."""
import copy
import functools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from bnviz import cost, data, ics, metrics
from bnviz.config import make_config
from bnviz.evaluation import kept_buffers
from bnviz.model import build_lenet
from bnviz.noisy_bn import NoisyBatchNorm
from bnviz.runs.record import RunRecord
from bnviz.speed.lenet import build_fast
from bnviz.trainer import Trainer


@functools.lru_cache(maxsize=1)
def _subset():
    return data.load("subset", 512, torch.device("cpu"), 0)


def batch(n=32):
    ds = _subset()
    return ds.train_x[:n], ds.train_y[:n]


def reference(net, x, y, lr, layer, update=None):
    """G′ the long way: a deep copy, .backward(), the SGD step applied by hand to the
    parameters of the modules named in `update` (default: those before `layer`)."""
    names = [n for n, _ in net.named_children()]
    update = names[:names.index(layer)] if update is None else update
    a = copy.deepcopy(net)
    F.cross_entropy(a(x), y).backward()
    b = copy.deepcopy(net)
    with torch.no_grad():
        for n in update:
            for (pn, p), (_, pa) in zip(getattr(b, n).named_parameters(),
                                        getattr(a, n).named_parameters()):
                p -= lr * pa.grad
    F.cross_entropy(b(x), y).backward()
    g, g2 = getattr(a, layer).weight.grad.double(), getattr(b, layer).weight.grad.double()
    return (g - g2).norm().item(), (g @ g2 if g.dim() == 1 else (g * g2).sum()).item() / (
        g.norm() * g2.norm()).item()


@pytest.mark.parametrize("norm", ["bn", "none", "noisy_bn"])
def test_g_prime_is_the_gradient_after_exactly_the_earlier_layers_step(norm):
    cfg = make_config(norm=norm, seed=3)
    net = build_lenet(cfg).train()
    x, y = batch(16)
    got = ics.measure(net, x, y, lr=0.5)
    assert set(got) == set(ics.ICS_LAYERS) and metrics.ICS_LAYERS == ics.ICS_LAYERS
    for layer in ics.ICS_LAYERS:
        l2, cos = reference(net, x, y, 0.5, layer)
        assert got[layer]["l2"] == pytest.approx(l2, rel=1e-4, abs=1e-9)
        assert got[layer]["cos"] == pytest.approx(cos, abs=1e-5)
        assert got[layer]["l2"] > 0  # the earlier layers' step did change the gradient
    # Updating layer k itself or the later layers as well would give other numbers.
    names = [n for n, _ in net.named_children()]
    l2_all, _ = reference(net, x, y, 0.5, "fc1", update=names)
    assert abs(l2_all - got["fc1"]["l2"]) > 1e-3 * got["fc1"]["l2"]


@pytest.mark.parametrize("norm", ["bn", "noisy_bn"])
def test_with_no_step_g_prime_is_g_bit_for_bit(norm):
    """lr 0: the same batch, the same buffers (and noise): G′ = G exactly, cos = 1."""
    net = build_lenet(make_config(norm=norm)).train()
    x, y = batch()
    for r in ics.measure(net, x, y, lr=0.0).values():
        assert r["l2"] == 0.0 and r["cos"] == pytest.approx(1.0, abs=1e-12)


def test_measure_leaves_the_model_its_buffers_gradients_and_random_streams_alone():
    cfg = make_config(norm="noisy_bn", dropout_fc=True, seed=1)
    net = build_fast(cfg).train()
    x, y = batch(64)
    F.cross_entropy(net(x), y).backward()  # a .grad that must survive
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.grad.clone() for p in net.parameters()]
    gens = [m._gen.get_state() for m in net.modules() if getattr(m, "_gen", None) is not None]
    ics.measure(net, x, y, lr=1.0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters()))
    assert gens and all(torch.equal(g, m._gen.get_state()) for g, m in zip(
        gens, [m for m in net.modules() if getattr(m, "_gen", None) is not None]))


@pytest.mark.parametrize("extra", [{}, {"norm": "noisy_bn", "dropout_fc": True},
                                   {"norm": "none"}])
def test_the_probe_changes_no_training_number(extra):
    cfg = make_config(dataset="subset", train_size=256, batch_size=64, epochs=1, eval_every=2,
                      precise_samples=64, **extra)
    runs = []
    for on in (True, False):
        c = cfg.replace(ics_probe=on)
        rec = RunRecord(str(on), c)
        Trainer(c, [rec], build=build_fast).run()
        runs.append(rec.view())
    a, b = runs
    assert a.status == b.status == "finished"
    assert (a.steps == b.steps).all()  # every step's loss and accuracy, bit for bit
    assert [e["test_acc"] for e in a.evals] == [e["test_acc"] for e in b.evals]
    assert a.summary["test_acc_precise"] == b.summary["test_acc_precise"]
    m = a.evals[0]["metrics"]
    assert {f"ics_{s}_{k}" for s in ("l2", "cos") for k in ics.ICS_LAYERS} <= set(m)
    assert {ics.input_metric(k, p) for k in ics.ICS_LAYERS for p in ics.PERCENTILES} <= set(m)
    assert not any(k.startswith("ics_") for k in b.evals[0]["metrics"])
    assert all(-1 <= m[f"ics_cos_{k}"] <= 1 for k in ics.ICS_LAYERS)
    assert metrics.metric("ics_cos").value(a) == pytest.approx(
        sum(e["metrics"][f"ics_cos_{k}"] for e in a.evals for k in ics.ICS_LAYERS)
        / (4 * len(a.evals)))
    assert math.isnan(metrics.metric("ics_cos").value(b))


def test_noisy_bn_adds_noise_of_the_configured_mean_and_variance():
    torch.manual_seed(0)
    m_, s_ = 0.8, 1.5
    layer = NoisyBatchNorm(16, 4, noise_mean=m_, noise_std=s_, seed=7).train()
    x = torch.randn(128, 16, 4, 4) * 3 + 2
    mus, sigmas = [], []
    for step in range(100):
        y = layer(x)
        bn = F.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)
        noise = (y - bn).detach()
        assert torch.allclose(noise, layer.last_noise, atol=1e-5)
        mu, sigma = layer.last_mu, layer.last_sigma
        per = noise.transpose(0, 1).reshape(16, -1)  # one row of values per channel
        n = per.shape[1]
        # this step's noise: mean mu_t, variance sigma_t² per channel (5 standard errors)
        assert (per.mean(1) - mu).abs().max() <= 5 * sigma.max() / n ** 0.5 + 1e-6
        assert (per.var(1) - sigma ** 2).abs().max() <= 5 * (2 / n) ** 0.5 * sigma.max() ** 2 \
            + 1e-6
        mus.append(mu)
        sigmas.append(sigma)
    mu, sigma = torch.cat(mus), torch.cat(sigmas)  # 1,600 draws each
    assert mu.abs().max() <= m_ and 0 <= sigma.min() and sigma.max() <= s_
    # U(-m, m): mean 0, variance m²/3; U(0, s): mean s/2, variance s²/12
    k = len(mu)
    assert abs(mu.mean()) < 5 * (m_ ** 2 / 3 / k) ** 0.5
    assert mu.var().item() == pytest.approx(m_ ** 2 / 3, rel=0.1)
    assert abs(sigma.mean() - s_ / 2) < 5 * (s_ ** 2 / 12 / k) ** 0.5
    assert sigma.var().item() == pytest.approx(s_ ** 2 / 12, rel=0.1)
    assert (mu.view(100, 16)[1:] != mu.view(100, 16)[:-1]).all()  # redrawn every step


def test_noisy_bn_noise_comes_from_the_seed_and_not_in_eval_mode():
    x = torch.randn(64, 120)
    a, b, c = (NoisyBatchNorm(120, 2, seed=s).train() for s in (1, 1, 2))
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)
    with kept_buffers(a):  # a probe's forward: same noise as the next step, counter restored
        probe = a(x)
    assert torch.equal(probe, a(x)) and int(a.steps) == 2
    a.eval()
    ref = F.batch_norm(x, a.running_mean, a.running_var, a.weight, a.bias, False, 0.0, a.eps)
    assert torch.equal(a(x), ref)


def test_noisy_bn_on_the_fast_lenet_matches_the_plain_one():
    cfg = make_config(norm="noisy_bn", seed=2)
    x, y = batch(64)
    plain, fast = build_lenet(cfg).train(), build_fast(cfg).train()
    la, lb = F.cross_entropy(plain(x), y), F.cross_entropy(fast(x), y)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5)
    assert plain.conv1_norm.norm_kind == "noisy_bn"


def _view(evals):
    return SimpleNamespace(evals=[{"metrics": m} for m in evals])


def test_over_training_and_input_shift_from_their_definitions():
    v = _view([{"ics_cos_fc1": 0.5, "ics_cos_fc2": 1.0, "ics_l2_fc1": 2.0},
               {"ics_cos_fc1": 0.0, "ics_cos_fc2": math.nan}])
    assert ics.over_training(v, "cos") == pytest.approx(0.5)
    assert ics.over_training(v, "l2") == 2.0
    assert math.isnan(ics.over_training(_view([{}]), "cos"))
    med = ics.input_metric
    v = _view([{med("conv2"): 0.1, med("fc1"): 0.5}, {med("conv2"): 0.4, med("fc1"): 0.5},
               {med("conv2"): 0.2, med("fc1"): 0.7}])
    # conv2: (0.3 + 0.2) / 2 = 0.25; fc1: (0 + 0.2) / 2 = 0.1
    assert ics.input_shift(v) == pytest.approx(0.175)


def test_cost_counts_the_probe_passes():
    cfg = make_config(dataset="subset", batch_size=64, epochs=1, eval_every=10)
    off, on = cost.estimate(cfg, 5000, 1000), cost.estimate(cfg.replace(ics_probe=True),
                                                             5000, 1000)
    # 5 forward+backward passes of the batch (G, then G′ for four layers), and one forward
    # of the 256 probe images at about 0.4 of a training example each
    assert on.probe_examples - off.probe_examples == round(on.eval_points * (5 * 64 + 0.4 * 256))
    assert on.seconds() > off.seconds()


def test_unit_inputs_are_the_percentiles_of_unit_0_of_each_layers_input():
    cfg = make_config(norm="noisy_bn", seed=4)
    net = build_fast(cfg).train()
    x, _ = batch(64)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = ics.unit_inputs(net, x)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # independently: the same forward, module by module, on a plain copy of the model
    plain = build_lenet(cfg).train()
    plain.load_state_dict(before)
    h = x
    inputs = {}
    for name, m in plain.named_children():
        if name in ics.ICS_LAYERS:
            inputs[name] = h
        h = m(h)
    want = {"conv2": inputs["conv2"][:, 0].flatten(), "fc1": inputs["fc1"][:, :16].flatten(),
            "fc2": inputs["fc2"][:, 0], "fc3": inputs["fc3"][:, 0]}
    assert inputs["fc1"].shape[1] == 256  # 16 channels × 4 × 4: channel 0 is the first 16
    for layer, v in want.items():
        qs = torch.quantile(v.detach(), torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))
        assert [got[layer][p] for p in ics.PERCENTILES] == pytest.approx(qs.tolist(),
                                                                         abs=1e-5)


def test_a_hosted_server_refuses_an_expensive_probe_schedule_with_its_estimate():
    from bnviz.runs.limits import Limits
    hosted = Limits.hosted()
    cfg = make_config(epochs=3, eval_every=47, activation="relu", lr=0.1, norm="noisy_bn",
                      ics_probe=True)
    assert hosted.check(cfg, 60000) == []  # the page's own question fits
    # evaluated every 2 steps: fits without the probe (about 98 s at the default rates), not
    # with it (about 127 s against the 120 s cap)
    dense = cfg.replace(norm="bn", eval_every=2)
    assert hosted.check(dense.replace(ics_probe=False), 60000) == []
    errs = hosted.check(dense, 60000)
    assert errs and "this run would take" in errs[-1]
    assert cost.estimate(dense, 60000, 10000).probe_examples == round(
        cost.estimate(dense, 60000, 10000).eval_points * (5 * 256 + 0.4 * 256))


def test_the_cli_sweep_writes_ics_csv(tmp_path, capsys):
    import csv

    from bnviz.cli import main
    assert main(["sweep", "ics", "--dataset", "subset", "--train-size", "256", "--batch-size",
                 "64", "--epochs", "1", "--eval-every", "2", "--precise-samples", "64",
                 "--seeds", "1", "--no-store", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "ics.csv")))
    assert [r["arm"] for r in rows] == ["bn"] * 2 + ["noisy_bn"] * 2 + ["none"] * 2
    assert all(-1 <= float(r["ics_cos_fc1"]) <= 1 and float(r["ics_l2_fc1"]) >= 0
               for r in rows)
    assert all(float(r["ics_in_fc2_p5"]) <= float(r["ics_in_fc2_p95"]) for r in rows)
    results = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert all(r["ics_cos"] and r["input_shift"] for r in results)
    assert "Not enough finished runs" in capsys.readouterr().out  # one seed: no claim
