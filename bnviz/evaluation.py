"""Test accuracy three ways: running statistics, PreciseBN, and batch statistics."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from bnviz.model import norm_layers, running_stats

EVAL_CHUNK = 2000


def batches(n: int, size: int, min_last: int = 2) -> list[slice]:
    """Consecutive slices of `size` covering range(n). A last slice of fewer than `min_last`
    examples is merged into the one before: with batch statistics a batch of one normalises
    every FC unit to 0 (nn.BatchNorm1d refuses it), and 10,000 test images at batch 9 leave
    exactly one over. On k simulated devices (ghost BN) every device needs 2: min_last 2k
    (min_batch), as bnviz.schedule.epoch_plan drops such a last batch in training."""
    size = max(1, size)
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < min_last and size > 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, starts[1:] + [n])]


def min_batch(net: nn.Module) -> int:
    """The fewest examples a batch needs in train mode: 2 per slice of the net's ghost BN
    layers (bnviz.norms.GhostBatchNorm, one slice per simulated device), 2 without any."""
    from bnviz.norms import GhostBatchNorm
    return 2 * max((m.slices for m in net.modules() if isinstance(m, GhostBatchNorm)),
                   default=1)


@contextlib.contextmanager
def kept_buffers(net: nn.Module):
    """Run a block that may touch norm statistics, then put them back exactly: every buffer,
    and every plain tensor attribute of a norm layer (the book's BN, BookBatchNorm, keeps its
    moving statistics as attributes that a train-mode forward reassigns)."""
    saved = [(b, b.detach().clone()) for b in net.buffers()]
    plain = [(m, name, t.detach().clone()) for _, m in norm_layers(net)
             for name, t in vars(m).items() if isinstance(t, torch.Tensor)]
    # Random streams of the model's own (dropout masks, noise): a probe's train-mode forward
    # must not move them, or the next training step would draw other masks.
    streams = {(m, name): g.get_state() for m in net.modules()
               for name, g in vars(m).items() if isinstance(g, torch.Generator)}
    lazy = [(m, name) for m in net.modules() for name, g in vars(m).items()
            if g is None and name.endswith("_gen")]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
        for m, name, v in plain:
            setattr(m, name, v)
        for (m, name), state in streams.items():
            getattr(m, name).set_state(state)
        for m, name in lazy:  # made during the block: made again, from its seed, when needed
            setattr(m, name, None)


@contextlib.contextmanager
def mode(net: nn.Module, norms_train: bool):
    """Everything in eval mode (no dropout); norm layers in train mode if `norms_train`."""
    was = net.training
    net.eval()
    if norms_train:
        for name, m in net.named_children():
            if name.endswith("_norm"):
                m.train()
    try:
        yield
    finally:
        net.train(was)


@torch.no_grad()
def loss_acc(net: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK,
             min_last: int = 2) -> tuple[float, float]:
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for b in batches(len(y), chunk, min_last):
        out = net(x[b])
        loss += F.cross_entropy(out, y[b], reduction="sum")
        correct += (out.argmax(1) == y[b]).sum()
    n = max(len(y), 1)
    return loss.item() / n, correct.item() / n


@torch.no_grad()
def precise_stats(net: nn.Module, x: torch.Tensor, batch_size: int
                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """PreciseBN: the population mean/variance of each BN layer's input over `x`, for the
    current weights (Wu & Johnson 2021). Batches go through in train mode, as in training."""
    sums: dict[str, list] = {}
    hooks = []
    for name, m in net.named_children():
        if not name.endswith("_norm"):
            continue
        site = name[: -len("_norm")]

        def hook(_m, inp, _out, site=site):
            t = inp[0]
            dims = (0,) if t.dim() == 2 else (0, 2, 3)
            n = t.numel() // t.shape[1]
            s = sums.setdefault(site, [0.0, 0.0, 0])
            s[0] = s[0] + t.sum(dims, dtype=torch.float64)
            s[1] = s[1] + (t.double() ** 2).sum(dims)
            s[2] += n
        hooks.append(m.register_forward_hook(hook))
    try:
        with kept_buffers(net), mode(net, norms_train=True):
            for b in batches(len(x), batch_size, min_batch(net)):
                net(x[b])
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for site, (s1, s2, n) in sums.items():
        mean = s1 / n
        var = (s2 / n - mean ** 2).clamp_min(0) * (n / max(n - 1, 1))
        out[site] = (mean.float(), var.float(), n)
    return out


def set_running_stats(net: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor, int]]):
    with torch.no_grad():
        for site, m in norm_layers(net):
            if site in stats and (running := running_stats(m)) is not None:
                mean, var, _ = stats[site]
                running[0].copy_(mean.view_as(running[0]))
                running[1].copy_(var.view_as(running[1]))


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, how: str, *, batch_size: int,
             train_x: torch.Tensor | None = None, precise_samples: int = 4096
             ) -> tuple[float, float]:
    """Test loss and accuracy with the BN statistics `how` says; leaves the model unchanged."""
    if how == "running":
        with mode(net, norms_train=False):
            return loss_acc(net, x, y)
    if how == "batch":
        try:
            with kept_buffers(net), mode(net, norms_train=True):
                return loss_acc(net, x, y, chunk=batch_size, min_last=min_batch(net))
        except ValueError:  # BatchNorm1d refuses one example per channel
            return math.nan, math.nan
    if how == "precise":
        stats = precise_stats(net, train_x[:precise_samples], max(batch_size, 2))
        with kept_buffers(net):
            set_running_stats(net, stats)
            with mode(net, norms_train=False):
                return loss_acc(net, x, y)
    raise ValueError(f"unknown eval mode {how!r}")
