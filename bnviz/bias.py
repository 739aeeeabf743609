"""Bias before BN: what BN's mean subtraction does to the bias of the layer before it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bnviz import data as data_mod
from bnviz.config import SITES, Config
from bnviz.inside import real_batch
from bnviz.model import build_lenet, cancels_bias, count_params


@dataclass
class BiasGradients:
    site: str
    bias_grad: float  # largest |∂loss/∂b| over the layer's units
    weight_grad: float  # largest |∂loss/∂W| of the same layer, for scale
    cancelled: bool  # a BN directly follows the layer before its activation


def bias_gradients(cfg: Config, n: int = 64) -> list[BiasGradients]:
    """One real training batch through the model with its biases on, in train mode: the
    gradient of each layer's bias. Where BN follows the layer it is 0 up to float rounding —
    the loss does not depend on that bias at all."""
    cfg = cfg.replace(bias=True, devices=1)
    net = build_lenet(cfg)
    net.train()
    x = real_batch(cfg, n, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    y = torch.randint(0, 10, (n,), generator=gen)  # any targets: the claim holds for all
    F.cross_entropy(net(x), y).backward()
    out = []
    for site in SITES:
        layer = getattr(net, site)
        out.append(BiasGradients(site, float(layer.bias.grad.abs().max()),
                                 float(layer.weight.grad.abs().max()), cancels_bias(cfg, site)))
    return out


def parameter_counts(cfg: Config) -> tuple[int, int]:
    """Parameters with every bias, and without the biases that a BN cancels."""
    return (count_params(build_lenet(cfg.replace(bias=True))),
            count_params(build_lenet(cfg.replace(bias=False))))


def loss_difference(view_on, view_off, first: int | None = None) -> float:
    """Largest |loss with bias − loss without| over the training steps two runs share (over
    the first `first` steps only, if given)."""
    a, b = view_on.steps, view_off.steps
    k = min(len(a), len(b), first or len(a))
    if k == 0:
        return float("nan")
    return float(np.abs(a[:k, 2] - b[:k, 2]).max())


@dataclass
class Equivalence:
    steps: int
    dtype: str
    loss_diff: float  # largest |loss with bias − loss without| over the steps
    weight_diff: float  # largest |weight difference| after the steps, over conv/linear layers
    first_loss: float
    last_loss: float


def bias_equivalence(cfg: Config, steps: int = 20, batch: int = 64,
                     dtype: torch.dtype = torch.float64) -> Equivalence:
    """Train the two arms (bias on / off, identical weights) for `steps` SGD steps on the same
    real batches. In float64 the losses agree to ~1e-13: where BN cancels the biases the two
    models are one function of their weights, and the rest is rounding. (In float32 the same
    rounding, ~1e-7 a step, is amplified by lr 1.0 over thousands of steps: the long runs' loss
    curves drift apart by up to ~1e-2 while their final metrics agree.)"""
    cfg = cfg.replace(devices=1)
    gen = torch.Generator().manual_seed(cfg.seed)
    ds = data_mod.load(cfg.dataset, 0, "cpu", cfg.seed)
    idx = torch.randperm(len(ds.train_y), generator=gen)[:steps * batch]
    x, y = ds.train_x[idx].to(dtype), ds.train_y[idx]
    runs = []
    for bias in (True, False):
        net = build_lenet(cfg.replace(bias=bias)).to(dtype).train()
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
        losses = []
        for k in range(steps):
            loss = F.cross_entropy(net(x[k * batch:(k + 1) * batch]), y[k * batch:(k + 1) * batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((np.array(losses), net))
    (la, a), (lb, b) = runs
    wdiff = max(float((getattr(a, s).weight - getattr(b, s).weight).detach().abs().max())
                for s in SITES)
    return Equivalence(steps, str(dtype).replace("torch.", ""), float(np.abs(la - lb).max()),
                       wdiff, float(la[0]), float(la[-1]))
