"""What SGD updates: the optimiser of a run (weight decay, which parameters train).

`make_optimizer(net, cfg)` is the trainer's one call. With the defaults (weight_decay 0,
train_only "all") it is exactly `torch.optim.SGD(trainable, lr)`, so stored runs train as
before. train_only "bn" trains the norms' gamma and beta alone (Frankle, Schwab & Morcos 2021,
"Training BatchNorm and Only BatchNorm"): every other parameter, the output layer included,
stays at its random initialisation. train_only "random" trains as many randomly chosen entries
of the other parameters (a seeded mask), with gamma and beta frozen at 1 and 0: the paper's
control, the same number of trained numbers put elsewhere.

Also here, the scale invariance that BN gives the layer before it (van Laarhoven 2017; Li &
Arora 2019), measured on one batch for the weight-decay page and the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bnviz.config import Config
from bnviz.weights import LAYERS

# The random mask's generator: the run's seed XOR this salt (a stream of its own, apart from
# the weights', the biases' and the dropout masks').
MASK_SEED_SALT = 0x3A5C << 48


def norm_params(net: nn.Module) -> list[torch.Tensor]:
    """The norms' gamma and beta (those that exist), in network order."""
    from bnviz.model import norm_layers, scale_shift
    return [p for _, m in norm_layers(net) for p in scale_shift(m) if p is not None]


def other_params(net: nn.Module) -> list[torch.Tensor]:
    """Every parameter that is not a norm's gamma or beta (conv/linear weights and biases)."""
    mine = {id(p) for p in norm_params(net)}
    return [p for p in net.parameters() if id(p) not in mine]


def train_only_problem(cfg: Config, net: nn.Module | None = None) -> str | None:
    """Why `cfg`'s train_only cannot run (no gamma/beta to train, or to count), else None."""
    if cfg.train_only == "all":
        return None
    if cfg.freeze_affine:
        return (f"train_only {cfg.train_only} needs gamma and beta to train (or to count), but "
                "freeze_affine freezes them: switch one of the two off")
    if net is None:
        from bnviz.model import build_lenet
        net = build_lenet(cfg)
    if not norm_params(net):
        return (f"train_only {cfg.train_only} needs norm layers with gamma and beta, and "
                f"norm {cfg.norm} at these sites has none")
    return None


def trained_count(cfg: Config) -> int:
    """How many numbers SGD updates in a run of `cfg` (what "random" matches to "bn")."""
    from bnviz.model import build_lenet
    net = build_lenet(cfg)
    if cfg.train_only == "all":
        return sum(p.numel() for p in net.parameters() if p.requires_grad)
    return sum(p.numel() for p in norm_params(net))


def random_masks(net: nn.Module, k: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, 0/1 mask) for the parameters outside the norms, k entries set in all,
    chosen uniformly without replacement from the run's own generator."""
    params = other_params(net)
    total = sum(p.numel() for p in params)
    if k > total:
        raise ValueError(f"cannot choose {k} of {total} weights")
    gen = torch.Generator().manual_seed((seed ^ MASK_SEED_SALT) & (2**64 - 1))
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.randperm(total, generator=gen)[:k]] = True
    out, at = [], 0
    for p in params:
        m = flat[at:at + p.numel()].view_as(p)
        at += p.numel()
        if m.any():
            out.append((p, m.to(p.device)))
    return out


class MaskedSGD(torch.optim.SGD):
    """SGD on whole tensors, then every entry outside its mask put back to the value it had
    at the start: those entries never change, bit for bit, whatever the gradient or the
    weight decay did to them in between."""

    def __init__(self, masked: list[tuple[torch.Tensor, torch.Tensor]], lr: float,
                 weight_decay: float = 0.0):
        super().__init__([p for p, _ in masked], lr=lr, weight_decay=weight_decay)
        self.masked = [(p, m, p.detach().clone()) for p, m in masked]

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for p, m, frozen in self.masked:
            p.copy_(torch.where(m, p, frozen))
        return loss


