"""M LeNets of one shape trained as one model (issue 23's batched trainer, first part).

The M models' channels sit side by side: the convolutions are grouped (`groups=M`), the linear
layers are batched matrix products, and each BatchNorm normalises its own model's channels (a
BatchNorm over M·C channels takes every channel's statistics separately, so each model's are
its own). Each model starts from the weights `bnviz.model.build_lenet` gives its own config
and seed, reads its own batches (its own permutation, as the Trainer draws it) and steps with
its own learning rate; one forward, one backward and one update serve all M. `model.py`
stays the book's LeNet; `unbatch` gives model m back as a plain LeNet with the same numbers,
so evaluation and everything after training are the ordinary code's.

What may differ between the models of one batch (`batch_key`): the seed and the learning
rate. Everything else that shapes the computation must be equal, or the configs go to
separate batches. Supported: nn.BatchNorm or no norm at any sites, before or after the
activation, sigmoid or ReLU, with or without the biases BN cancels, one device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bnviz.config import SITES, Config
from bnviz.model import build_lenet
from bnviz.speed import fused
from bnviz.speed.lenet import AvgPool2x2

# The knobs that may differ inside one batch; every other knob must be equal.
PER_RUN = ("seed", "lr")


def batch_key(cfg: Config) -> tuple | None:
    """Configs with equal keys can train as one batch; None: this config cannot be batched."""
    if cfg.norm not in ("bn", "none") or cfg.devices != 1 or cfg.dropout_fc \
            or cfg.freeze_affine or getattr(cfg, "train_only", "all") != "all" \
            or getattr(cfg, "weight_decay", 0.0) or getattr(cfg, "finetune_epochs", 0):
        return None
    return tuple(sorted((k, v) for k, v in cfg.to_dict().items() if k not in PER_RUN))


# On a CPU, batching pays only where a step is mostly Python and dispatch overhead: PyTorch's
# grouped convolution (backward above all) is several times slower per example than M separate
# ones, so at larger batches M runs trained apart are faster (benchmarks/batched.py measures
# the crossover; at batch 256 a batch of 5 trains at about half the speed of 5 runs apart).
CPU_MAX_BATCH = 4
# At most this many runs in one batched model (the CLI's grids, the dashboard's, the library
# build): the 5 seeds of a configuration and more, while a grid still arrives in a few waves.
MAX_BATCH = 10
SMALL_CPU_BATCH = 8  # up to this batch, convolutions one group at a time (BatchedLeNet._conv)


def pays(cfg: Config) -> bool:
    """Whether training `cfg` in a batch is faster than alone on its device: on a GPU always
    (one run leaves it mostly idle), on a CPU at batch sizes up to CPU_MAX_BATCH."""
    if cfg.device in ("cuda", "mps"):
        return True
    if cfg.device == "auto":
        import torch as _t
        if _t.cuda.is_available():
            return True
    return cfg.batch_size <= CPU_MAX_BATCH


class _BatchedLinear(torch.autograd.Function):
    """y[n, m] = W[m] x[n, m] + b[m] for x (N, M, I), W (M, O, I), b (M, O) or None: one batched
    matrix product over the M models, read and written in place in the (N, M, ·) layout the
    BatchNorms want, so no operand is copied or transposed into a new tensor (einsum did both,
    and autograd then cloned the weights' non-contiguous gradients: a third of a small-batch
    step's operations)."""

    @staticmethod
    def forward(ctx, x, w, b):
        n, m, _ = x.shape
        y = x.new_empty(n, m, w.shape[1])
        if b is None:
            torch.bmm(x.transpose(0, 1), w.transpose(1, 2), out=y.transpose(0, 1))
        else:
            torch.baddbmm(b.unsqueeze(1), x.transpose(0, 1), w.transpose(1, 2),
                          out=y.transpose(0, 1))
        ctx.save_for_backward(x, w)
        ctx.bias = b is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
        gt = g.transpose(0, 1)  # (M, N, O)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = x.new_empty(x.shape)
            torch.bmm(gt, w, out=gx.transpose(0, 1))
        if ctx.needs_input_grad[1]:
            gw = torch.bmm(gt.transpose(1, 2), x.transpose(0, 1))
        if ctx.bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


class BatchedLeNet(nn.Module):
    """M LeNets (configs equal but for seed and lr) as one module. Input (N, M, H, W): model
    m's batch in channel m; output (N, M, 10)."""

    def __init__(self, configs: list[Config]):
        super().__init__()
        keys = {batch_key(c) for c in configs}
        if None in keys or len(keys) != 1:
            raise ValueError("these configs cannot train as one batch (batch_key differs)")
        self.configs = list(configs)
        self.m = m = len(configs)
        nets = [build_lenet(c) for c in configs]
        first = nets[0]
        self.cfg = cfg = configs[0]
        self.act = torch.sigmoid if cfg.activation == "sigmoid" else torch.relu
        self.before = cfg.norm_position == "before_act"
        c1, c2 = first.conv1, first.conv2
        # The fast path of bnviz.speed.lenet: pooling as GEMMs, and BN → sigmoid → pool as one
        # fused CPU kernel where it applies (the same numbers up to float rounding).
        side = 28 + 2 * c1.padding[0] - 4
        self.pool1, self.pool2 = AvgPool2x2(side), AvgPool2x2(side // 2 - 4)
        self._sigmoid = nn.Sigmoid() if cfg.activation == "sigmoid" else None
        self.conv1 = nn.Conv2d(m, 6 * m, 5, padding=c1.padding, groups=m,
                               bias=c1.bias is not None)
        self.conv2 = nn.Conv2d(6 * m, 16 * m, 5, groups=m, bias=c2.bias is not None)
        with torch.no_grad():
            for name in ("conv1", "conv2"):
                mine = getattr(self, name)
                mine.weight.copy_(torch.cat([getattr(n, name).weight for n in nets]))
                if mine.bias is not None:
                    mine.bias.copy_(torch.cat([getattr(n, name).bias for n in nets]))
        self.fc_w = nn.ParameterDict()
        self.fc_b = nn.ParameterDict()
        for name in ("fc1", "fc2", "fc3"):
            self.fc_w[name] = nn.Parameter(torch.stack([getattr(n, name).weight.detach()
                                                        for n in nets]).clone())
            if getattr(first, name).bias is not None:
                self.fc_b[name] = nn.Parameter(torch.stack([getattr(n, name).bias.detach()
                                                            for n in nets]).clone())
        self.norms = nn.ModuleDict()
        for site in SITES:
            layer = getattr(first, f"{site}_norm", None)
            if layer is None:
                continue
            width = layer.num_features
            bn = (nn.BatchNorm2d if site.startswith("conv") else nn.BatchNorm1d)(
                width * m, layer.eps, layer.momentum)
            with torch.no_grad():
                bn.weight.copy_(torch.cat([getattr(n, f"{site}_norm").weight for n in nets]))
                bn.bias.copy_(torch.cat([getattr(n, f"{site}_norm").bias for n in nets]))
            self.norms[site] = bn

    def _site(self, site: str, x: torch.Tensor) -> torch.Tensor:
        norm = self.norms[site] if site in self.norms else None
        if norm is None:
            return self.act(x)
        if x.dim() == 3:  # (N, M, D): BatchNorm1d over M·D features
            n, m, d = x.shape
            def f(t): return norm(t.reshape(n, m * d)).reshape(n, m, d)
        else:
            f = norm
        return self.act(f(x)) if self.before else f(self.act(x))

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return _BatchedLinear.apply(x, self.fc_w[name], self.fc_b[name] if name in self.fc_b
                                    else None)

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """conv (groups=M) of x. On a CPU at small batches oneDNN's grouped convolution costs
        about 0.3 ms a call whatever its size; PyTorch's own convolution, one model's group at
        a time, is faster there (and gives the same numbers)."""
        if x.device.type != "cpu" or x.shape[0] > SMALL_CPU_BATCH:
            return conv(x)
        k, m = conv.kernel_size, self.m
        bias = conv.bias.chunk(m) if conv.bias is not None else [None] * m
        return torch.cat([torch._C._nn.thnn_conv2d(a, w, k, b, 1, conv.padding)
                          for a, w, b in zip(x.chunk(m, 1), conv.weight.chunk(m), bias)], 1)

    def _conv_block(self, site: str, x: torch.Tensor, pool: AvgPool2x2) -> torch.Tensor:
        norm = self.norms[site] if site in self.norms else None
        if norm is not None and self.before and self._sigmoid is not None \
                and fused.fusable(norm, self._sigmoid, pool.size, x, pool):
            return fused.bn_sigmoid_pool(norm, x)
        return pool(self._site(site, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self._conv_block("conv1", self._conv(self.conv1, x), self.pool1)
        x = self._conv_block("conv2", self._conv(self.conv2, x), self.pool2)
        x = x.reshape(n, self.m, -1)  # each model's 16 channels × 4 × 4, in nn.Flatten's order
        x = self._site("fc1", self._linear("fc1", x))
        x = self._site("fc2", self._linear("fc2", x))
        return self._linear("fc3", x)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The sum of the M models' mean cross-entropies: each model's gradient is its own."""
        n, m, k = out.shape
        per = F.cross_entropy(out.reshape(n * m, k), y.reshape(n * m), reduction="none")
        return per.reshape(n, m).mean(0).sum()

    def losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, m, k = out.shape
        return F.cross_entropy(out.reshape(n * m, k), y.reshape(n * m),
                               reduction="none").reshape(n, m).mean(0)

    @torch.no_grad()
    def sgd_step(self, lrs: torch.Tensor) -> None:
        """p ← p − lr_m · ∂L/∂p for each model m's slice of every parameter."""
        neg = lrs.neg().view(-1, 1)
        ps = [p for p in self.parameters() if p.grad is not None]
        torch._foreach_addcmul_([p.view(self.m, -1) for p in ps],
                                [p.grad.view(self.m, -1) for p in ps], [neg] * len(ps))

    @torch.no_grad()
    def unbatch(self, i: int) -> nn.Module:
        """Model i as the plain LeNet of bnviz.model, its weights and BN buffers copied."""
        net = build_lenet(self.configs[i])
        for name, width in (("conv1", 6), ("conv2", 16)):
            mine, theirs = getattr(self, name), getattr(net, name)
            theirs.weight.copy_(mine.weight[width * i:width * (i + 1)])
            if theirs.bias is not None:
                theirs.bias.copy_(mine.bias[width * i:width * (i + 1)])
        for name in ("fc1", "fc2", "fc3"):
            getattr(net, name).weight.copy_(self.fc_w[name][i])
            if getattr(net, name).bias is not None:
                getattr(net, name).bias.copy_(self.fc_b[name][i])
        for site, bn in self.norms.items():
            theirs = getattr(net, f"{site}_norm")
            w = theirs.num_features
            part = slice(w * i, w * (i + 1))
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(theirs, attr).copy_(getattr(bn, attr)[part])
            theirs.num_batches_tracked.copy_(bn.num_batches_tracked)
        return net


def stack_batches(train_x, train_y, idx) -> tuple[torch.Tensor, torch.Tensor]:
    """Model m's batch (its indices idx[m]) in channel m: x (N, M, H, W), y (N, M). `train_x`,
    `train_y`: the one data set every model reads (one gather for all), or one per model."""
    if isinstance(train_x, torch.Tensor):
        idx = torch.stack(list(idx)) if not isinstance(idx, torch.Tensor) else idx
        flat = idx.t().reshape(-1)  # example j of model m at [j, m]
        k, m = idx.shape[1], idx.shape[0]
        return (train_x.index_select(0, flat).view(k, m, *train_x.shape[2:]),
                train_y.index_select(0, flat).view(k, m))
    xs = torch.cat([x.index_select(0, i) for x, i in zip(train_x, idx)], dim=1)
    ys = torch.stack([y.index_select(0, i) for y, i in zip(train_y, idx)], dim=1)
    return xs, ys
