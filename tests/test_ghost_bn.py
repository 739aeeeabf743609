"""Ghost BN (per-device statistics) is computed in one reshape, and equals the loop over slices
that it replaces: for every kind it reshapes, at conv and FC shapes, down to 2 examples per BN."""
import copy

import pytest
import torch

from bnviz.norms import RESHAPED, GhostBatchNorm, make_norm

KINDS = ["bn", "bn_scratch", "bn_mean", "bn_var", "renorm"]
SHAPES = {4: (256, 6, 5, 5), 2: (256, 120)}


def ghost(kind, dims, slices):
    torch.manual_seed(0)
    g = make_norm(kind, SHAPES[dims][1], dims, slices=slices,
                  **({"renorm_rmax": 2.0, "renorm_dmax": 0.5, "renorm_warmup": 0}
                     if kind == "renorm" else {}))
    assert isinstance(g, GhostBatchNorm) and isinstance(g.inner, RESHAPED)
    with torch.no_grad():  # away from the identity, so a mix-up of gamma/beta/stats shows
        g.inner.weight.mul_(1.5).add_(torch.rand_like(g.inner.weight))
        g.inner.bias.add_(torch.randn_like(g.inner.bias))
        g.inner.running_mean.add_(0.2)
        g.inner.running_var.mul_(0.7)
    return g.train()


def by_loop(g, x):
    """The slices one after another, each normalised with its own statistics; slice 0 (device
    0) updates the running statistics, Batch Renorm's slices against the pre-step averages."""
    parts = torch.tensor_split(x, g.slices)
    if g.inner.__class__.__name__ == "BatchRenorm":
        ref = g.inner.reference()
        return torch.cat([g.inner.normalize(c, i == 0, ref) for i, c in enumerate(parts)])
    return torch.cat([g._part(c, update=(i == 0)) for i, c in enumerate(parts)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", [4, 2])
@pytest.mark.parametrize("per_bn", [2, 16])
def test_one_reshape_equals_the_loop_over_slices(kind, dims, per_bn, monkeypatch):
    a = ghost(kind, dims, 256 // per_bn)
    b = copy.deepcopy(a)
    torch.manual_seed(1)
    x = torch.randn(*SHAPES[dims]) * 2 + 1
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya_fn = a.forward
    monkeypatch.setattr(a, "_part", lambda *_: pytest.fail("the reshape path looped"))
    ya = ya_fn(xa)
    yb = by_loop(b, xb)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.allclose(ya, yb, atol=1e-4, rtol=1e-4)  # F.batch_norm rounds otherwise
    assert (xa.grad - xb.grad).abs().max() <= 1e-4 * xb.grad.abs().max()
    for p, q in zip(a.inner.parameters(), b.inner.parameters()):
        assert (p.grad - q.grad).abs().max() <= 1e-4 * q.grad.abs().max() + 1e-6
    for name in ("running_mean", "running_var"):
        ra, rb = getattr(a.inner, name), getattr(b.inner, name)
        assert torch.allclose(ra, rb, atol=1e-6, rtol=1e-6), name
    moved = a.inner.running_mean - make_norm(kind, SHAPES[dims][1], dims).running_mean - 0.2
    assert moved.abs().max() > 1e-3  # slice 0's statistics did move them


def test_per_slice_statistics_are_each_slices_own():
    g = ghost("bn_scratch", 2, 128)  # 2 examples per BN
    with torch.no_grad():
        g.inner.weight.fill_(1.0)
        g.inner.bias.zero_()
    x = torch.randn(256, 120) * 3 + 5
    y = g(x).reshape(128, 2, 120)
    # two values normalised by their own mean and biased variance: +-1 (less where the two
    # are within a few sqrt(eps) of each other)
    assert (y.abs() <= 1).all() and (y.abs().median() - 1).abs() < 1e-4
    assert torch.allclose(y.mean(1), torch.zeros(128, 120), atol=1e-3)


def test_a_batch_the_slices_do_not_divide_falls_back_to_the_loop(monkeypatch):
    g = ghost("bn", 2, 4)
    calls = []
    real = g._part
    monkeypatch.setattr(g, "_part", lambda x, update: calls.append(len(x)) or real(x, update))
    g(torch.randn(10, 120))
    assert calls == [3, 3, 2, 2]
