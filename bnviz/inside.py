"""Look inside a normalisation layer: one real batch through the model, what BN computes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bnviz import data as data_mod
from bnviz import norm_kinds
from bnviz.config import Config
from bnviz.model import build_lenet, norm_layers, running_stats, scale_shift
from bnviz.norms import batch_stats


@dataclass
class LayerIO:
    site: str
    input_shape: tuple[int, ...]
    axes: tuple[int, ...]  # the axes the mean/variance reduce over
    count: int  # values averaged into each channel's mean: N·H·W for conv, N for FC
    mean: np.ndarray  # (C,)
    var: np.ndarray  # (C,), biased, as used for normalising
    stats_shape: tuple[int, ...]  # (1, C, 1, 1) with keepdim for conv, (C,) for FC
    gamma_shape: tuple[int, ...]  # () for a kind without a learned scale
    out_mean: np.ndarray  # per channel, after normalising (≈ beta)
    out_std: np.ndarray  # per channel (≈ |gamma|, or 0 when nothing was left to normalise)
    output: np.ndarray  # the normalised values, flattened per channel: (C, count)


def shown_norm(norm: str) -> str:
    """The kind these views show for a config's norm: its own when it takes statistics over
    the batch (BN in its three forms, or any batch-dependent kind registered), else
    nn.BatchNorm — the views are about what a norm computes from the batch."""
    return norm if norm in norm_kinds.batch_dependent() else "bn"


def real_batch(cfg: Config, n: int, seed: int = 0) -> torch.Tensor:
    ds = data_mod.load(cfg.dataset, 0, "cpu", seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.train_y), generator=g)[:n]
    return ds.train_x[idx]


def capture(cfg: Config, x: torch.Tensor, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of every norm layer for batch `x`, in train mode (batch statistics)."""
    net = build_lenet(cfg, seed)
    net.train()
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [m.register_forward_hook(
        lambda _m, i, o, site=name[:-5]: seen.__setitem__(site, (i[0].detach(), o.detach())))
        for name, m in net.named_children() if name.endswith("_norm")]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def layer_io(cfg: Config, n: int, site: str, seed: int = 0) -> LayerIO:
    """What the norm at `site` computes on one real batch of `n` training images."""
    cfg = cfg.replace(devices=1)
    x = real_batch(cfg, n, seed)
    try:
        seen = capture(cfg, x, seed)
    except ValueError as e:  # nn.BatchNorm1d refuses N=1: use d2l's version to show why
        if "Expected more than 1 value" not in str(e):
            raise
        cfg = cfg.replace(norm="bn_scratch")
        seen = capture(cfg, x, seed)
    if site not in seen:
        raise ValueError(f"there is no norm layer at {site} in this configuration")
    inp, out = seen[site]
    mean, var = batch_stats(inp)
    axes = (0,) if inp.dim() == 2 else (0, 2, 3)
    c = inp.shape[1]
    per_channel = out.transpose(0, 1).reshape(c, -1)
    gamma, _ = scale_shift(dict(norm_layers(build_lenet(cfg)))[site])
    return LayerIO(site, tuple(inp.shape), axes, inp.numel() // c, mean.flatten().numpy(),
                   var.flatten().numpy(), tuple(mean.shape),
                   () if gamma is None else tuple(gamma.shape),
                   per_channel.mean(1).numpy(), per_channel.std(1, unbiased=False).numpy(),
                   per_channel.numpy())


def per_device_stats(cfg: Config, n: int, k: int, site: str, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel means and variances of the input of `site` on each of k slices of a batch
    (what each GPU's BN sees; sizes differ by at most one when k does not divide n, always k
    slices) and on the whole batch (what SyncBatchNorm uses)."""
    x = real_batch(cfg, n, seed)
    inp, _ = capture(cfg.replace(devices=1), x, seed)[site]
    parts = [batch_stats(p) for p in torch.tensor_split(inp, k)]
    means = np.stack([m.flatten().numpy() for m, _ in parts])
    vars_ = np.stack([v.flatten().numpy() for _, v in parts])
    whole_m, whole_v = batch_stats(inp)
    return means, vars_, whole_m.flatten().numpy(), whole_v.flatten().numpy()


@dataclass
class TwoExampleOutputs:
    """What a BN at a fully-connected site computes on a real batch of two images."""
    site: str
    eps: float
    diff: np.ndarray  # (C,): |x1 − x2| per unit, the input difference
    xhat: np.ndarray  # (2, C): the normalised values before gamma and beta
    predicted: np.ndarray  # (C,): |x̂| = 1 / sqrt(1 + 4·eps / (x1 − x2)²), from the formula
    output: np.ndarray  # (2, C): the layer's output, gamma · x̂ + beta (at init: gamma 1, beta 0)


def two_example_outputs(cfg: Config, site: str = "fc1", seed: int = 0) -> TwoExampleOutputs:
    """BN at a fully-connected site on a real batch of N = 2 training images: the mean is
    (x1 + x2)/2 and the biased variance ((x1 − x2)/2)², so x̂ = ±(x1 − x2)/2 / sqrt(((x1 −
    x2)/2)² + eps) — ±1 up to eps for every unit: after gamma and beta each unit carries one
    bit, gamma·(±1) + beta. x̂ is computed from the layer's captured input with BN's formula
    (batch_stats), so it does not depend on gamma and beta; `output` is what the layer gave."""
    if not site.startswith("fc"):
        raise ValueError(f"two_example_outputs is about the FC sites (fc1, fc2), got {site!r}")
    cfg = cfg.replace(devices=1, norm=cfg.norm if cfg.norm in norm_kinds.batchnorms()
                      else "bn", **{f"norm_{site}": True}, dropout_fc=False)
    x = real_batch(cfg, 2, seed)
    seen = capture(cfg, x, seed)
    inp, out = seen[site]
    mean, var = batch_stats(inp)
    xhat = (inp - mean) / torch.sqrt(var + cfg.eps)
    d = (inp[0] - inp[1]).abs()
    predicted = 1 / torch.sqrt(1 + 4 * cfg.eps / d.double() ** 2)
    return TwoExampleOutputs(site, cfg.eps, d.numpy(), xhat.numpy(), predicted.float().numpy(),
                             out.numpy())


def moving_stats_after_steps(cfg: Config, steps: int = 3, n: int = 64, seed: int = 0
                             ) -> dict[str, tuple[float, float]]:
    """Train-mode forward passes of `steps` real batches (no weight update): for each norm
    layer, the largest |running mean| and the mean running variance afterwards. Under
    simulated DataParallel the book's BN keeps exactly (0, 1): every update was lost on a
    replica."""
    net = build_lenet(cfg, seed)
    net.train()
    x = real_batch(cfg, n * steps, seed)
    with torch.no_grad():
        for b in x.split(n):
            net(b)
    return {site: (float(stats[0].abs().max()), float(stats[1].mean()))
            for site, m in norm_layers(net) if (stats := running_stats(m)) is not None}
