"""What a run will cost, before it is queued: pure arithmetic on the config.

`estimate(cfg, n_train, n_test)` counts what the trainer (bnviz/trainer.py) will do — training
steps and examples, evaluations during the run and the forward passes each makes, gamma/beta
snapshots kept in memory — and `Cost.seconds(rates)` turns the counts into seconds with rates
that benchmarks/cost_rates.py measures on a machine. A shared server caps runs on that
estimate (bnviz.runs.limits), not on epochs × images alone: batch size 2 with an evaluation
after every step costs a thousand times more than its epochs × images say.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, fields
from functools import lru_cache

from bnviz import norm_kinds
from bnviz.config import SITE_WIDTH, Config
from bnviz.i18n import _
from bnviz.metrics import EVAL_MODES, FINAL_MODES
from bnviz.schedule import epoch_plan, probe_size


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of work on one machine. The defaults were measured with
    benchmarks/cost_rates.py on this project's 2-core development machine (CPU, one torch
    thread as on a hosted server, the fast training path) on 2026-11-27, three runs:
    train_example 5.6e-5 to 6.7e-5 s, step 1.0e-3 to 1.3e-3 s (measured at batch 8, beyond
    the per-example time at batch 256), eval_example 2.3e-5 to 2.4e-5 s, snapshot 6.0e-5 s.
    With them the d2l preset (full data, 10 epochs) comes to about 42 s."""
    train_example: float = 6.0e-5  # per training example at batch 256 (forward + backward)
    step: float = 1.2e-3  # per SGD step on top: the overhead that dominates small batches
    eval_example: float = 2.3e-5  # per example forwarded at test time (no gradient)
    snapshot: float = 6.0e-5  # per gamma/beta snapshot copied off the model


@lru_cache(maxsize=4)
def _rates_file(path: str, mtime: float) -> Rates:
    d = json.loads(open(path).read())
    return Rates(**{f.name: float(d[f.name]) for f in fields(Rates) if f.name in d})


def server_rates() -> Rates:
    """This machine's rates: the JSON file BNVIZ_COST_RATES names (written by
    `benchmarks/cost_rates.py --out FILE` on the server itself), else the defaults. A file
    that cannot be read leaves the defaults (and says why once on stderr)."""
    path = os.environ.get("BNVIZ_COST_RATES")
    if not path:
        return Rates()
    try:
        return _rates_file(path, os.stat(path).st_mtime)
    except (OSError, ValueError, TypeError) as e:
        if path not in _warned:
            _warned.add(path)
            print(f"bnviz: BNVIZ_COST_RATES={path} not used ({e}); default rates",
                  file=sys.stderr)
        return Rates()


_warned: set[str] = set()


@dataclass(frozen=True)
class Cost:
    n_train: int  # training examples actually used (train_size applied)
    steps_per_epoch: int
    train_steps: int
    train_examples: int
    eval_points: int  # evaluations during the run, the final one included
    eval_examples: int  # examples forwarded at test time, all modes and PreciseBN passes
    snapshots: int  # gamma/beta snapshots, the one before the first step included
    snapshot_values: int  # floats those snapshots keep in memory
    norm_factor: float = 1.0  # the norm kind's time per example relative to nn.BatchNorm's
    # training examples' worth of forward + backward that the run's probe metrics (their
    # `work`, bnviz.metrics) add over all its evaluations, e.g. the loss-landscape probe
    probe_examples: int = 0

    def parts(self, rates: Rates | None = None) -> dict[str, float]:
        """Seconds per kind of work: training, per-step overhead, evaluation, snapshots."""
        r = rates or server_rates()
        return {"training": self.train_examples * r.train_example * self.norm_factor,
                "steps": self.train_steps * r.step,
                "evaluation": self.eval_examples * r.eval_example * self.norm_factor,
                "snapshots": self.snapshots * r.snapshot,
                "probes": self.probe_examples * r.train_example * self.norm_factor}

    def seconds(self, rates: Rates | None = None) -> float:
        return sum(self.parts(rates).values())


def steps_per_epoch(n: int, batch_size: int, devices: int = 1) -> int:
    """As the trainer counts them (bnviz.schedule.epoch_plan)."""
    return epoch_plan(n, batch_size, devices).steps


def _points(steps: int, epochs: int, every: int) -> int:
    """How many iterations in 1..steps×epochs are a multiple of `every` or end an epoch."""
    total = steps * epochs
    if total == 0:
        return 0
    both = epochs // (every // math.gcd(steps, every))  # epoch ends that are multiples too
    return total // every + epochs - both


# BN's statistics taken per simulated device (ghost BN, one reshape): about 5,300 examples/s
# against 11,500 on one device (8 or 128 devices alike; 2-core x86, one thread, interleaved).
GHOST_COST = 2.2


