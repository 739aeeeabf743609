"""Internal covariate shift as Santurkar, Tsipras, Ilyas and Madry (2018, "How Does Batch
Normalization Help Optimization?", §2.2, definition 2.1) measure it.

For a layer k with weights W_k, on one batch (x, y):

    G  = ∇_{W_k} L(W_1, ..., W_{k-1}, W_k, ...; x, y)           the gradient now
    G′ = ∇_{W_k} L(W_1′, ..., W_{k-1}′, W_k, ...; x, y)         after the earlier layers'
                                                                  SGD step on the same batch

where W_j′ = W_j − lr · ∇_{W_j} L(...; x, y) for every parameter of the layers before layer k
(their weights, biases and the norms' gamma and beta) and nothing else moves. ICS is the
change ‖G − G′‖₂ and the direction cos(G, G′): how much layer k's own update would have to
change because the layers feeding it moved. The paper finds that BN does not reduce it (in
deep networks it can increase it).

`measure` leaves the model bit for bit as it found it: the earlier layers' parameters are
copied and copied back, every pass runs with the buffers kept (kept_buffers: BN's running
statistics, noisy BN's step counter, so G and G′ see the same noise) and the random streams
of seeded dropout put back, so G and G′ see the same masks and the next training step is the
one it would have been. The gradients are taken with torch.autograd.grad, so no parameter's
.grad changes either; the optimiser (plain SGD) keeps no state.
"""
from __future__ import annotations

import contextlib
import math
import threading
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from bnviz.evaluation import kept_buffers

WEIGHT_LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")  # LeNet's conv/linear layers, in order
# conv1 has no earlier layer (G′ = G), so ICS is measured for the others.
ICS_LAYERS = WEIGHT_LAYERS[1:]
PASSES = 1 + len(ICS_LAYERS)  # forward+backward passes over the batch per measurement


@contextlib.contextmanager
def kept_random_streams(net: nn.Module):
    """Put back the state of every module-owned generator (SeededDropout's masks), which
    kept_buffers does not cover: a probe's forward must not move the next step's masks."""
    saved = [(m, m._gen.get_state()) for m in net.modules()
             if isinstance(getattr(m, "_gen", None), torch.Generator)]
    try:
        yield
    finally:
        for m, state in saved:
            m._gen.set_state(state)


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x), y)


def _grads(net, x, y, params):
    """The gradients of the batch loss w.r.t. `params`, the buffers and random streams kept."""
    with kept_buffers(net), kept_random_streams(net):
        return torch.autograd.grad(_loss(net, x, y), params, allow_unused=True)


def earlier_parameters(net: nn.Module, layer: str) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every trained parameter of the modules before `layer`."""
    names = [n for n, _ in net.named_children()]
    if layer not in names:
        raise ValueError(f"the model has no layer {layer!r}; its layers: {', '.join(names)}")
    before = names[:names.index(layer)]
    return [(f"{n}.{pn}", p) for n in before
            for pn, p in getattr(net, n).named_parameters() if p.requires_grad]


def measure(net: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float,
            layers=ICS_LAYERS, weight_decay: float = 0.0) -> dict[str, dict[str, float]]:
    """{layer: {"l2": ‖G − G′‖₂, "cos": cos(G, G′), "norm": ‖G‖₂}} on the batch (x, y), the
    model in whatever mode it is in (training: train mode). The SGD step of the earlier layers
    is p − lr · (g + weight_decay · p), torch.optim.SGD's."""
    params = [p for p in net.parameters() if p.requires_grad]
    grads = dict(zip(map(id, params), _grads(net, x, y, params)))
    out = {}
    for layer in layers:
        w = getattr(net, layer).weight
        g = grads[id(w)]
        earlier = [p for _, p in earlier_parameters(net, layer)]
        saved = [p.detach().clone() for p in earlier]
        try:
            with torch.no_grad():
                for p in earlier:
                    step = grads[id(p)]
                    if step is None:
                        continue
                    if weight_decay:
                        step = step + weight_decay * p
                    p.add_(step, alpha=-lr)
            (g2,) = _grads(net, x, y, [w])
        finally:
            with torch.no_grad():
                for p, v in zip(earlier, saved):
                    p.copy_(v)
        out[layer] = _compare(g, g2)
    return out


def _compare(g: torch.Tensor, g2: torch.Tensor) -> dict[str, float]:
    a, b = g.detach().double().flatten(), g2.detach().double().flatten()
    na, nb = a.norm().item(), b.norm().item()
    cos = (a @ b).item() / (na * nb) if na > 0 and nb > 0 else math.nan
    return {"l2": (a - b).norm().item(), "cos": cos, "norm": na}


# -- as probe metrics (bnviz.metrics): one measurement per evaluation, read by every metric --

_memo: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


def at_evaluation(ctx) -> dict[str, dict[str, float]]:
    """measure() on the evaluation's training batch, once per (model, iteration): the probe
    metrics ics_l2_<layer> and ics_cos_<layer> all read this one measurement."""
    key = (threading.get_ident(), ctx.iteration)
    with _memo_lock:
        hit = _memo.get(ctx.net)
    if hit is not None and hit[0] == key:
        return hit[1]
    x, y = ctx.batch
    result = measure(ctx.net, x, y, ctx.cfg.lr,
                     weight_decay=float(getattr(ctx.cfg, "weight_decay", 0.0) or 0.0))
    with _memo_lock:
        _memo[ctx.net] = (key, result)
    return result


