"""LeNet as d2l builds it, with every model knob of the config applied."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .config import Config
from .norms import BatchNormScratch, GhostBatchNorm, make_norm


def _act(name: str) -> nn.Module:
    return nn.Sigmoid() if name == "sigmoid" else nn.ReLU()


def site_layers(cfg: Config, site: str, width: int, num_dims: int) -> list[tuple[str, nn.Module]]:
    """The norm (or dropout) and activation that follow one conv/linear layer."""
    fc = site.startswith("fc")
    if fc and cfg.dropout_fc and getattr(cfg, f"norm_{site}"):
        # d2l's dropout chapter puts dropout after the activation.
        return [(f"{site}_act", _act(cfg.activation)),
                (f"{site}_dropout", nn.Dropout(cfg.dropout_p))]
    if cfg.norm == "none" or not getattr(cfg, f"norm_{site}"):
        return [(f"{site}_act", _act(cfg.activation))]
    norm = make_norm(cfg.norm, width, num_dims, momentum=cfg.momentum, eps=cfg.eps,
                     groups=cfg.groups, slices=cfg.devices)
    pair = [(f"{site}_norm", norm), (f"{site}_act", _act(cfg.activation))]
    return pair if cfg.norm_position == "before_act" else pair[::-1]


def feeds_norm(cfg: Config, site: str) -> bool:
    if cfg.norm == "none" or not getattr(cfg, f"norm_{site}"):
        return False
    return not (site.startswith("fc") and cfg.dropout_fc)


def build_lenet(cfg: Config) -> nn.Sequential:
    """Conv(1→6,k5) → [norm] → act → AvgPool2 → Conv(6→16,k5) → [norm] → act → AvgPool2 →
    Flatten → Linear(→120) → [norm] → act → Linear(120→84) → [norm] → act → Linear(84→10)."""
    def bias(site: str) -> bool:
        return cfg.bias or not feeds_norm(cfg, site)

    side = (28 + 2 * cfg.conv1_padding - 4) // 2
    side = (side - 4) // 2
    flat = 16 * side * side
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(1, 6, 5, padding=cfg.conv1_padding, bias=bias("conv1"))),
        *site_layers(cfg, "conv1", 6, 4),
        ("pool1", nn.AvgPool2d(2, 2)),
        ("conv2", nn.Conv2d(6, 16, 5, bias=bias("conv2"))),
        *site_layers(cfg, "conv2", 16, 4),
        ("pool2", nn.AvgPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(flat, 120, bias=bias("fc1"))),
        *site_layers(cfg, "fc1", 120, 2),
        ("fc2", nn.Linear(120, 84, bias=bias("fc2"))),
        *site_layers(cfg, "fc2", 84, 2),
        ("fc3", nn.Linear(84, 10)),
    ]
    net = nn.Sequential(OrderedDict(layers))
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
    if cfg.freeze_affine:
        for _, m in norm_layers(net):
            for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
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


def has_running_stats(m: nn.Module) -> bool:
    return isinstance(m, BatchNormScratch) or getattr(m, "running_mean", None) is not None
