"""Train one config and emit events to listeners. Knows nothing about any UI."""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from bnviz import data as data_mod
from bnviz.config import Config
from bnviz.evaluation import evaluate, kept_buffers, mode
from bnviz.events import BNSnapshot, EpochEnd, Evaluation, RunEnded, RunStarted, Step
from bnviz.finetune import Plan as PhasePlan
from bnviz.metrics import (EVAL_MODES, FINAL_MODES, MetricContext, eval_fields, probes,
                           summary_defaults)
from bnviz.model import (build_lenet, count_params, has_running_stats, norm_layers,
                         running_stats, scale_shift)
from bnviz.schedule import epoch_plan, probe_size
from bnviz.optim import make_optimizer

Listener = Callable[[object], None]
# A loss this far above chance (ln 10 ≈ 2.3) means the run has blown up even if it is finite:
# with sigmoids and BN a huge lr gives losses of 1e5 that never become NaN.
DIVERGED_LOSS = 20 * math.log(10)
# How allocators say "no memory": CUDA ("CUDA out of memory"), MPS, and the CPU allocator
# ("DefaultCPUAllocator: can't allocate memory"), which never says "out of memory".
OOM_MESSAGES = ("out of memory", "can't allocate memory", "not enough memory")
FLUSH_SECONDS = 0.25  # how often per-step metrics leave the device (one host sync each)

BATCH_OF_ONE = (
    "BatchNorm cannot normalise a batch of one example: its mean is the example itself, so "
    "after subtracting it every feature is 0 and the variance is 0 — there is nothing left to "
    "learn from. nn.BatchNorm1d therefore refuses it ({detail}). Use a batch size of at least "
    "2 per device, the from-scratch BN (to watch the activations collapse to 0), or BN on the "
    "conv layers only (they average over H×W positions too, so one image still gives many "
    "values per channel).")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for, but no CUDA GPU is available here")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise RuntimeError("device mps was asked for, but Apple's MPS is not available here")
    return torch.device(name)


def _copy(t: torch.Tensor) -> np.ndarray:
    # .cpu().numpy() of a float32 CPU tensor shares its memory: SGD and BN update the
    # parameters and buffers in place, so a history of such views would all show the latest
    # values. A snapshot is a copy, owned by whoever receives it (another thread, the store).
    return np.array(t.detach().flatten().float().cpu().numpy(), copy=True)


def snapshot(net: torch.nn.Module) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for site, m in norm_layers(net):
        d = {}
        gamma, beta = scale_shift(m)  # under the names the kind's registry entry gives
        if gamma is not None:
            d["gamma"] = _copy(gamma)
            d["beta"] = _copy(beta)
        if (running := running_stats(m)) is not None:
            d["running_mean"], d["running_var"] = _copy(running[0]), _copy(running[1])
        if d:
            out[site] = d
    return out


class Diverged(Exception):
    pass


def failure(e: Exception) -> tuple[str, str]:
    """("failed", the reason in words) for an exception that ended a run."""
    if isinstance(e, ValueError):
        if "Expected more than 1 value per channel" in str(e):
            return "failed", BATCH_OF_ONE.format(detail=str(e).split(",")[0])
        return "failed", f"{type(e).__name__}: {e}"
    if isinstance(e, (RuntimeError, data_mod.DataError, MemoryError)):
        msg = str(e)
        if isinstance(e, MemoryError) or any(s in msg.lower() for s in OOM_MESSAGES):
            msg = ("ran out of memory — try a smaller batch size or train-set size "
                   f"({msg.splitlines()[0] if msg else 'MemoryError'})")
        return "failed", msg
    return "failed", f"{type(e).__name__}: {e}"