def over_training(view, stat: str = "cos") -> float:
    """A run's ICS: the mean of ics_<stat>_<layer> over its layers and evaluations (NaN for a
    run that did not measure it)."""
    vals = [v for e in view.evals for k, v in (e.get("metrics") or {}).items()
            if k.startswith(f"ics_{stat}_") and v == v]
    return sum(vals) / len(vals) if vals else math.nan


# -- how far the layers' inputs move (the picture ICS talks about: the paper's fig. 2) -------
# One unit's input per layer, on a fixed probe batch (the first PROBE_IMAGES training images),
# in train mode as training sees it (BN's batch statistics, noisy BN's noise of this step),
# at every evaluation: channel 0 of conv2's input (after conv1's block and pool), of fc1's
# input (channel 0 of conv2's pooled map, 16 values per image), and feature 0 of fc2's and
# fc3's. One unit, not every value pooled: noisy BN shifts each unit's mean its own way, and
# pooling all channels together would average those shifts away.

PROBE_IMAGES = 256
PERCENTILES = ("p5", "p25", "p50", "p75", "p95")
_QS = (0.05, 0.25, 0.5, 0.75, 0.95)
SITES = ICS_LAYERS  # the layers whose input is drawn (the ICS layers)


def input_metric(layer: str, stat: str = "p50") -> str:
    """The probe metric holding `stat` of unit 0 of `layer`'s input."""
    return f"ics_in_{layer}_{stat}"


def unit_values(x: torch.Tensor, layer: str) -> torch.Tensor:
    """Unit 0 of a layer's input (N, C, H, W) or (N, D): channel 0's values (for fc1, whose
    input is conv2's flattened map, its first 16 features: channel 0's 4×4 positions)."""
    if x.dim() == 4:
        return x[:, 0].flatten()
    return x[:, :16].flatten() if layer == "fc1" else x[:, 0]


def unit_inputs(net: nn.Module, x: torch.Tensor) -> dict[str, dict[str, float]]:
    """{layer: {p5..p95}} of unit 0 of each ICS layer's input for one forward of x (the model
    in its caller's mode; buffers and random streams put back)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [getattr(net, layer).register_forward_pre_hook(
        lambda _m, inp, layer=layer: seen.__setitem__(layer, unit_values(inp[0], layer)))
        for layer in SITES]
    try:
        with torch.no_grad(), kept_buffers(net), kept_random_streams(net):
            net(x)
    finally:
        for h in hooks:
            h.remove()
    qs = torch.tensor(_QS)
    return {layer: dict(zip(PERCENTILES, torch.quantile(v.detach().float().cpu(), qs)
                            .tolist())) for layer, v in seen.items()}


_inputs_memo: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def inputs_at_evaluation(ctx) -> dict[str, dict[str, float]]:
    """unit_inputs on the fixed probe batch, once per (model, iteration)."""
    key = (threading.get_ident(), ctx.iteration)
    with _memo_lock:
        hit = _inputs_memo.get(ctx.net)
    if hit is not None and hit[0] == key:
        return hit[1]
    result = unit_inputs(ctx.net, ctx.dataset.train_x[:PROBE_IMAGES])
    with _memo_lock:
        _inputs_memo[ctx.net] = (key, result)
    return result


def input_shift(view) -> float:
    """Mean over the layers of the mean |change| of unit 0's median input between
    consecutive evaluations (NaN for a run that did not measure it)."""
    per_layer = []
    for layer in SITES:
        xs = [(e.get("metrics") or {}).get(input_metric(layer)) for e in view.evals]
        xs = [x for x in xs if x is not None and x == x]
        if len(xs) >= 2:
            per_layer.append(sum(abs(b - a) for a, b in zip(xs, xs[1:])) / (len(xs) - 1))
    return sum(per_layer) / len(per_layer) if per_layer else math.nan


# -- the page's and the CLI's numbers --------------------------------------------------------

def series(view, column: str) -> list[tuple[float, float]]:
    """(epoch, value) of one eval column or probe metric of a run, NaNs left out."""
    out = []
    for e in view.evals:
        v = e.get(column, (e.get("metrics") or {}).get(column))
        if v is not None and v == v:
            out.append((round(float(e["epoch"]), 4), float(v)))
    return out


CSV_COLUMNS = (["arm", "run", "seed", "iteration", "epoch", "test_acc"]
               + [f"ics_{s}_{k}" for k in ICS_LAYERS for s in ("l2", "cos")]
               + [input_metric(site, p) for site in SITES for p in PERCENTILES])


def csv_rows(runs) -> list[dict]:
    """ics.csv: one row per run and evaluation. `runs`: (arm, label, RunView)."""
    rows = []
    for arm, label, v in runs:
        for e in v.evals:
            m = e.get("metrics") or {}
            row = dict(arm=arm, run=label, seed=v.config.seed, iteration=e["iteration"],
                       epoch=f"{e['epoch']:.4f}", test_acc=e.get("test_acc"))
            row.update({c: m.get(c, "") for c in CSV_COLUMNS[6:]})
            rows.append(row)
    return rows
