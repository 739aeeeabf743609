"""M runs trained as one batched model (issue 23), each run heard as an ordinary run.

`BatchedTrainer(configs, listeners)` trains configs that `batched.batch_key` puts in one batch
(equal but for seed and learning rate) through one `BatchedLeNet`: one forward, one backward
and one update per step serve all M. Each run keeps what makes it itself: its own initial
weights (bnviz.model.build_lenet of its config), its own data (the train subset its seed
picks) and batch order (its own generator, drawn exactly as bnviz.trainer.Trainer draws it),
its own learning rate. Its events go to its own listeners through a Trainer of its own, whose
flush and evaluation code runs on the run's model taken out of the batch (`unbatch`): the
store, the live charts and the library see M ordinary runs, with the same events, summaries and
failure messages as when trained alone.

A run that diverges ends "diverged" alone; its slice of the batch is zeroed and its learning
rate set to 0, which leaves the others' arithmetic untouched (each model's channels are
computed apart). A run whose stop event is set ends "stopped" alone; the batch ends when no
run is left.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Iterable, Sequence

import torch

from bnviz import data as data_mod
from bnviz.config import Config
from bnviz.events import BNSnapshot, EpochEnd, RunEnded, RunStarted
from bnviz.metrics import summary_defaults
from bnviz.model import build_lenet, count_params
from bnviz.schedule import epoch_plan, probe_size
from bnviz.speed.batched import BatchedLeNet, batch_key, stack_batches
from bnviz.trainer import (FLUSH_SECONDS, Diverged, Trainer, failure, resolve_device,
                           snapshot)

Listener = Callable[[object], None]


class _Member:
    """One run of the batch: its Trainer (events, summary), data, generator and buffers."""

    def __init__(self, i: int, cfg: Config, listeners, stop: threading.Event):
        self.i = i
        self.cfg = cfg
        self.trainer = Trainer(cfg, listeners, stop=stop)
        self.stop = stop
        self.active = True
        self.status, self.reason = "finished", ""
        self.flushed = 0
        self.announced = False

    def end(self, status: str, reason: str) -> None:
        self.active = False
        self.status, self.reason = status, reason


class BatchedTrainer:
    """Trains `configs` (one batch_key) together. `listeners[i]` hear run i; `stops[i]`
    stops run i (one Event for all: pass `stop`). `run()` never raises: every run ends with
    a RunEnded and a summary, returned in order."""

    def __init__(self, configs: Sequence[Config], listeners: Sequence[Iterable[Listener]] = (),
                 stop: threading.Event | None = None,
                 stops: Sequence[threading.Event] | None = None,
                 dataset: data_mod.Dataset | None = None):
        """`dataset`: the data every run reads (default: each run's own, as the Trainer loads
        it)."""
        self.dataset = dataset
        if not configs:
            raise ValueError("a batch needs at least one config")
        keys = {batch_key(c) for c in configs}
        if None in keys or len(keys) != 1:
            raise ValueError("these configs cannot train as one batch (batch_key differs)")
        listeners = list(listeners) or [()] * len(configs)
        if len(listeners) != len(configs):
            raise ValueError("one list of listeners per config")
        if stops is None:
            stop = stop or threading.Event()
            stops = [stop] * len(configs)
        self.members = [_Member(i, c, ls, s)
                        for i, (c, ls, s) in enumerate(zip(configs, listeners, stops))]

    def run(self) -> list[dict]:
        t0 = time.perf_counter()
        self._train_time = 0.0
        self._examples = 0
        for m in self.members:
            t = m.trainer
            t._t0 = t0
            t._total = -1
            t.summary = {"status": "running", **summary_defaults(m.cfg),
                         "examples_per_sec": 0.0, "iterations": 0, "epochs_done": 0}
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - every run must end as an event
            status, reason = failure(e)
            for m in self.members:
                if m.active:
                    m.end(status, reason)
        wall = time.perf_counter() - t0
        for m in self.members:
            if m.active:  # the loop ran to its end, or was stopped
                m.end(*(("stopped", "stopped on request") if m.stop.is_set()
                        else ("finished", "")))
            if not m.announced:
                self._ended(m, wall)
        return [m.trainer.summary for m in self.members]

    def _ended(self, m: _Member, wall: float) -> dict:
        s = m.trainer.summary
        # Each run is credited with its own examples over the batch's training time: the
        # batch's throughput is the sum over its runs.
        per_run = self._examples / len(self.members)
        s.update(status=m.status, reason=m.reason, wall_time=wall,
                 examples_per_sec=per_run / self._train_time if self._train_time else 0.0)
        m.announced = True
        try:
            m.trainer.emit(RunEnded(m.status, m.reason, dict(s)))
        except Exception:  # noqa: BLE001 - a broken listener cannot un-end the run
            pass
        return s

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        members = self.members
        cfg0 = members[0].cfg
        device = resolve_device(cfg0.device)
        sets = {}
        for m in members:  # the train subset depends on the seed when train_size is set
            key = m.cfg.seed if cfg0.train_size else 0
            if key not in sets:
                sets[key] = self.dataset or data_mod.load(cfg0.dataset, cfg0.train_size,
                                                          device, m.cfg.seed)
            m.ds = sets[key]
        net = BatchedLeNet([m.cfg for m in members]).to(device)
        n = len(members[0].ds.train_y)
        plan = epoch_plan(n, cfg0.batch_size, cfg0.devices)
        bs, steps = plan.batch_size, plan.steps
        total = steps * cfg0.epochs
        n_params = count_params(build_lenet(cfg0))
        lrs = torch.tensor([m.cfg.lr for m in members], device=device)
        width = len(members)
        losses = torch.zeros(steps, width, device=device)
        correct = torch.zeros(steps, width, device=device)
        sizes = torch.zeros(steps, device=device)
        # one data set for all (one gather a step), or each run's own train subset
        sources = ((members[0].ds.train_x, members[0].ds.train_y) if len(sets) == 1 else
                   ([m.ds.train_x for m in members], [m.ds.train_y for m in members]))
        for m in members:
            ds, t = m.ds, m.trainer
            t._total = total
            t.summary.update(data_source=ds.source, data=ds.description, device=str(device),
                             n_params=n_params, config_id=m.cfg.config_id(), seed=m.cfg.seed,
                             batched=f"trained with {len(members)} runs as one batched model")
            self._guarded(net, m, lrs, lambda t=t, ds=ds: t.emit(RunStarted(
                m.cfg.to_dict(), ds.source, ds.description, str(device), n_params, n,
                len(ds.test_y), steps, total)))
            m.gen = torch.Generator().manual_seed(m.cfg.seed)
            # each run's column of the batch's per-step records (what its Trainer reads)
            m.losses, m.correct, m.sizes = losses[:, m.i], correct[:, m.i], sizes
            if m.active:
                self._guarded(net, m, lrs, lambda t=t, m=m: t.emit(
                    BNSnapshot(0, 0.0, snapshot(net.unbatch(m.i)))))
        probe = slice(0, probe_size(cfg0.batch_size, n, len(members[0].ds.test_y)))
        eval_every = cfg0.eval_every or steps
        snap_every = cfg0.snapshot_every or eval_every
        it = 0
        last_flush = -math.inf
        for epoch in range(cfg0.epochs):
            perms = torch.stack([torch.randperm(n, generator=m.gen) for m in members]).to(device)
            for m in members:
                m.flushed = 0
            net.train()
            t_epoch = time.perf_counter()
            ex_epoch = 0
            for b in range(steps):
                for m in members:
                    if m.active and m.stop.is_set():
                        if self._flush(m, b, it, epoch, steps):
                            m.end("stopped", "stopped on request")
                            self._ended(m, time.perf_counter() - m.trainer._t0)
                        self._retire(net, m, lrs)
                if not any(m.active for m in members):
                    return
                t_step = time.perf_counter()
                idx = perms[:, b * bs:(b + 1) * bs]  # (M, batch): run m's examples in row m
                xb, yb = stack_batches(*sources, idx)
                out = net(xb)
                per_run = net.losses(out, yb)
                net.zero_grad(set_to_none=True)
                per_run.sum().backward()
                net.sgd_step(lrs)
                with torch.no_grad():
                    losses[b] = per_run.detach()
                    correct[b] = (out.argmax(2) == yb).sum(0)
                    sizes[b] = len(yb)
                it += 1
                ex_epoch += len(yb)
                self._train_time += time.perf_counter() - t_step
                self._examples += len(yb) * len(members)
                now = time.perf_counter()
                due_eval = it % eval_every == 0 or b == steps - 1
                due_snap = it % snap_every == 0 or b == steps - 1
                flush = due_eval or it % snap_every == 0 or now - last_flush > FLUSH_SECONDS
                for m in members:
                    if not m.active:
                        continue
                    i = idx[m.i]
                    if flush and not self._flush(m, b + 1, it, epoch, steps):
                        self._retire(net, m, lrs)
                        continue
                    if due_eval or due_snap:
                        self._guarded(net, m, lrs, lambda m=m, i=i: self._report(
                            net, m, i, it, epoch + (b + 1) / steps, b + 1, probe, due_eval,
                            due_snap))
                if flush:
                    last_flush = now
            elapsed = time.perf_counter() - t_epoch
            for m in members:
                if m.active:
                    t = m.trainer
                    t.summary["epochs_done"] = epoch + 1
                    self._guarded(net, m, lrs, lambda t=t: t.emit(EpochEnd(
                        epoch + 1, t.summary["train_loss"], t.summary["train_acc"],
                        t.summary["test_acc"], ex_epoch / elapsed,
                        time.perf_counter() - t._t0)))

    @staticmethod
    def _report(net, m: _Member, idx, it: int, epoch: float, upto: int, probe, due_eval: bool,
                due_snap: bool) -> None:
        """The run's evaluation and snapshot, on its own model taken out of the batch."""
        single = net.unbatch(m.i)
        if due_eval:
            batch = (m.ds.train_x.index_select(0, idx), m.ds.train_y.index_select(0, idx))
            m.trainer._evaluate(single, m.ds, it, epoch, m.losses, m.correct, m.sizes, upto,
                                probe, batch)
        if due_snap:
            m.trainer.emit(BNSnapshot(it, epoch, snapshot(single)))

    def _guarded(self, net, m: _Member, lrs, fn) -> None:
        """fn() for run m; a listener of m that raises fails m alone."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            m.end(*failure(e))
            self._ended(m, time.perf_counter() - m.trainer._t0)
            self._retire(net, m, lrs)

    def _flush(self, m: _Member, upto: int, it: int, epoch: int, steps: int) -> bool:
        """The run's steps since its last flush, as Step events; False when it diverged
        (it has then ended, "diverged", with the Trainer's message)."""
        try:
            m.trainer._flush(m.losses, m.correct, m.sizes, m.flushed, upto, it, epoch, steps)
        except Diverged as e:
            m.end("diverged", str(e))
            self._ended(m, time.perf_counter() - m.trainer._t0)
            return False
        except Exception as e:  # noqa: BLE001 - a listener of this run raised: it fails alone
            m.end(*failure(e))
            self._ended(m, time.perf_counter() - m.trainer._t0)
            return False
        m.flushed = upto
        return True

    @staticmethod
    @torch.no_grad()
    def _retire(net: BatchedLeNet, m: _Member, lrs: torch.Tensor) -> None:
        """Take run m out of the arithmetic: its weights zeroed (finite outputs, no NaN in its
        channels) and its learning rate 0. The other runs' channels never read its numbers."""
        lrs[m.i] = 0.0
        for p in net.parameters():
            p.view(net.m, -1)[m.i].zero_()
        for bn in net.norms.values():
            w = bn.num_features // net.m
            bn.running_mean[w * m.i:w * (m.i + 1)].zero_()
            bn.running_var[w * m.i:w * (m.i + 1)].fill_(1.0)


def train_batch(configs: Sequence[Config], listeners: Sequence[Iterable[Listener]] = (),
                **kw) -> list[dict]:
    return BatchedTrainer(configs, listeners, **kw).run()
