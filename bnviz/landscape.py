"""The loss landscape along the gradient (Santurkar, Tsipras, Ilyas & Madry 2018, "How Does
Batch Normalization Help Optimization?", section 3.1, figures 4 and 5), measured during
training without touching the run.

At an evaluation the trainer has just taken an SGD step on a training batch (x, y). With the
current weights w and g = ∇L(w) on that batch (train mode, so BN uses the batch's
statistics, exactly the loss SGD minimises), for each step size s in η·STEP_FACTORS (η the
run's learning rate) this computes

- L(w − s·g): the *loss landscape* along the gradient; the band is min..max over s;
- ‖∇L(w) − ∇L(w − s·g)‖₂: *gradient predictiveness* (small: the gradient here still
  describes the loss a step away);
- ‖∇L(w) − ∇L(w − s·g)‖₂ / ‖s·g‖₂, whose largest value over s is the *effective
  β-smoothness* (a local Lipschitz constant of the gradient along the step).

Everything is computed on a deep copy of the model (a fresh one for each point), with the
random number generators forked and re-seeded identically for each forward pass (dropout and
noisy norms then draw the same noise at every s): the model, its gradients, every BN buffer
and attribute, the optimiser (plain SGD, stateless) and the RNG stream the run continues with
are left bit-for-bit as they were (tests/test_landscape.py checks all of it). Cost: 1 + 5
forward and backward passes of the training batch per evaluation (`PASSES`).

The probe metrics register on import (bnviz.metrics imports this module); `landscape` (a
Config knob) says which runs measure them and `eval_every` how often. This module imports no
torch at import time (the catalog and the About page read the metric registry).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from bnviz.i18n import N_
from bnviz.metrics import Metric, METRICS, register

STEP_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # step sizes s = η × these (the paper's range)
PASSES = 1 + len(STEP_FACTORS)  # forward + backward passes of the training batch per probe
PROBE_EVERY = 50  # the page's and the library's eval_every: the 2x budget (benchmarks/landscape.py)
SEED = 0x5EED  # what the forked RNG is seeded with before every forward of a probe


@dataclass(frozen=True)
class Landscape:
    """One probe: the loss and gradient norm at w, and per step size s the loss at w − s·g
    and ‖∇L(w) − ∇L(w − s·g)‖₂."""
    iteration: int
    loss: float
    grad_norm: float
    steps: tuple[float, ...]
    losses: tuple[float, ...]
    grad_diffs: tuple[float, ...]

    @property
    def loss_min(self) -> float:
        return min(self.losses)

    @property
    def loss_max(self) -> float:
        return max(self.losses)

    @property
    def band(self) -> float:
        """Width of the loss band: max − min of L(w − s·g) over the step sizes."""
        return self.loss_max - self.loss_min

    @property
    def gradpred_min(self) -> float:
        return min(self.grad_diffs)

    @property
    def gradpred_max(self) -> float:
        return max(self.grad_diffs)

    @property
    def beta(self) -> float:
        """Effective β-smoothness: max over s of ‖∇L(w) − ∇L(w − s·g)‖ / ‖s·g‖."""
        if not self.grad_norm > 0:
            return math.nan
        return max(d / (s * self.grad_norm) for s, d in zip(self.steps, self.grad_diffs))


def _loss_and_grad(model, params, x, y, rng_devices):
    import torch
    import torch.nn.functional as F
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(SEED)
        loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    return loss.detach(), [g.detach() for g in grads]


def probe(net, batch, lr: float, factors=STEP_FACTORS, iteration: int = 0) -> Landscape:
    """The landscape along the gradient at `net`'s current weights on `batch` = (x, y), with
    step sizes lr × factors. `net` (its parameters, .grad, buffers, attributes, mode) and the
    global RNG are left exactly as they were."""
    import copy

    import torch
    x, y = batch
    rng_devices = [x.device] if x.device.type == "cuda" else []

    def fresh():
        m = copy.deepcopy(net)
        m.train()
        for p in m.parameters():
            p.grad = None
        return m, [p for p in m.parameters() if p.requires_grad]

    with torch.enable_grad():
        model, params = fresh()
        loss0, g = _loss_and_grad(model, params, x, y, rng_devices)
        w0 = [p.detach().clone() for p in params]
        g_sq = sum((t.double() ** 2).sum() for t in g)
        steps = tuple(lr * f for f in factors)
        losses, diffs = [], []
        for s in steps:
            model, params = fresh()
            with torch.no_grad():
                for p, w, gi in zip(params, w0, g):
                    p.copy_(w - s * gi)
            loss_s, g_s = _loss_and_grad(model, params, x, y, rng_devices)
            losses.append(float(loss_s))
            diffs.append(float(torch.sqrt(sum(((a.double() - b.double()) ** 2).sum()
                                              for a, b in zip(g, g_s)))))
    return Landscape(iteration, float(loss0), float(torch.sqrt(g_sq)), steps, tuple(losses),
                     tuple(diffs))


# -- the probe metrics: one computation per evaluation, shared by all of them ---------------
_memo = threading.local()  # each trainer runs in its own thread


def measured(ctx) -> Landscape:
    """The probe of this evaluation (MetricContext), computed once for all the metrics."""
    key = (id(ctx.net), ctx.iteration, id(ctx.batch[0]))
    hit = getattr(_memo, "last", None)
    if hit is not None and hit[0] == key:
        return hit[1]
    result = probe(ctx.net, ctx.batch, ctx.cfg.lr, iteration=ctx.iteration)
    _memo.last = (key, result)
    return result


def applies(cfg) -> bool:
    return bool(getattr(cfg, "landscape", False))


def work(cfg) -> float:
    """Training examples' worth of forward + backward one probe costs (bnviz.cost)."""
    return PASSES * cfg.batch_size


