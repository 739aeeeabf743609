"""LeNet as d2l builds it, with every model knob of the config applied."""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import nn

from bnviz import norm_kinds
from bnviz.config import Config
from bnviz.norms import GhostBatchNorm, make_norm


# Weights and biases are drawn from generators of the run's own, seeded from its seed
# (init_generators), never from torch's global RNG: two runs built at once on two threads, or
# a page building a model while a worker does, cannot change each other's initial weights.

# The bias generator's seed is the run's seed XOR this salt: a separate stream from the weights'
# (which use the seed itself), and above every seed the config allows (< 2**31) and every
# SeededDropout seed (seed * 4 + site).
BIAS_SEED_SALT = 0xB1A5 << 48


def init_generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """(weight generator, bias generator) for a run's seed: two independent streams, so the
    weights are the same whether or not the layers have biases."""
    return (torch.Generator().manual_seed(seed & (2**64 - 1)),
            torch.Generator().manual_seed((seed ^ BIAS_SEED_SALT) & (2**64 - 1)))


class SeededDropout(nn.Dropout):
    """nn.Dropout whose masks come from the run's own generator, seeded from the run's seed:
    the same masks whatever other runs train at the same time. Same maths as F.dropout (zero
    with probability p, scale the rest by 1/(1-p)); a different random stream from it."""

    def __init__(self, p: float, seed: int):
        super().__init__(p)
        self.seed = seed
        self._gen: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p >= 1:
            return x * 0
        if self._gen is None or self._gen.device != x.device:
            self._gen = torch.Generator(device=x.device).manual_seed(self.seed)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self._gen)
        return x * keep.div_(1 - self.p)


def _act(name: str) -> nn.Module:
    return nn.Sigmoid() if name == "sigmoid" else nn.ReLU()


SITE_INDEX = {"conv1": 0, "conv2": 1, "fc1": 2, "fc2": 3}


def site_layers(cfg: Config, site: str, width: int, num_dims: int) -> list[tuple[str, nn.Module]]:
    """The norm (or dropout) and activation that follow one conv/linear layer."""
    fc = site.startswith("fc")
    if fc and cfg.dropout_fc and getattr(cfg, f"norm_{site}"):
        # d2l's dropout chapter puts dropout after the activation.
        return [(f"{site}_act", _act(cfg.activation)),
                (f"{site}_dropout", SeededDropout(cfg.dropout_p, cfg.seed * 4 + SITE_INDEX[site]))]
    if not feeds_norm(cfg, site):
        return [(f"{site}_act", _act(cfg.activation))]
    norm = make_norm(cfg.norm, width, num_dims, momentum=cfg.momentum, eps=cfg.eps,
                     groups=cfg.groups, slices=cfg.devices, **norm_kinds.knob_values(cfg))
    pair = [(f"{site}_norm", norm), (f"{site}_act", _act(cfg.activation))]
    return pair if cfg.norm_position == "before_act" else pair[::-1]


def feeds_norm(cfg: Config, site: str) -> bool:
    """Whether a norm layer follows this site at all (before or after the activation): the
    registry decides (norm_kinds.kind_at), for the model, the cost model and the pages."""
    return norm_kinds.kind_at(cfg, site) is not None


def cancels_bias(cfg: Config, site: str) -> bool:
    """Whether the norm at `site` cancels the bias of the conv/linear layer before it exactly:
    it must follow the layer directly, before the activation, and subtract a mean per channel
    (so a per-channel constant drops out): BatchNorm (ghost BN too: each slice's mean still
    removes a per-channel constant), or InstanceNorm at the conv sites (mean per sample and
    channel over H, W). LayerNorm, GroupNorm with fewer groups than channels, and a norm
    after the activation leave the bias's effect in place. Each kind's `cancels_bias` in
    bnviz/norm_kinds.py says which."""
    return norm_kinds.cancels_bias(cfg, site)


