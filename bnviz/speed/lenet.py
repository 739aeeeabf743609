"""The accelerated LeNet, plugged onto a built model from outside bnviz.model.

`accelerate(net)` takes the plain nn.Sequential that bnviz.model.build_lenet returns and, in
place, swaps each nn.AvgPool2d(2, 2) for AvgPool2x2 (the same pooling as two GEMM-like passes,
2-4× faster on a CPU) and makes the model run each BatchNorm2d → Sigmoid → pool block in
training mode as one fused CPU kernel (fused.py) where it can. Module names, parameters and
state_dict stay the same, and the numbers are the same up to float rounding
(tests/test_fast_path.py, tests/test_fused.py). `training_setup()` is what a caller of the
Trainer uses: the model factory and the lines the run's summary should carry.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from bnviz.config import Config
from bnviz.model import build_lenet
from bnviz.speed import fused
from bnviz.speed.perf import tune_allocator


class _Pool2x2(torch.autograd.Function):
    """2×2 average pooling, stride 2, of an (N, C, H, W) tensor with even H and W: a GEMM with
    P (W × W/2, 0.5 where column w pools into w // 2) pools along W, then one add of each pair
    of rows (times 0.5) along H. Backward is the transpose: rows repeated, then a GEMM with Pᵀ."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(p)
        t = x @ p  # (N, C, H, W/2)
        n, c, h, w2 = t.shape
        t = t.view(n, c, h // 2, 2, w2)
        return (t[:, :, :, 0] + t[:, :, :, 1]).mul_(0.5)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (p,) = ctx.saved_tensors
        n, c, h2, w2 = g.shape
        rows = (g * 0.5).unsqueeze(3).expand(n, c, h2, 2, w2).reshape(n, c, 2 * h2, w2)
        return rows @ p.t(), None


class AvgPool2x2(nn.Module):
    """nn.AvgPool2d(2, 2) for LeNet's even-sized maps, computed as in _Pool2x2. Same numbers up
    to float rounding (the four values are summed in another order). On a CPU avg_pool2d's
    forward and backward were a quarter of a LeNet-BN step; this is 2-4× faster
    (`python benchmarks/bench.py`: the plain loops use nn.AvgPool2d). Other sizes fall back."""

    def __init__(self, size: int):
        super().__init__()
        half = size // 2
        p = torch.zeros(size, half)
        rows = torch.arange(2 * half)
        p[rows, rows // 2] = 0.5
        # Not in state_dict: a checkpoint looks the same as one with nn.AvgPool2d.
        self.register_buffer("p", p, persistent=False)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size % 2 or x.dim() != 4 or x.shape[-2:] != (self.size, self.size):
            return nn.functional.avg_pool2d(x, 2, 2)
        p = self.p if self.p.dtype == x.dtype else self.p.to(x.dtype)
        return _Pool2x2.apply(x.contiguous(), p)

    def extra_repr(self) -> str:
        return f"{self.size}×{self.size} → {self.size // 2}×{self.size // 2}, 2×2 mean"


class LeNet(nn.Sequential):
    """nn.Sequential that runs each BatchNorm2d → Sigmoid → AvgPool2x2 block in training mode
    as one fused CPU kernel (bnviz/speed/fused.py) when it can; otherwise, and always in eval mode,
    on CUDA or with a hook on the block, module by module. Same modules, names and
    state_dict as a plain nn.Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if i + 2 < len(mods) and isinstance(pool := mods[i + 2], AvgPool2x2) \
                    and fused.fusable(m, mods[i + 1], pool.size, x, pool):
                x = fused.bn_sigmoid_pool(m, x)
                i += 3
            else:
                x = m(x)
                i += 1
        return x


def accelerate(net: nn.Sequential) -> nn.Sequential:
    """Faster pooling and fused kernels on a LeNet from build_lenet, in place; returns it."""
    side = 28 + 2 * net.conv1.padding[0] - 4  # conv1's output, then each pool halves it
    for name in ("pool1", "pool2"):
        if isinstance(getattr(net, name), nn.AvgPool2d):
            setattr(net, name, AvgPool2x2(side))
        side = side // 2 - 4
    net.__class__ = LeNet
    return net


def build_fast(cfg: Config, seed: int | None = None) -> nn.Sequential:
    return accelerate(build_lenet(cfg, seed))


def training_setup(device: str | torch.device = "cpu"
                   ) -> tuple[Callable[[Config], nn.Module], dict[str, str]]:
    """(model factory, summary lines) for training on `device`: the allocator is tuned and,
    on a CPU, the fused kernels are built and checked once (fused.status() says why not)."""
    info = {"allocator": tune_allocator()}
    if torch.device(device).type == "cpu":
        info["fused"] = fused.status()
    else:
        info["fused"] = (f"off (fused kernels are for the CPU; {torch.device(device).type} runs "
                         "PyTorch's)")
    return build_fast, info


def training_kwargs(cfg: Config) -> dict:
    """Trainer(cfg, ..., **training_kwargs(cfg)): the fast model and its summary lines. A
    device that is not there is left for the Trainer to report as the run's failure."""
    from bnviz.trainer import resolve_device
    try:
        device = resolve_device(cfg.device)
    except RuntimeError:
        return {"build": build_fast}
    build, info = training_setup(device)
    return {"build": build, "info": info}