# (id, label, what the probe reports, help)
PROBES = (
    ("landscape_loss", "loss at w (probe)", lambda r: r.loss,
     "training-batch loss at the current weights, train mode"),
    ("landscape_loss_min", "loss band: min", lambda r: r.loss_min,
     "smallest L(w − s·g) over s = lr × 0.25…4"),
    ("landscape_loss_max", "loss band: max", lambda r: r.loss_max,
     "largest L(w − s·g) over s = lr × 0.25…4"),
    ("landscape_band", "loss band width", lambda r: r.band,
     "max − min of L(w − s·g) over s = lr × 0.25…4 (Santurkar et al. fig. 4a)"),
    ("landscape_gradpred_min", "gradient change: min", lambda r: r.gradpred_min,
     "smallest ‖∇L(w) − ∇L(w − s·g)‖ over s"),
    ("landscape_gradpred_max", "gradient change: max", lambda r: r.gradpred_max,
     "largest ‖∇L(w) − ∇L(w − s·g)‖ over s (gradient predictiveness, fig. 4b: smaller is "
     "more predictive)"),
    ("landscape_beta", "effective β-smoothness", lambda r: r.beta,
     "max over s of ‖∇L(w) − ∇L(w − s·g)‖ / ‖s·g‖ (fig. 4c)"),
    ("landscape_grad_norm", "gradient norm", lambda r: r.grad_norm, "‖g‖ on the batch"),
)
# Over training, per run: the mean of these probe values over its evaluations (the grid
# tables, the findings and the reading compare runs on them).
OVER_TRAINING = {"landscape_band": ("landscape_band_mean", N_("loss band width (mean)")),
                 "landscape_gradpred_max": ("landscape_gradpred_mean",
                                            N_("gradient change (mean of max)")),
                 "landscape_beta": ("landscape_beta_mean", N_("β-smoothness (mean)"))}


def series(view, metric_id: str) -> list[float]:
    """A probe metric's values over a run's evaluations (those that carry it)."""
    return [float(e["metrics"][metric_id]) for e in view.evals
            if metric_id in (e.get("metrics") or {})]


def mean_over_training(view, metric_id: str) -> float:
    xs = [x for x in series(view, metric_id) if math.isfinite(x)]
    if not xs:
        raise ValueError("no landscape probes in this run")
    return sum(xs) / len(xs)


def _probe_fn(get):
    return lambda ctx: get(measured(ctx))


def _register() -> None:
    for i, (mid, label, get, help_) in enumerate(PROBES):
        if mid not in METRICS:
            register(Metric(mid, label, "probe", higher_is_better=False if mid != "landscape_loss"
                            else None, grid=False, digits=4, probe=_probe_fn(get),
                            applies=applies, work=work if i == 0 else None, help=help_))
    for src, (mid, label) in OVER_TRAINING.items():
        if mid not in METRICS:
            register(Metric(mid, label, "derived", higher_is_better=False, digits=4,
                            from_view=lambda v, src=src: mean_over_training(v, src),
                            applies=applies,  # tables hide it where no run measured it
                            help=f"mean over the run's evaluations of {src} "
                                 "(runs with the landscape knob on)"))


_register()


# -- over training, over seeds: what the page draws and the CLI writes ----------------------

def curves(runs, metric_id: str) -> list[dict]:
    """Rows (group, epoch, mean, lo, hi, n) of a probe metric over training: per group label
    and evaluation epoch, the mean over the group's runs and its 95% Student-t interval
    (lo = hi = mean with one run). `runs`: (label, RunView) pairs."""
    from bnviz.stats import mean_ci
    at: dict = {}
    for label, v in runs:
        for e in v.evals:
            x = (e.get("metrics") or {}).get(metric_id)
            if x is not None:
                at.setdefault(label, {}).setdefault(round(float(e["epoch"]), 4), []).append(x)
    rows = []
    for label, by_epoch in at.items():
        for epoch in sorted(by_epoch):
            est = mean_ci(by_epoch[epoch])
            half = 0.0 if est.half != est.half else est.half
            rows.append(dict(group=label, epoch=epoch, mean=est.mean, lo=est.mean - half,
                             hi=est.mean + half, n=est.n))
    return rows


def band_curves(runs) -> list[dict]:
    """The loss band itself over training (the paper's fig. 4a): per group and epoch the mean
    over runs of L(w) (mean), of min over s of L(w − s·g) (lo) and of the max (hi)."""
    mid = {(r["group"], r["epoch"]): r for r in curves(runs, "landscape_loss")}
    lo = {(r["group"], r["epoch"]): r["mean"] for r in curves(runs, "landscape_loss_min")}
    hi = {(r["group"], r["epoch"]): r["mean"] for r in curves(runs, "landscape_loss_max")}
    return [dict(r, lo=lo.get(k, math.nan), hi=hi.get(k, math.nan)) for k, r in mid.items()]


CSV_COLUMNS = ("arm", "run", "seed", "iteration", "epoch") + tuple(p[0] for p in PROBES)


def csv_rows(runs) -> list[dict]:
    """One row per probe of each run: (arm, label, RunView) triples → landscape.csv rows."""
    out = []
    for arm, label, v in runs:
        for e in v.evals:
            m = e.get("metrics") or {}
            if "landscape_band" in m:
                out.append(dict(arm=arm, run=label, seed=v.config.seed,
                                iteration=e["iteration"], epoch=e["epoch"],
                                **{c: m.get(c, math.nan) for c in CSV_COLUMNS[5:]}))
    return out
