"""The loss-landscape probe (bnviz.landscape; Santurkar et al. 2018, §3.1): it leaves the run
bit-for-bit alone, its numbers match an independent computation, the trainer, cost model,
hosted caps, grid, reading and CLI carry it."""
import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bnviz import cost, data, landscape, readings
from bnviz.config import Config, make_config
from bnviz.experiments import GRIDS, landscape_grid
from bnviz.metrics import METRICS, probes
from bnviz.model import build_lenet
from bnviz.runs.limits import Limits
from bnviz.runs.record import RunRecord
from bnviz.speed.lenet import build_fast
from bnviz.trainer import Trainer

TINY = dict(dataset="subset", train_size=128, batch_size=32, epochs=1)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as on a hosted server: on a shared CPU two threads spinning against
    other processes make these tiny runs several times slower. Restored afterwards."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


def _batch(n=32):
    ds = data.load("subset", 256, torch.device("cpu"), 0)
    return ds.train_x[:n], ds.train_y[:n]


def _trained(cfg, steps=3):
    """A fast-path model (as the app trains) and its SGD optimiser after a few steps."""
    net = build_fast(cfg)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    x, y = _batch()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net, opt, (x, y)


def _state(net, opt):
    """Everything a probe might touch, copied: parameters, their .grad, every buffer, every
    tensor or number attribute of every module, modes, the optimiser, the RNG."""
    return dict(
        params={k: v.detach().clone() for k, v in net.named_parameters()},
        grads={k: None if v.grad is None else v.grad.clone() for k, v in net.named_parameters()},
        buffers={k: v.clone() for k, v in net.named_buffers()},
        attrs={(name, a): (v.clone() if isinstance(v, torch.Tensor) else v)
               for name, m in net.named_modules() for a, v in vars(m).items()
               if isinstance(v, (torch.Tensor, int, float, bool))},
        training={name: m.training for name, m in net.named_modules()},
        opt=copy.deepcopy(opt.state_dict()),
        rng=torch.get_rng_state().clone())


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape \
            and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("norm,act,dropout", [("bn", "sigmoid", False), ("none", "relu", False),
                                              ("bn", "relu", True), ("bn_d2l", "sigmoid", False)])
def test_a_probe_leaves_model_optimiser_buffers_and_rng_bit_for_bit(norm, act, dropout):
    cfg = make_config(**TINY, norm=norm, activation=act, dropout_fc=dropout)
    net, opt, batch = _trained(cfg)
    before = _state(net, opt)
    assert not opt.state_dict()["state"]  # plain SGD, no momentum: nothing to keep...
    r = landscape.probe(net, batch, cfg.lr)
    after = _state(net, opt)
    for part in before:  # ...and still nothing changed, part by part
        assert _same(before[part], after[part]), part
    assert math.isfinite(r.band) and r.band >= 0 and len(r.losses) == 5


def _losses_and_weights(cfg):
    nets, steps = [], []
    def build(c):
        nets.append(build_fast(c))
        return nets[-1]
    rec = RunRecord("x", cfg)
    Trainer(cfg, [rec, lambda e: steps.append(e.loss) if e.kind == "step" else None],
            build=build).run()
    v = rec.view()
    assert v.status == "finished", v.reason
    return steps, {k: t.clone() for k, t in nets[0].state_dict().items()}, v


@pytest.mark.parametrize("extra", [{}, {"dropout_fc": True, "norm": "none"}])
def test_training_with_probes_is_the_training_without_them_bitwise(extra):
    off = make_config(**TINY, eval_every=1, **extra)
    l_off, w_off, v_off = _losses_and_weights(off)
    l_on, w_on, v_on = _losses_and_weights(off.replace(landscape=True))
    assert len(l_on) == 4 and l_on == l_off  # every step's loss, float for float
    assert _same(w_on, w_off)  # the final weights and every BN buffer
    assert [e["test_acc"] for e in v_on.evals] == [e["test_acc"] for e in v_off.evals]
    assert all("landscape_band" in e["metrics"] for e in v_on.evals)
    assert not any("landscape_band" in (e["metrics"] or {}) for e in v_off.evals)


