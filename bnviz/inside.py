"""Look inside a normalisation layer: one real batch through the model, what BN computes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import data as data_mod
from .config import Config
from .model import build_lenet, build_seeded, norm_layers
from .norms import batch_stats


@dataclass
class LayerIO:
    site: str
    input_shape: tuple[int, ...]
    axes: tuple[int, ...]  # the axes the mean/variance reduce over
    count: int  # values averaged into each channel's mean: N·H·W for conv, N for FC
    mean: np.ndarray  # (C,)
    var: np.ndarray  # (C,), biased, as used for normalising
    stats_shape: tuple[int, ...]  # (1, C, 1, 1) with keepdim for conv, (C,) for FC
    gamma_shape: tuple[int, ...]
    out_mean: np.ndarray  # per channel, after normalising (≈ beta)
    out_std: np.ndarray  # per channel (≈ |gamma|, or 0 when nothing was left to normalise)
    output: np.ndarray  # the normalised values, flattened per channel: (C, count)


def real_batch(cfg: Config, n: int, seed: int = 0) -> torch.Tensor:
    ds = data_mod.load(cfg.dataset, 0, "cpu", seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.train_y), generator=g)[:n]
    return ds.train_x[idx]


def capture(cfg: Config, x: torch.Tensor, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of every norm layer for batch `x`, in train mode (batch statistics)."""
    net = build_seeded(cfg, seed)
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
    gamma = dict(norm_layers(build_lenet(cfg)))[site].weight
    return LayerIO(site, tuple(inp.shape), axes, inp.numel() // c, mean.flatten().numpy(),
                   var.flatten().numpy(), tuple(mean.shape), tuple(gamma.shape),
                   per_channel.mean(1).numpy(), per_channel.std(1, unbiased=False).numpy(),
                   per_channel.numpy())


def per_device_stats(cfg: Config, n: int, k: int, site: str, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel means and variances of the input of `site` on each of k equal slices of a
    batch (what each GPU's BN sees) and on the whole batch (what SyncBatchNorm uses)."""
    x = real_batch(cfg, n, seed)
    inp, _ = capture(cfg.replace(devices=1), x, seed)[site]
    parts = [batch_stats(p) for p in inp.chunk(k)]
    means = np.stack([m.flatten().numpy() for m, _ in parts])
    vars_ = np.stack([v.flatten().numpy() for _, v in parts])
    whole_m, whole_v = batch_stats(inp)
    return means, vars_, whole_m.flatten().numpy(), whole_v.flatten().numpy()