def estimate(cfg: Config, n_train: int, n_test: int) -> Cost:
    """The cost of training `cfg` on a set of `n_train` training images (before train_size
    is applied) and `n_test` test images."""
    n = min(cfg.train_size, n_train) if cfg.train_size else n_train
    epochs = cfg.epochs + cfg.finetune_epochs
    if cfg.finetune_epochs:  # bnviz.finetune: each epoch trains on one of two halves
        n //= 2
    steps = steps_per_epoch(n, cfg.batch_size, cfg.devices)
    total = steps * epochs
    eval_every = cfg.eval_every or steps or 1
    snap_every = cfg.snapshot_every or eval_every
    evals = _points(steps, epochs, eval_every)
    snaps = 1 + _points(steps, epochs, snap_every)

    precise = min(cfg.precise_samples, n) + n_test  # PreciseBN pass, then the test set
    per_mode = {"running": n_test, "batch": n_test, "precise": precise}
    modes = EVAL_MODES if cfg.compare_eval else (cfg.eval_mode,)
    probe = 2 * probe_size(cfg.batch_size, n, n_test)  # eval and train mode
    per_eval = sum(per_mode[m] for m in modes) + probe
    layers = {s: norm_kinds.kind_at(cfg, s) for s in norm_kinds.norm_sites(cfg)}
    running = any(k.running_stats for k in layers.values())
    final_extra = sum(per_mode[m] for m in FINAL_MODES if m not in modes) \
        if running and total else 0  # the summary always has running and PreciseBN accuracy

    # floats per channel in a snapshot: gamma and beta, and the running mean and variance
    values = sum(SITE_WIDTH[s] * (2 * (k.scale is not None) + 2 * k.running_stats)
                 for s, k in layers.items())
    # the probe metrics this run measures, at every evaluation (bnviz.metrics.probes)
    from bnviz.metrics import probes
    probe_work = sum(float(m.work(cfg)) for m in probes(cfg) if m.work is not None)
    return Cost(n_train=n, steps_per_epoch=steps, train_steps=total,
                train_examples=n * epochs, eval_points=evals,
                eval_examples=evals * per_eval + final_extra, snapshots=snaps,
                snapshot_values=snaps * values,
                norm_factor=(norm_kinds.get(cfg.norm).cost if layers else 1.0) *
                (GHOST_COST if cfg.devices > 1 and any(k.batch_dependent
                                                      for k in layers.values()) else 1.0),
                probe_examples=int(round(evals * probe_work)))


# A batch of M runs (bnviz.speed.batched_trainer) takes one step for all M: its training costs
# one run's × (BATCH_FIXED + BATCH_PER_RUN × M). `benchmarks/batched_step.py` at batch 4 (one
# torch thread, 2-core x86, medians of two runs of 5 rounds): one LeNet-BN 2.01 ms a step, a
# batch of 3 2.81 ms (1.40×), a batch of 5 3.66 ms (1.82×), i.e. 0.8 + 0.2 × M within 1%.
# Evaluation, snapshots and probes are each run's own, as alone (the Trainer's code per run).
BATCH_FIXED, BATCH_PER_RUN = 0.8, 0.2


def batch_seconds(configs: list[Config], n_train: int, n_test: int,
                  rates: Rates | None = None) -> float:
    """Estimated seconds to train `configs` (one batch: equal but for seed and lr) as one
    batched model: the first run's training × (BATCH_FIXED + BATCH_PER_RUN × M), plus each
    run's evaluation, snapshots and probes. One config: its own estimate."""
    if len(configs) == 1:
        return estimate(configs[0], n_train, n_test).seconds(rates)
    m = len(configs)
    first = estimate(configs[0], n_train, n_test).parts(rates)
    train = (first["training"] + first["steps"]) * (BATCH_FIXED + BATCH_PER_RUN * m)
    rest = sum(v for c in configs for k, v in estimate(c, n_train, n_test).parts(rates).items()
               if k not in ("training", "steps"))
    return train + rest


def describe_seconds(s: float, about: bool = True) -> str:
    """'about 40 s', 'about 3 min', 'about 2 h 40 min': an estimate, rounded for people, in the
    reader's language. about=False leaves out the 'about' (a cap: '2 min')."""
    if s < 1:
        return _("under a second")
    if s < 90:
        text = _("about {s:.0f} s") if about else _("{s:.0f} s")
        return text.format(s=s)
    if s < 3600:
        text = _("about {min:.0f} min") if about else _("{min:.0f} min")
        return text.format(min=s / 60)
    h, m = divmod(round(s / 60), 60)
    if h >= 48:
        text = _("about {days:.0f} days") if about else _("{days:.0f} days")
        return text.format(days=h / 24)
    if m:
        text = _("about {h} h {m} min") if about else _("{h} h {m} min")
        return text.format(h=h, m=m)
    return (_("about {h} h") if about else _("{h} h")).format(h=h)


def suggestions(cfg: Config, cost: Cost, rates: Rates | None = None) -> list[str]:
    """What would make the run cheaper, the change that saves most first (in the reader's
    language)."""
    parts = cost.parts(rates)
    tips = []
    if cfg.batch_size < 256:
        tips.append((parts["steps"], _("raise batch_size")))
    if cfg.eval_every:
        tips.append((parts["evaluation"] + parts.get("probes", 0.0),
                     _("set eval_every to 0 (once per epoch) or raise it (the probes run at "
                       "every evaluation)") if cost.probe_examples else
                     _("set eval_every to 0 (once per epoch)")))
    if cost.probe_examples:
        tips.append((parts["probes"], _("turn off the probes (e.g. landscape)")))
    if cfg.compare_eval:
        tips.append((parts["evaluation"] * 0.6, _("turn off compare_eval")))
    if cfg.snapshot_every:
        tips.append((parts["snapshots"], _("set snapshot_every to 0")))
    tips.append((parts["training"] * 0.5, _("use fewer epochs or a smaller train_size")))
    return [t for _, t in sorted(tips, key=lambda t: -t[0])]