class Trainer:
    """Runs `cfg` once. `run()` never raises: every ending is a RunEnded event and a summary."""

    def __init__(self, cfg: Config, listeners: Iterable[Listener] = (),
                 stop: threading.Event | None = None, dataset: data_mod.Dataset | None = None,
                 build: Callable[[Config], torch.nn.Module] = build_lenet,
                 info: dict | None = None):
        """`build` makes the model from the config (default: the plain LeNet of
        bnviz.model; bnviz.speed.lenet.training_setup() gives a faster one with the same
        numbers). `info` is copied into the run's summary (e.g. which kernels ran)."""
        self.cfg = cfg
        self.listeners = list(listeners)
        self.stop = stop or threading.Event()
        self.dataset = dataset
        self.build = build
        self.info = dict(info or {})
        self.summary: dict = {}

    def emit(self, event) -> None:
        for listener in self.listeners:
            listener(event)

    def run(self) -> dict:
        self._t0 = time.perf_counter()
        self._train_time = 0.0
        self._examples = 0
        self._total = -1
        self.summary = {"status": "running", **summary_defaults(self.cfg), "examples_per_sec": 0.0,
                        "iterations": 0, "epochs_done": 0}
        status, reason = "finished", ""
        try:
            self._run()
            if self.stop.is_set():
                status, reason = "stopped", "stopped on request"
        except Diverged as e:
            status, reason = "diverged", str(e)
        except Exception as e:  # noqa: BLE001 - a run must end as an event, never crash
            status, reason = failure(e)
        self.summary.update(status=status, reason=reason,
                            wall_time=time.perf_counter() - self._t0,
                            examples_per_sec=self._examples / self._train_time
                            if self._train_time else 0.0)
        try:
            self.emit(RunEnded(status, reason, dict(self.summary)))
        except Exception:  # noqa: BLE001 - a broken listener cannot un-end the run
            pass
        return self.summary

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        cfg = self.cfg
        device = resolve_device(cfg.device)
        self.summary.update(self.info)
        ds = self.dataset or data_mod.load(cfg.dataset, cfg.train_size, device, cfg.seed)
        if ds.train_x.device != device:
            ds = data_mod.Dataset(ds.train_x.to(device), ds.train_y.to(device),
                                  ds.test_x.to(device), ds.test_y.to(device), ds.source,
                                  ds.origin)
        net = self.build(cfg).to(device)
        opt = make_optimizer(net, cfg)  # bnviz/optim.py: weight decay, train_only
        phases = PhasePlan(cfg, ds)  # bnviz/finetune.py: part A, then part B when fine-tuning
        n = phases.n
        plan = epoch_plan(n, cfg.batch_size, cfg.devices)
        bs, steps = plan.batch_size, plan.steps
        total = steps * phases.epochs
        self._total = total
        self.summary.update(data_source=ds.source, data=ds.description, device=str(device),
                            n_params=count_params(net), config_id=cfg.config_id(),
                            seed=cfg.seed)
        self.emit(RunStarted(cfg.to_dict(), ds.source, ds.description, str(device),
                             count_params(net), n, len(ds.test_y), steps, total))
        gen = torch.Generator().manual_seed(cfg.seed)
        probe = slice(0, probe_size(cfg.batch_size, n, len(ds.test_y)))
        eval_every = cfg.eval_every or steps
        snap_every = cfg.snapshot_every or eval_every
        # The state before any step (gamma = 1, beta = 0, running mean 0, var 1): where the
        # gamma/beta charts start.
        self.emit(BNSnapshot(0, 0.0, snapshot(net)))
        it = 0
        last_flush = -math.inf  # the first step is reported at once: first point on screen
        losses = torch.zeros(steps, device=device)
        correct = torch.zeros(steps, device=device)
        sizes = torch.zeros(steps, device=device)
        for epoch in range(phases.epochs):
            train_x, train_y = phases.start(epoch, net, opt)
            perm = torch.randperm(n, generator=gen).to(device)
            net.train()
            flushed = 0
            t_epoch = time.perf_counter()
            ex_epoch = 0
            for b in range(steps):
                if self.stop.is_set():
                    self._flush(losses, correct, sizes, flushed, b, it, epoch, steps)
                    return
                t_step = time.perf_counter()
                idx = perm[b * bs:(b + 1) * bs]
                xb, yb = train_x.index_select(0, idx), train_y.index_select(0, idx)
                phases.hold()  # frozen BN stays in eval mode while fine-tuning
                out = net(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    losses[b] = loss.detach()
                    correct[b] = (out.argmax(1) == yb).sum()
                    sizes[b] = len(yb)
                it += 1
                ex_epoch += len(idx)
                self._train_time += time.perf_counter() - t_step
                self._examples += len(idx)
                now = time.perf_counter()
                due_eval = it % eval_every == 0 or b == steps - 1
                if due_eval or it % snap_every == 0 or now - last_flush > FLUSH_SECONDS:
                    self._flush(losses, correct, sizes, flushed, b + 1, it, epoch, steps)
                    flushed, last_flush = b + 1, now
                if due_eval:
                    self._evaluate(net, ds, it, epoch + (b + 1) / steps, losses, correct, sizes,
                                   b + 1, probe, (xb, yb))
                if it % snap_every == 0 or b == steps - 1:
                    self.emit(BNSnapshot(it, epoch + (b + 1) / steps, snapshot(net)))
            elapsed = time.perf_counter() - t_epoch
            self.summary["epochs_done"] = epoch + 1
            self.emit(EpochEnd(epoch + 1, self.summary["train_loss"], self.summary["train_acc"],
                               self.summary["test_acc"], ex_epoch / elapsed,
                               time.perf_counter() - self._t0))

    def _flush(self, losses, correct, sizes, start, end, it, epoch, steps) -> None:
        if end <= start:
            return
        ls = losses[start:end].tolist()
        cs = correct[start:end].tolist()
        ns = sizes[start:end].tolist()
        first_it = it - (end - start) + 1
        for i, (l, c, k) in enumerate(zip(ls, cs, ns)):
            if not math.isfinite(l) or l > DIVERGED_LOSS:
                what = "became NaN/inf" if not math.isfinite(l) else f"reached {l:.3g}"
                raise Diverged(f"the training loss {what} at iteration {first_it + i} "
                               f"(chance level is ln 10 ≈ 2.3): the learning rate "
                               f"{self.cfg.lr:g} is too high for this model")
            self.emit(Step(first_it + i, epoch + (start + i + 1) / steps, l, c / k))
        self.summary["iterations"] = it

    def _evaluate(self, net, ds, it, epoch, losses, correct, sizes, upto, probe,
                  batch) -> None:
        cfg = self.cfg
        kw = dict(batch_size=cfg.batch_size, train_x=ds.train_x,
                  precise_samples=cfg.precise_samples)
        modes = EVAL_MODES if cfg.compare_eval else (cfg.eval_mode,)
        by_mode = {}
        for how in modes:
            by_mode[how] = evaluate(net, ds.test_x, ds.test_y, how, **kw)
        test_loss, test_acc = by_mode[cfg.eval_mode]
        if it == self._total:
            # The summary always carries the final accuracy with running statistics and with
            # PreciseBN, whatever eval_mode is: comparisons read both, since the running
            # statistics' lag swings single-run accuracy far more than PreciseBN's.
            final = {m: a for m, (_, a) in by_mode.items()}
            if any(has_running_stats(m) for _, m in norm_layers(net)):
                for how in FINAL_MODES:
                    if how not in final:
                        final[how] = evaluate(net, ds.test_x, ds.test_y, how, **kw)[1]
            else:  # nothing to recompute: every mode is the same computation
                final = {"running": test_acc, "precise": test_acc}
            self.summary.update(test_acc_running=final["running"],
                                test_acc_precise=final["precise"])
        n_seen = sizes[:upto].sum()
        train_loss = ((losses[:upto] * sizes[:upto]).sum() / n_seen).item()
        train_acc = (correct[:upto].sum() / n_seen).item()
        xb, yb = ds.test_x[probe], ds.test_y[probe]
        with torch.no_grad(), mode(net, norms_train=False):
            eval_batch = (net(xb).argmax(1) == yb).float().mean().item()
        try:
            with torch.no_grad(), kept_buffers(net), mode(net, norms_train=True):
                train_batch = (net(xb).argmax(1) == yb).float().mean().item()
        except ValueError:
            train_batch = math.nan
        net.train()
        measured = {}
        for m in probes(cfg):  # the registry's probe metrics this run asks for, on this step's batch
            with kept_buffers(net):
                measured[m.id] = float(m.probe(MetricContext(net, cfg, ds, it, batch)))
            net.train()
        ev = Evaluation(it, epoch, test_loss, test_acc, train_loss, train_acc, eval_batch,
                        train_batch, {k: v[1] for k, v in by_mode.items()}, measured)
        # The summary keeps the last value of every metric an evaluation carries (the
        # registry says which), so the two cannot disagree.
        self.summary.update({m: getattr(ev, m) for m in eval_fields()}, **measured)
        self.emit(ev)


def train(cfg: Config, listeners: Iterable[Listener] = (), **kw) -> dict:
    return Trainer(cfg, listeners, **kw).run()
