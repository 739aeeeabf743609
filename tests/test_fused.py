"""The fused BatchNorm → sigmoid → pool kernels (bnviz/fused.c) against PyTorch's own modules:
outputs, gradients and running statistics within float tolerance; when LeNet takes the fused
path and when it must not; and the clear "off (why)" where the library cannot be built."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from bnviz.speed import fused
from bnviz.config import make_config
from bnviz.model import build_lenet
from bnviz.speed.lenet import LeNet, build_fast
from tests.conftest import ROOT

needs_fused = pytest.mark.skipif(fused.status() != "on",
                                 reason=f"fused kernels {fused.status()}")


def test_fused_kernels_are_on_wherever_they_can_be():
    """A kernel that fails its load-time check against PyTorch turns itself off (and the
    tests below skip): here that must fail loudly instead. CI installs gcc (setup.sh)."""
    if not sys.platform.startswith("linux") or not fused.compiler():
        assert fused.status().startswith("off (")
        pytest.skip(f"fused kernels {fused.status()}")
    assert os.environ.get("BNVIZ_FUSED", "") not in fused.OFF_VALUES
    assert fused.status() == "on"


def pair(c: int, momentum=0.1, track=True, seed=0):
    torch.manual_seed(seed)
    a = nn.BatchNorm2d(c, momentum=momentum, track_running_stats=track)
    with torch.no_grad():
        a.weight.uniform_(0.5, 1.5)
        a.bias.uniform_(-0.5, 0.5)
    b = nn.BatchNorm2d(c, momentum=momentum, track_running_stats=track)
    b.load_state_dict(a.state_dict())
    return a, b


def close(a, b, tol=2e-5):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@needs_fused
@pytest.mark.parametrize("shape", [(64, 6, 24, 24), (32, 16, 8, 8), (3, 4, 28, 28), (1, 6, 6, 6)])
@pytest.mark.parametrize("momentum,track", [(0.1, True), (None, True), (0.3, False)])
def test_fused_block_matches_pytorch(shape, momentum, track):
    n, c, h, w = shape
    fast, ref = pair(c, momentum, track)
    # conv outputs are far from zero-mean: the variance must not lose digits to the mean
    x = (torch.randn(shape) * 3 + 5).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(n, c, h // 2, w // 2)
    for _ in range(3):  # running statistics over several steps
        y = fused.bn_sigmoid_pool(fast, x)
        y_ref = fused.reference(ref, x_ref)
        close(y, y_ref)
    y.backward(g)
    y_ref.backward(g)
    close(x.grad, x_ref.grad, 1e-4)
    close(fast.weight.grad, ref.weight.grad, 1e-4)
    close(fast.bias.grad, ref.bias.grad, 1e-4)
    if track:
        close(fast.running_mean, ref.running_mean)
        close(fast.running_var, ref.running_var)
        assert int(fast.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    else:
        assert fast.running_mean is None


@needs_fused
def test_fused_gradients_flow_only_where_wanted():
    fast, ref = pair(6)
    fast.weight.requires_grad_(False)  # freeze_affine: gamma and beta stay put
    fast.bias.requires_grad_(False)
    x = torch.randn(8, 6, 12, 12, requires_grad=True)
    fused.bn_sigmoid_pool(fast, x).sum().backward()
    assert fast.weight.grad is None and fast.bias.grad is None and x.grad is not None
    with torch.no_grad():  # no graph at all, as in evaluation's "batch statistics" mode
        close(fused.bn_sigmoid_pool(fast, x), fused.reference(ref, x))


@needs_fused
def test_a_double_backward_is_refused_not_silently_wrong():
    fast, _ = pair(4)
    x = torch.randn(8, 4, 6, 6, requires_grad=True)
    y = fused.bn_sigmoid_pool(fast, x)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(y.sum(), x, create_graph=True)  # as a gradient penalty would
    torch.autograd.grad(fused.bn_sigmoid_pool(fast, x).sum(), x)  # a first backward is fine


@needs_fused
def test_only_float32_cpu_parameters_reach_the_c_code():
    bn, act = nn.BatchNorm2d(6), nn.Sigmoid()
    x = torch.randn(4, 6, 8, 8)
    assert fused.fusable(bn, act, 8, x)
    assert not fused.fusable(bn, act, 6, x)  # a pool for another size
    assert not fused.fusable(bn, nn.ReLU(), 8, x)
    assert not fused.fusable(bn.eval(), act, 8, x)
    bn.train()
    assert not fused.fusable(bn, act, 8, x.double())
    bn.half()  # the layer converted, the input not: the kernel must not write past fp16 buffers
    assert not fused.fusable(bn, act, 8, x)


@needs_fused
def test_lenet_takes_the_fused_path_and_matches_the_plain_model():
    cfg = make_config("d2l-lenet-bn")
    fast, plain = build_fast(cfg), build_lenet(cfg)
    assert isinstance(fast, LeNet) and type(plain) is nn.Sequential
    assert list(fast.state_dict()) == list(plain.state_dict())
    calls = []
    real = fused.bn_sigmoid_pool

    def counting(bn, x):
        calls.append(tuple(x.shape))
        return real(bn, x)

    x = torch.rand(32, 1, 28, 28)
    y_ref = torch.randint(0, 10, (32,))
    fused.bn_sigmoid_pool = counting
    try:
        out = fast(x)
    finally:
        fused.bn_sigmoid_pool = real
    assert calls == [(32, 6, 24, 24), (32, 16, 8, 8)]  # both conv blocks, fused
    out_ref = plain(x)
    close(out, out_ref, 1e-4)
    nn.functional.cross_entropy(out, y_ref).backward()
    nn.functional.cross_entropy(out_ref, y_ref).backward()
    for (name, p), q in zip(fast.named_parameters(), plain.parameters()):
        close(p.grad, q.grad, 1e-4)
    fast.eval()
    plain.eval()
    close(fast(x), plain(x), 1e-4)  # eval mode: module by module, running statistics


@needs_fused
def test_a_hook_on_the_block_gets_the_unfused_path():
    """bnviz's probes (inside.py, evaluation) hook norm layers to see their outputs: a fused
    block has no BN output to show, so a hooked block runs module by module."""
    net = build_fast(make_config("d2l-lenet-bn"))
    seen = []
    h = net.conv1_norm.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        net(torch.rand(4, 1, 28, 28))
    finally:
        h.remove()
    assert seen == [(4, 6, 24, 24)]


def fused_status_in(env: dict, first: str = "") -> str:
    code = f"import torch; from bnviz.speed import fused; {first}print(fused.status())"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
def test_without_a_compiler_or_when_turned_off_it_says_why_and_training_still_works(tmp_path):
    assert fused_status_in({"BNVIZ_FUSED": "0"}) == "off (BNVIZ_FUSED=0)"
    bad = tmp_path / "cc"
    bad.write_text("#!/bin/sh\necho 'cc: error: this compiler is broken' >&2\nexit 1\n")
    bad.chmod(0o755)
    status = fused_status_in({"CC": str(bad), "BNVIZ_CACHE_DIR": str(tmp_path / "cache")})
    assert status == "off (compiling bnviz/speed/fused.c failed: cc: error: this compiler is broken)"
    # and a run in that state trains with PyTorch's ops, saying so in its summary
    code = ("from bnviz.config import make_config; from bnviz.trainer import Trainer; "
            "from bnviz.speed.lenet import training_kwargs; "
            "c = make_config(dataset='subset', train_size=256, epochs=1); "
            "s = Trainer(c, **training_kwargs(c)).run(); "
            "print(s['status'], '|', s['fused'])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "BNVIZ_FUSED": "off"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "finished | off (BNVIZ_FUSED=0)"


@pytest.mark.slow
def test_the_library_is_built_once_and_reused(tmp_path):
    if not fused.compiler():
        pytest.skip("no C compiler on PATH")
    env = {"BNVIZ_CACHE_DIR": str(tmp_path)}
    # first asked for under no_grad (evaluation's first forward can be): the load-time check
    # against PyTorch still runs its backward
    assert fused_status_in(env, "torch.set_grad_enabled(False); ") == "on"
    built = list((tmp_path / "fused").glob("*.so"))
    assert len(built) == 1
    assert built[0].stat().st_mode & 0o555 == 0o555  # others sharing the cache can load it
    stamp = built[0].stat().st_mtime_ns
    assert fused_status_in(env) == "on"
    # the same file, untouched, and no temporary build files left behind
    assert [p.stat().st_mtime_ns for p in (tmp_path / "fused").iterdir()] == [stamp]
