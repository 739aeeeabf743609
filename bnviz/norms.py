"""Normalisation layers: d2l's BatchNorm from scratch, ghost (per-device) BN, and a factory."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance the way d2l writes them: over N for (N, D), over N, H, W
    (one number per channel, kept as (1, C, 1, 1)) for (N, C, H, W)."""
    if x.dim() == 2:
        mean = x.mean(dim=0)
        var = ((x - mean) ** 2).mean(dim=0)
    else:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return mean, var


class BatchNormScratch(nn.Module):
    """d2l's `batch_norm` as a module, with PyTorch's momentum convention.

    Unlike d2l, the running variance stores the unbiased estimate (as nn.BatchNorm does), so
    the two agree in eval mode too; normalisation itself uses the biased variance in both.
    With one example per channel the normalised values are exactly 0 — that is the lesson of
    batch size 1, so this class does not refuse it the way nn.BatchNorm1d does.
    """

    def __init__(self, num_features: int, num_dims: int, momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        shape = (num_features,) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.weight = nn.Parameter(torch.ones(shape))  # gamma
        self.bias = nn.Parameter(torch.zeros(shape))  # beta
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def normalize(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        if not self.training:
            x_hat = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
            return self.weight * x_hat + self.bias
        mean, var = batch_stats(x)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        if update:
            n = x.numel() // self.num_features
            unbiased = var * (n / (n - 1)) if n > 1 else var
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        return self.weight * x_hat + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x, update=True)


class GhostBatchNorm(nn.Module):
    """BN whose training statistics are taken separately on `slices` equal parts of the batch.

    This is exactly what plain BN does under DataParallel/DDP with one slice per device
    (Hoffer et al.'s ghost batch norm). The running statistics follow slice 0, as DDP's
    default broadcast of rank 0's buffers does.
    """

    def __init__(self, inner: nn.Module, slices: int):
        super().__init__()
        self.inner, self.slices = inner, slices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.slices == 1:
            return self.inner(x)
        chunks = x.chunk(self.slices)
        return torch.cat([self._part(c, update=(i == 0)) for i, c in enumerate(chunks)])

    def _part(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        m = self.inner
        if isinstance(m, BatchNormScratch):
            return m.normalize(x, update)
        if update:
            return m(x)
        return F.batch_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps)


def make_norm(kind: str, num_features: int, num_dims: int, *, momentum: float = 0.1,
              eps: float = 1e-5, groups: int = 2, slices: int = 1) -> nn.Module:
    """One normalisation layer for `num_features` channels (num_dims 4) or features (2)."""
    conv = num_dims == 4
    if kind == "bn":
        layer = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(num_features, eps, momentum)
    elif kind == "bn_scratch":
        layer = BatchNormScratch(num_features, num_dims, momentum, eps)
    elif kind == "layer":
        layer = nn.GroupNorm(1, num_features, eps) if conv else nn.LayerNorm(num_features, eps)
    elif kind == "group":
        layer = nn.GroupNorm(groups, num_features, eps)
    elif kind == "instance":
        # Per-sample, per-channel statistics; a fully-connected feature has only one value
        # per sample, so FC sites fall back to LayerNorm.
        layer = (nn.InstanceNorm2d(num_features, eps, momentum, affine=True) if conv
                 else nn.LayerNorm(num_features, eps))
    else:
        raise ValueError(f"unknown norm kind {kind!r}")
    if slices > 1 and kind in ("bn", "bn_scratch"):
        layer = GhostBatchNorm(layer, slices)
    return layer
