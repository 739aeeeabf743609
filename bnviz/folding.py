"""BN folding for deployment: each norm layer that directly follows a conv/linear layer is
merged into it, so the eval-mode network computes the same function with fewer layers.

In eval mode a BatchNorm is a fixed per-channel affine map, y = s·z + t with
s = gamma / sqrt(running_var + eps) and t = beta - running_mean·s. Applied to z = W x + b it
gives (s·W) x + (s·b + t): W' = W·gamma/sqrt(var + eps), b' = (b - mean)·gamma/sqrt(var + eps)
+ beta. A layer without bias (config `bias` off) gets one. The fold is exact in real numbers;
in float32 the folded and unfolded outputs agree to rounding (tests/test_folding.py: 1e-5).

What cannot be folded is refused with a ValueError: a norm after the activation (the
non-linearity sits between it and the layer), and norms whose eval mode is not a fixed
per-channel affine map (LayerNorm, GroupNorm, InstanceNorm: statistics of each example).
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from bnviz.norms import (BatchNormScratch, BatchRenorm, BookBatchNorm, GhostBatchNorm,
                         LiteBatchNorm)


def eval_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t), one number per channel, in float64, such that the layer in eval mode computes
    s·z + t; ValueError for a layer whose eval mode is not such a map."""
    m = norm.inner if isinstance(norm, GhostBatchNorm) else norm  # eval mode: the inner layer
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if m.running_mean is None:
            raise ValueError(f"{type(m).__name__} without running statistics normalises with "
                             "each batch's statistics in eval mode too: it cannot be folded")
        gamma = m.weight if m.affine else torch.ones_like(m.running_mean)
        beta = m.bias if m.affine else torch.zeros_like(m.running_mean)
        mean, var, eps = m.running_mean, m.running_var, m.eps
    elif isinstance(m, (BatchNormScratch, BatchRenorm, LiteBatchNorm)):
        gamma, beta, mean, var, eps = m.weight, m.bias, m.running_mean, m.running_var, m.eps
    elif isinstance(m, BookBatchNorm):
        gamma, beta, mean, var, eps = m.gamma, m.beta, m.moving_mean, m.moving_var, m.eps
    else:
        raise ValueError(f"cannot fold {type(m).__name__}: its eval mode uses each example's "
                         "own statistics (LayerNorm, GroupNorm, InstanceNorm), not a fixed "
                         "per-channel scale and shift; only BatchNorm-style layers fold")
    gamma, beta, mean, var = (t.detach().double().reshape(-1) for t in (gamma, beta, mean, var))
    if isinstance(m, LiteBatchNorm) and m.part == "mean":
        s = gamma  # gamma·(z - mean) + beta
    else:
        s = gamma / torch.sqrt(var + eps)
    if isinstance(m, LiteBatchNorm) and m.part == "variance":
        return s, beta  # gamma·z/std + beta: nothing subtracted
    return s, beta - mean * s


def fold_into(layer: nn.Module, norm: nn.Module) -> nn.Module:
    """A copy of the conv/linear `layer` with the eval-mode `norm` after it folded in."""
    s, t = eval_affine(norm)
    if s.numel() != layer.weight.shape[0]:
        raise ValueError(f"{type(norm).__name__} has {s.numel()} channels but the layer "
                         f"before it {layer.weight.shape[0]} outputs")
    folded = copy.deepcopy(layer)
    w = layer.weight.detach().double()
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(s)
    shape = (-1,) + (1,) * (w.dim() - 1)  # scale each output channel's weights
    with torch.no_grad():
        folded.weight = nn.Parameter((w * s.view(shape)).to(layer.weight.dtype))
        folded.bias = nn.Parameter((b * s + t).to(layer.weight.dtype))
    return folded


def fold_bn(net: nn.Sequential) -> nn.Sequential:
    """An eval-mode copy of a LeNet from bnviz.model.build_lenet (or any nn.Sequential of
    named layers) with every norm layer ("<site>_norm") that directly follows its conv/linear
    layer folded into it and removed. `net` itself is left as it was. ValueError, naming the
    site, for a norm that does not directly follow a conv/linear layer or cannot be folded."""
    kept: list[tuple[str, nn.Module]] = []
    for name, m in net.named_children():
        if not name.endswith("_norm"):
            kept.append((name, copy.deepcopy(m)))
            continue
        prev_name, prev = kept[-1] if kept else ("nothing", None)
        if not isinstance(prev, (nn.Conv2d, nn.Linear)):
            raise ValueError(f"cannot fold {name}: it follows {prev_name}, not a conv/linear "
                             "layer (a norm after the activation has the non-linearity "
                             "between it and the layer; norm_position before_act folds)")
        try:
            kept[-1] = (prev_name, fold_into(prev, m))
        except ValueError as e:
            raise ValueError(f"cannot fold {name}: {e}") from None
    return nn.Sequential(OrderedDict(kept)).eval()
