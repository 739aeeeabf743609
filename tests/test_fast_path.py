"""The trainer's fast path (bnviz/speed/perf.py's allocator setting, AvgPool2x2) against the plain
path it replaces (system malloc, nn.AvgPool2d): same numbers within float tolerance. Speed
itself is measured by `benchmarks/bench.py`, never asserted here."""
import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz import data
from bnviz.config import make_config
from bnviz.model import build_lenet, norm_layers
from bnviz.speed.lenet import AvgPool2x2, build_fast, training_kwargs
from bnviz.speed.perf import allocator, tune_allocator
from bnviz.trainer import Trainer
from tests.conftest import ROOT


@pytest.mark.parametrize("size", [24, 8, 28, 10])
def test_pool_matches_avg_pool2d_forward_and_backward(size):
    torch.manual_seed(size)
    x = torch.randn(5, 3, size, size, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(5, 3, size // 2, size // 2)
    y, y_ref = AvgPool2x2(size)(x), nn.AvgPool2d(2, 2)(x_ref)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_pool_gradient_is_exact_in_double():
    x = torch.randn(2, 4, 24, 24, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(AvgPool2x2(24), (x,))


def test_pool_falls_back_on_other_shapes():
    pool = AvgPool2x2(24)
    for shape in [(2, 3, 9, 9), (2, 3, 24, 12), (3, 24, 24)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(pool(x), F.avg_pool2d(x, 2, 2))


def test_pool_buffers_stay_out_of_checkpoints():
    cfg = make_config("d2l-lenet-bn")
    fast, plain = build_fast(cfg).state_dict(), build_lenet(cfg).state_dict()
    assert list(fast) == list(plain)


def reference_run(cfg):
    """The plain path, written out: the trainer's data order and init, nn.AvgPool2d."""
    torch.manual_seed(cfg.seed)
    ds = data.load(cfg.dataset, cfg.train_size, "cpu", cfg.seed)
    net = build_lenet(cfg)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    perm = torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(cfg.seed))
    losses = []
    for b in range(len(ds.train_y) // cfg.batch_size):
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        loss = F.cross_entropy(net(ds.train_x[idx]), ds.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, net


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["d2l-lenet-bn", "d2l-lenet"])
def test_trainer_fast_path_matches_the_plain_path(preset):
    cfg = make_config(preset, dataset="subset", train_size=1024, batch_size=64, epochs=1,
                      device="cpu", seed=3)
    events = []
    summary = Trainer(cfg, [events.append], **training_kwargs(cfg)).run()
    assert summary["status"] == "finished", summary["reason"]
    assert summary["allocator"] == allocator() != "system malloc (not tuned)"
    ref_losses, ref_net = reference_run(cfg)
    losses = [e.loss for e in events if e.kind == "step"]
    assert len(losses) == len(ref_losses) == 16
    # 16 SGD steps at lr 1 (0.9) amplify rounding differences; they stay far below 1e-3.
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses),
                               rtol=1e-4, atol=1e-4)
    assert losses[-1] < losses[0]  # and it learned, so the comparison is not of noise
    snap = [e for e in events if e.kind == "snapshot"][-1].layers
    for site, m in norm_layers(ref_net):
        torch.testing.assert_close(torch.from_numpy(snap[site]["gamma"]),
                                   m.weight.detach(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(torch.from_numpy(snap[site]["running_var"]),
                                   m.running_var, rtol=1e-4, atol=1e-4)
    assert (snap != {}) == (cfg.norm != "none")


def test_allocator_setting_is_idempotent_and_can_be_turned_off():
    first = tune_allocator()
    assert tune_allocator() == first == allocator()
    code = "from bnviz.speed.perf import tune_allocator; print(tune_allocator())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, BNVIZ_ALLOCATOR="system"))
    assert out.returncode == 0 and "BNVIZ_ALLOCATOR=system" in out.stdout
    if sys.platform.startswith("linux"):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items()
                                             if k not in ("BNVIZ_ALLOCATOR", "LD_PRELOAD")})
        assert out.stdout.strip() == "glibc malloc, buffers kept in the heap"


@pytest.mark.slow
def test_runs_trained_side_by_side_match_a_run_trained_alone():
    """Two worker threads (the local server's default) must not share torch's global RNG:
    same config and seed, same numbers, whether a run trains alone or beside another."""
    from bnviz.runs.jobs import JobManager
    cfgs = [make_config("d2l-lenet-bn", dataset="subset", train_size=512, batch_size=64,
                        epochs=2, device="cpu", seed=5, dropout_fc=True),
            make_config("d2l-lenet", dataset="subset", train_size=512, batch_size=64,
                        epochs=2, device="cpu", seed=5)]
    # Both ways run on worker threads with one torch thread each: a run on another number of
    # threads sums in another order and may differ in the last bit, which is not the point.
    prev = torch.get_num_threads()
    solo = JobManager(workers=1, store=None, torch_threads=1)
    try:
        alone = []
        for c in cfgs:
            i = solo.submit(c, reuse=False)
            while solo.get(i).active:
                time.sleep(0.01)
            alone.append(solo.get(i).summary)
    finally:
        solo.shutdown()
    mgr = JobManager(workers=2, store=None, torch_threads=1)
    try:
        for _ in range(2):  # twice: two starts at once, then again with the other order
            ids = [mgr.submit(c, reuse=False) for c in cfgs]
            while any(mgr.get(i).active for i in ids):
                time.sleep(0.01)
            side = [mgr.get(i).summary for i in ids]
            for a, b in zip(alone, side):
                assert b["status"] == "finished"
                assert (a["train_loss"], a["test_acc"]) == (b["train_loss"], b["test_acc"])
            cfgs.reverse()
            alone.reverse()
    finally:
        mgr.shutdown()
        torch.set_num_threads(prev)


def test_seeded_dropout_is_dropout():
    from bnviz.model import SeededDropout
    d = SeededDropout(0.25, seed=1)
    x = torch.ones(200, 500)
    y = d(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    assert torch.equal(SeededDropout(0.25, seed=1)(x), y)  # the seed fixes the masks
    assert not torch.equal(SeededDropout(0.25, seed=2)(x), y)
    d.eval()
    assert torch.equal(d(x), x)
    x.requires_grad_()
    d.train()
    SeededDropout(0.25, seed=1)(x).sum().backward()
    assert torch.equal(x.grad, y)  # d/dx of x·mask/(1-p) is mask/(1-p)