def test_probe_numbers_match_torch_func_on_the_plain_model_in_float64():
    """Independent: the plain nn LeNet (no fused kernels), in float64, with torch.func."""
    cfg = make_config(**TINY)
    net, _, (x, y) = _trained(cfg)
    r = landscape.probe(net, (x, y), cfg.lr)
    ref = build_lenet(cfg).double()
    ref.load_state_dict(net.state_dict())
    ref.train()
    bufs = {k: v.clone() for k, v in ref.named_buffers()}
    w = {k: v.detach() for k, v in ref.named_parameters()}

    def loss(params):
        out = torch.func.functional_call(ref, ({**params}, {k: b.clone() for k, b in
                                                            bufs.items()}), (x.double(),))
        return F.cross_entropy(out, y)
    grad = torch.func.grad(loss)
    g = grad(w)
    norm = lambda d: math.sqrt(sum(float((t ** 2).sum()) for t in d.values()))  # noqa: E731
    assert r.loss == pytest.approx(float(loss(w)), rel=1e-5)
    assert r.grad_norm == pytest.approx(norm(g), rel=1e-4)
    assert r.steps == tuple(cfg.lr * f for f in (0.25, 0.5, 1, 2, 4))
    for s, l_s, d_s in zip(r.steps, r.losses, r.grad_diffs):
        ws = {k: w[k] - s * g[k] for k in w}
        assert l_s == pytest.approx(float(loss(ws)), rel=1e-4, abs=1e-5)
        gs = grad(ws)
        assert d_s == pytest.approx(norm({k: g[k] - gs[k] for k in g}), rel=1e-3, abs=1e-5)
    assert r.band == max(r.losses) - min(r.losses)
    assert r.gradpred_max == max(r.grad_diffs) and r.gradpred_min == min(r.grad_diffs)
    assert r.beta == max(d / (s * r.grad_norm) for s, d in zip(r.steps, r.grad_diffs))


def test_the_run_carries_the_probes_and_their_mean_over_training():
    cfg = make_config(**TINY, eval_every=2, landscape=True)
    _, _, v = _losses_and_weights(cfg)
    assert [e["iteration"] for e in v.evals] == [2, 4]  # 128 images, batch 32
    bands = landscape.series(v, "landscape_band")
    assert len(bands) == 2 and all(math.isfinite(b) for b in bands)
    assert METRICS["landscape_band_mean"].value(v) == pytest.approx(sum(bands) / 2)
    assert v.summary["landscape_band"] == bands[-1]  # the summary keeps the last one
    e = v.evals[-1]["metrics"]
    assert e["landscape_band"] == pytest.approx(e["landscape_loss_max"] - e["landscape_loss_min"])
    assert "landscape_band" in v.evals_frame()
    # a run without the knob has none: NaN, not an error
    _, _, plain = _losses_and_weights(make_config(**TINY))
    assert math.isnan(METRICS["landscape_band_mean"].value(plain))
    rows = landscape.curves([("a", v), ("a", v)], "landscape_band")
    assert [r["n"] for r in rows] == [2, 2] and rows[0]["mean"] == bands[0]


def test_only_runs_that_ask_pay_and_the_cost_model_counts_the_probes():
    off = make_config(dataset="full", epochs=3, eval_every=50)
    on = off.replace(landscape=True)
    assert not probes(off) and {m.id for m in probes(on)} >= {"landscape_band",
                                                             "landscape_beta"}
    c_off, c_on = cost.estimate(off, 60000, 10000), cost.estimate(on, 60000, 10000)
    assert c_off.probe_examples == 0
    assert c_on.probe_examples == c_on.eval_points * landscape.PASSES * on.batch_size
    assert c_on.seconds() > c_off.seconds()
    assert c_on.parts()["probes"] == pytest.approx(
        c_on.probe_examples * cost.server_rates().train_example)
    # the budget: the d2l preset for 10 epochs, probing every PROBE_EVERY steps, at most 2x
    d2l = make_config(dataset="full", epochs=10)
    probed = d2l.replace(landscape=True, eval_every=landscape.PROBE_EVERY)
    ratio = (cost.estimate(probed, 60000, 10000).seconds()
             / cost.estimate(d2l, 60000, 10000).seconds())
    assert 1.0 < ratio <= 2.0