def _init_layers(net: nn.Module, seed: int) -> None:
    """xavier_uniform_ weights (as d2l) from one generator, PyTorch's default bias init
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from another. A bias is drawn for every conv/linear
    layer, in order, and copied only where the layer has one: with or without the biases that
    BN cancels, the weights and the remaining biases are the same numbers."""
    wgen, bgen = init_generators(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight, generator=wgen)
                bound = 1 / m.weight[0].numel() ** 0.5  # fan_in
                b = torch.empty(m.weight.shape[0]).uniform_(-bound, bound, generator=bgen)
                if m.bias is not None:
                    m.bias.copy_(b)


def build_lenet(cfg: Config, seed: int | None = None) -> nn.Sequential:
    """Conv(1→6,k5) → [norm] → act → AvgPool2 → Conv(6→16,k5) → [norm] → act → AvgPool2 →
    Flatten → Linear(→120) → [norm] → act → Linear(120→84) → [norm] → act → Linear(84→10),
    a plain nn.Sequential as the book builds it. (bnviz.speed.lenet.accelerate swaps in faster
    pooling and fused CPU kernels for training, with the same numbers.) The weights and biases are drawn
    from `seed` (default cfg.seed) with generators of their own (_init_layers): the same
    numbers every time, whatever else uses torch's global RNG, which this does not touch.
    `cfg.bias` off drops the biases that the following norm cancels (cancels_bias)."""
    def bias(site: str) -> bool:
        return cfg.bias or not cancels_bias(cfg, site)

    # Built uninitialised (skip_init: no draws from the global RNG), filled by _init_layers.
    conv = partial(nn.utils.skip_init, nn.Conv2d)
    linear = partial(nn.utils.skip_init, nn.Linear)

    side1 = 28 + 2 * cfg.conv1_padding - 4  # conv1's output
    side2 = side1 // 2 - 4  # conv2's output
    flat = 16 * (side2 // 2) ** 2

    layers: list[tuple[str, nn.Module]] = [
        ("conv1", conv(1, 6, 5, padding=cfg.conv1_padding, bias=bias("conv1"))),
        *site_layers(cfg, "conv1", 6, 4),
        ("pool1", nn.AvgPool2d(2, 2)),
        ("conv2", conv(6, 16, 5, bias=bias("conv2"))),
        *site_layers(cfg, "conv2", 16, 4),
        ("pool2", nn.AvgPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc1", linear(flat, 120, bias=bias("fc1"))),
        *site_layers(cfg, "fc1", 120, 2),
        ("fc2", linear(120, 84, bias=bias("fc2"))),
        *site_layers(cfg, "fc2", 84, 2),
        ("fc3", linear(84, 10)),
    ]
    net = nn.Sequential(OrderedDict(layers))
    _init_layers(net, cfg.seed if seed is None else seed)
    if cfg.freeze_affine:
        for _, m in norm_layers(net):
            for p in scale_shift(m):
                if p is not None:
                    p.requires_grad_(False)
    return net


def norm_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(site name, layer holding gamma/beta and any running stats) for each norm layer."""
    out = []
    for name, m in net.named_children():
        if name.endswith("_norm"):
            out.append((name[: -len("_norm")], m.inner if isinstance(m, GhostBatchNorm) else m))
    return out


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# A norm layer's gamma, beta and running statistics, found under the names its registry entry
# gives (make_norm tags each layer with its kind; a layer built elsewhere uses PyTorch's names).

def scale_shift(m: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(gamma, beta) of a norm layer from norm_layers(); None where it has no such parameter."""
    kind = norm_kinds.find(getattr(m, "norm_kind", None))
    names = (kind.scale, kind.shift) if kind else ("weight", "bias")
    return tuple(getattr(m, n, None) if n else None for n in names)


def running_stats(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(running mean, running variance) of a norm layer, or None if it keeps none."""
    kind = norm_kinds.find(getattr(m, "norm_kind", None))
    if kind is not None and not kind.running_stats:
        return None
    mean, var = (getattr(m, n, None) for n in (kind.stats if kind else
                                                ("running_mean", "running_var")))
    return None if mean is None else (mean, var)


def has_running_stats(m: nn.Module) -> bool:
    return running_stats(m) is not None