def make_optimizer(net: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """The run's SGD. Parameters that must stay at their initialisation stop requiring a
    gradient (as freeze_affine does), so nothing is computed for them. ValueError (a run's
    failure, in words) when train_only has nothing to train."""
    wd = cfg.weight_decay
    kw = {"weight_decay": wd} if wd else {}
    if cfg.train_only == "all":
        return torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                               **kw)
    why = train_only_problem(cfg, net)
    if why:
        raise ValueError(why)
    bn = norm_params(net)
    if cfg.train_only == "bn":
        for p in other_params(net):
            p.requires_grad_(False)
        return torch.optim.SGD(bn, lr=cfg.lr, **kw)
    if cfg.train_only == "random":
        k = sum(p.numel() for p in bn)
        for p in bn:
            p.requires_grad_(False)
        masked = random_masks(net, k, cfg.seed)
        keep = {id(p) for p, _ in masked}
        for p in other_params(net):
            if id(p) not in keep:
                p.requires_grad_(False)
        return MaskedSGD(masked, cfg.lr, wd)
    raise ValueError(f"unknown train_only {cfg.train_only!r}")


# -- scale invariance (the weight-decay page) --------------------------------------------------

def layer_weight(net: nn.Module, layer: str) -> torch.Tensor:
    return getattr(net, layer).weight


def weight_norms(net: nn.Module) -> dict[str, float]:
    """‖w‖₂ of each conv/linear layer's weight (biases apart)."""
    with torch.no_grad():
        return {s: float(layer_weight(net, s).norm()) for s in LAYERS if hasattr(net, s)}


def scale_invariant(cfg: Config, layer: str) -> bool:
    """Whether the loss cannot see the scale of `layer`'s weight: a BatchNorm-like norm that
    divides by the batch std follows it directly, before the activation."""
    from bnviz import norm_kinds
    if layer == "fc3":
        return False
    k = norm_kinds.kind_at(cfg, layer)
    return (k is not None and cfg.norm_position == "before_act"
            and (k.full_bn or k.id in ("bn_var", "layer", "group", "instance")))


@dataclass(frozen=True)
class Invariance:
    """One layer's scale test on one batch: the loss with the weight (and bias) times `c`."""
    layer: str
    invariant: bool  # what scale_invariant says
    c: float
    loss: float
    loss_scaled: float
    cos: float  # cos(∇w L, w) (with the bias: of the joint vector (w, b))
    weight_norm: float
    grad_norm: float

    @property
    def relative_change(self) -> float:
        return abs(self.loss_scaled - self.loss) / abs(self.loss)


def _batch(cfg: Config, n: int):
    """n training images of the bundled subset (always there, quick to load): one batch is
    all the scale test needs."""
    from bnviz import data as data_mod
    ds = data_mod.load("subset", 0, torch.device("cpu"), cfg.seed)
    return ds.train_x[:n], ds.train_y[:n]


def invariance(cfg: Config, c: float = 10.0, n: int = 128, net: nn.Module | None = None,
               batch=None, double: bool = True) -> list[Invariance]:
    """For each conv/linear layer of a freshly built `cfg` (or `net`), in train mode on one
    batch of `n` training images (the bundled subset's first): the loss, the loss with that layer's weight and bias times
    `c`, and cos(∇L, (w, b)). float64 by default, so rounding does not hide the result. BN's
    eps leaves a residue: it normalises by sqrt(var + eps), and var grows by c² but eps does
    not, so the loss moves by about eps / var (1e-6 at the default eps; 1e-9 at eps 1e-8)."""
    import torch.nn.functional as F
    from bnviz.evaluation import kept_buffers
    from bnviz.model import build_lenet
    net = build_lenet(cfg) if net is None else net
    if double:
        net = net.double()
    x, y = batch if batch is not None else _batch(cfg, n)
    x = x.to(next(net.parameters()).dtype)
    out = []
    net.train()
    for layer in LAYERS:
        mod = getattr(net, layer)
        ps = [p for p in (mod.weight, mod.bias) if p is not None]
        with kept_buffers(net):
            net.zero_grad(set_to_none=True)
            for p in ps:
                p.requires_grad_(True)
            loss = F.cross_entropy(net(x), y)
            grads = torch.autograd.grad(loss, ps)
        with torch.no_grad(), kept_buffers(net):
            saved = [p.detach().clone() for p in ps]
            for p in ps:
                p.mul_(c)
            scaled = float(F.cross_entropy(net(x), y))
            for p, s in zip(ps, saved):
                p.copy_(s)
        g = torch.cat([t.flatten() for t in grads])
        w = torch.cat([p.detach().flatten() for p in ps])
        cos = float(g @ w / (g.norm() * w.norm())) if g.norm() > 0 else 0.0
        out.append(Invariance(layer, scale_invariant(cfg, layer), c, loss.item(), scaled,
                              cos, float(mod.weight.detach().norm()), float(g.norm())))
    return out