def test_a_hosted_server_refuses_an_expensive_probe_schedule_with_the_estimate():
    limits = Limits.hosted()
    ok = make_config(dataset="full", epochs=3, eval_every=landscape.PROBE_EVERY,
                     landscape=True)
    assert limits.check(ok, 60000, 10000) == []
    heavy = ok.replace(eval_every=1, epochs=3)  # a probe after every step
    without = heavy.replace(landscape=False)
    errs = limits.check(heavy, 60000, 10000)
    assert len(errs) == 1 and "would take about" in errs[0] and "probes worth" in errs[0]
    assert "turn off the probes" in errs[0]
    est = cost.estimate(heavy, 60000, 10000)
    assert f"{est.probe_examples:,}" in errs[0]
    assert cost.estimate(without, 60000, 10000).seconds() < est.seconds()


def test_the_grid_pairs_bn_with_no_bn_per_activation_at_one_lr():
    pts = GRIDS["landscape"](Config())
    assert [p.arm for p in pts] == ["bn_sigmoid", "none_sigmoid", "bn_relu", "none_relu"]
    assert all(p.config.landscape for p in pts)
    by = {p.arm: p.config for p in pts}
    assert by["bn_sigmoid"].lr == by["none_sigmoid"].lr == 1.0
    assert by["bn_relu"].lr == by["none_relu"].lr == 0.1
    assert by["none_relu"].norm == "none" and by["bn_relu"].activation == "relu"
    assert Config().config_id() == "bf21a9e8fbc5"  # the knob's default changed no id
    assert landscape_grid(Config(norm="none"))[0].config.norm == "bn"


def _summary(values: dict) -> pd.DataFrame:
    """A grid summary with known answers: arm -> (band, gradpred, beta, acc), CI 0.01, n 5."""
    rows = []
    for arm, (band, grad, beta, acc) in values.items():
        row = {"run": arm, "arm": arm, "n": 5, "runs": 5}
        for m, x in (("landscape_band_mean", band), ("landscape_gradpred_mean", grad),
                     ("landscape_beta_mean", beta), ("test_acc_precise", acc)):
            row[m], row[f"{m}_ci"] = x, 0.01
        rows.append(row)
    return pd.DataFrame(rows)


def test_the_reading_claims_only_separated_differences():
    s = _summary({"bn_sigmoid": (0.5, 1.0, 2.0, 0.8), "none_sigmoid": (2.0, 3.0, 2.005, 0.7),
                  "bn_relu": (1.0, 5.0, 9.0, 0.8), "none_relu": (0.2, 1.0, 3.0, 0.05)})
    r = readings.landscape(s)
    assert r.facts["sigmoid"] == "paper" and r.facts["relu"] == "reversed"
    assert r.comparison("bn_sigmoid", "none_sigmoid", "landscape_beta_mean").verdict == "same"
    assert r.at_chance == ("none_relu",)
    text = readings.landscape_text(r)
    assert "n = 5 paired seeds" in text and "the paper's ordering" in text
    assert "LeNet differs from the paper" in text and "stayed at chance" in text
    assert "β-smoothness no difference detectable" in text
    with pytest.raises(readings.UnknownArm):
        readings.landscape(s[s.arm != "bn_relu"])


def test_the_cli_sweep_writes_the_probes_over_training(tmp_path):
    from bnviz.cli import main
    out = tmp_path / "ls"
    rc = main(["sweep", "landscape", "--dataset", "subset", "--train-size", "64",
               "--batch-size", "32", "--epochs", "1", "--eval-every", "1", "--seeds", "1",
               "--no-store", "--out", str(out)])
    assert rc == 0
    rows = pd.read_csv(out / "landscape.csv")
    assert list(rows.columns) == list(landscape.CSV_COLUMNS)
    assert sorted(set(rows.arm)) == ["bn_relu", "bn_sigmoid", "none_relu", "none_sigmoid"]
    assert len(rows) == 4 * 2 and (rows.landscape_band >= 0).all()
    res = pd.read_csv(out / "results.csv")
    assert res.landscape_band_mean.notna().all()


@pytest.mark.slow
def test_the_cost_benchmark_runs_in_its_tiny_mode(tmp_path):
    """benchmarks/landscape.py end to end (the timing itself is never asserted)."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT
    out = tmp_path / "l.json"
    r = subprocess.run([sys.executable, "benchmarks/landscape.py", "--tiny", "--probe", "both",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["tiny"] and len(rep["rounds"]) == 1 and rep["median_ratio"] > 0
    assert rep["probe"] == "both"
    assert rep["rounds"][0]["probed_status"] == "finished"
    assert rep["estimate_s"]["probed"] > rep["estimate_s"]["plain"]
