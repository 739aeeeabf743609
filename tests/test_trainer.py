import math
import threading

import pytest
import torch

from bnviz import data
from bnviz.config import make_config
from bnviz.evaluation import evaluate, precise_stats
from bnviz.model import build_lenet
from bnviz.trainer import Trainer, train


def events_of(cfg, **kw):
    ev = []
    summary = train(cfg, [ev.append], **kw)
    return summary, ev


@pytest.mark.slow
def test_event_stream_order_and_summary(tiny):
    s, ev = events_of(make_config(**tiny, eval_every=4))
    kinds = [e.kind for e in ev]
    assert kinds[0] == "started" and kinds[-1] == "ended" and kinds.count("ended") == 1
    steps = [e for e in ev if e.kind == "step"]
    assert [e.iteration for e in steps] == list(range(1, 9))
    assert sum(k == "eval" for k in kinds) == 2 and "snapshot" in kinds and "epoch" in kinds
    assert s["status"] == "finished" and s["data_source"] == "subset"
    assert 0 < s["train_acc"] <= 1 and s["examples_per_sec"] > 0
    snap = [e for e in ev if e.kind == "snapshot"][-1]
    assert snap.layers["conv1"]["gamma"].shape == (6,) and "running_var" in snap.layers["fc2"]


@pytest.mark.slow
def test_learning_actually_happens():
    s = train(make_config(dataset="subset", train_size=2000, epochs=3, batch_size=64))
    assert s["test_acc"] > 0.55 and s["train_acc"] > 0.6


@pytest.mark.slow
def test_deterministic_on_cpu(tiny):
    _, a = events_of(make_config(**tiny, seed=7))
    _, b = events_of(make_config(**tiny, seed=7))
    _, c = events_of(make_config(**tiny, seed=8))
    la = [e.loss for e in a if e.kind == "step"]
    assert la == [e.loss for e in b if e.kind == "step"]
    assert la != [e.loss for e in c if e.kind == "step"]


def test_batch_of_one_with_nn_batchnorm_ends_with_an_explanation(tiny):
    s, ev = events_of(make_config(**{**tiny, "batch_size": 1, "train_size": 20}))
    assert s["status"] == "failed"
    assert "batch of one example" in s["reason"] and "conv layers only" in s["reason"]
    assert ev[-1].kind == "ended"


@pytest.mark.slow
def test_batch_of_one_scratch_trains_to_chance(tiny):
    s = train(make_config(**{**tiny, "batch_size": 1, "train_size": 200}, norm="bn_scratch"))
    assert s["status"] == "finished"
    # every FC unit is normalised to exactly 0, so the output ignores the image
    assert s["test_acc"] == pytest.approx(0.1, abs=0.02)


@pytest.mark.slow
def test_batch_of_one_conv_only_bn_trains(tiny):
    s = train(make_config(**{**tiny, "batch_size": 1, "train_size": 500}, norm_fc1=False,
                          norm_fc2=False, lr=0.02, activation="relu"))
    assert s["status"] == "finished" and s["test_acc"] > 0.3


def test_divergence_is_detected(tiny):
    s = train(make_config(**tiny, lr=100.0))
    assert s["status"] == "diverged" and "learning rate 100" in s["reason"]


def test_stop_ends_within_one_step(tiny):
    stop = threading.Event()
    steps = []

    def listener(e):
        if e.kind == "step":
            steps.append(e.iteration)
            stop.set()
    s = Trainer(make_config(**{**tiny, "batch_size": 8}), [listener], stop=stop).run()
    assert s["status"] == "stopped"
    # The first step is reported at once; the stop set then is seen before the next step.
    assert s["iterations"] == steps[-1] == 1


def test_stop_from_another_thread(tiny):
    stop = threading.Event()
    seen = []

    def listener(e):
        seen.append(e)
    t = threading.Thread(target=lambda: Trainer(make_config(**{**tiny, "epochs": 50}),
                                                [listener], stop=stop).run())
    t.start()
    while not any(e.kind == "step" for e in seen):
        t.join(0.01)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert seen[-1].kind == "ended" and seen[-1].status == "stopped"
    steps = [e.iteration for e in seen if e.kind == "step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 50 * 8


def test_bad_device_fails_cleanly(tiny):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    s = train(make_config(**{**tiny, "device": "cuda"}))
    assert s["status"] == "failed" and "no CUDA GPU" in s["reason"]


def test_precise_stats_equal_population_statistics():
    torch.manual_seed(0)
    net = build_lenet(make_config())
    x = data.load("subset").train_x[:96]
    got = precise_stats(net, x, batch_size=96)  # one batch: train mode normalises by it
    acts = {}
    hook = net.fc1_norm.register_forward_hook(lambda m, i, o: acts.setdefault("fc1", i[0]))
    net.train()
    with torch.no_grad():
        net(x)
    hook.remove()
    mean, var, n = got["fc1"]
    assert n == 96
    assert torch.allclose(mean, acts["fc1"].mean(0), atol=1e-5)
    assert torch.allclose(var, acts["fc1"].var(0, unbiased=True), atol=1e-5)
    assert got["conv1"][2] == 96 * 24 * 24


def test_eval_modes_leave_the_model_unchanged():
    net = build_lenet(make_config())
    ds = data.load("subset")
    net.train()
    with torch.no_grad():
        net(ds.train_x[:256])  # give the running stats something to hold
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = {how: evaluate(net, ds.test_x[:300], ds.test_y[:300], how, batch_size=64,
                         train_x=ds.train_x, precise_samples=512)
           for how in ("running", "precise", "batch")}
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(0 <= acc <= 1 for _, acc in res.values())
    assert not math.isnan(res["precise"][0])
