"""Background training: a bounded pool of worker threads fed by a queue that is fair between
sessions.

Workers never touch any UI. Each job is a RunRecord (a thread-safe listener); pages read it
through `view()`, a frozen copy, so no page can change another session's run. The manager is
shared by every browser session of a server and implements `runner.Runner`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable, Iterable

from bnviz.i18n import _
from bnviz import data as data_mod
from bnviz.config import Config, validate
from bnviz.runs import lookup
from bnviz.runs.fair_queue import FairQueue
from bnviz.runs.limits import JobRefused, Limits
from bnviz.runs.record import ACTIVE, RunRecord, RunView
from bnviz.runs.store import RunStore, StoreError
from bnviz.runs.training import new_run_id, train_together

log = logging.getLogger("bnviz.runs.jobs")


def _listed(rec: RunRecord) -> dict:
    """A run in memory as RunStore.list_runs gives a stored one."""
    with rec.lock:
        return dict(run_id=rec.run_id, config_id=rec.config.config_id(), seed=rec.config.seed,
                    config=rec.config.to_dict(), status=rec.status, reason=rec.reason,
                    data_source=rec.info.get("data_source", ""),
                    device=rec.info.get("device", ""), created=rec.created, ended=rec.ended,
                    summary=dict(rec.summary))


def _lane(rec: RunRecord) -> str:
    return rec.session or rec.run_id  # runs without a session (CLI, tests) queue on their own


def warm_up() -> None:
    """Pay one-off costs before the first Train press: torch's first optimizer imports
    torch._dynamo (over a second here), the fused CPU kernels are compiled on a fresh machine
    (about half a second) and the data set is decoded into memory."""
    import torch

    from bnviz.speed import fused
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    fused.status()
    try:
        data_mod.load("auto")
    except data_mod.DataError:
        pass  # the run itself reports it, with the full explanation


class JobManager:
    """`observers` see every event of every run (logging, metrics); one that raises fails
    that run, never the worker."""

    def __init__(self, workers: int = 1, store: RunStore | None = None,
                 limits: Limits | None = None, torch_threads: int | None = None,
                 observers: Iterable[Callable] = (), library=None):
        if torch_threads:
            import torch
            torch.set_num_threads(torch_threads)
        self.store = store
        self.library = library  # bnviz.library.Library: answers looked up after the store
        self.limits = limits or Limits()
        self.observers = list(observers)
        self.last_store_error = ""  # set while the store fails; pages show it
        self._unsaved: dict[str, RunRecord] = {}
        self._jobs: dict[str, RunRecord] = {}
        self._queue: FairQueue[RunRecord] = FairQueue(_lane)
        self._cv = threading.Condition()
        self._closed = False
        self._last_sweep = time.time()
        self.expired = 0  # ended runs dropped from memory so far
        self.interrupted_on_start = (self._safe(store.mark_interrupted) or 0) if store else 0
        if self.limits.max_workers:
            workers = min(workers, self.limits.max_workers)
        self._threads: list[threading.Thread] = []
        with self._cv:
            self._threads += [self._spawn(i) for i in range(workers)]
        self._warm = threading.Thread(target=warm_up, name="bnviz-warm-up", daemon=True)
        self._warm.start()

    # -- for pages (the Runner interface) --------------------------------------------------
    def submit(self, cfg: Config, session: str = "", reuse: bool = True, group: str = "") -> str:
        """Queue a run and return its id, or the id of a finished identical run (reuse).
        Runs of one `group` (a grid) count as one active run of their session."""
        errors = validate(cfg)
        errors += self.limits.check(cfg, *data_mod.sizes(cfg.dataset))
        if errors:
            raise JobRefused("; ".join(errors))
        if reuse:
            found = self._finished_twin(cfg)
            if found:
                return found
        lim = self.limits
        with self._cv:
            self._sweep()
            if self._closed:
                raise JobRefused(_("the server is shutting down"))
            mine = {r.group or r.run_id for r in self._jobs.values()
                    if r.session == session and r.status in ACTIVE}
            if session and len(mine - {group} if group else mine) >= lim.per_session:
                raise JobRefused(_("you already have {n} run(s) going (limit {limit}); stop it "
                                   "or wait").format(n=len(mine), limit=lim.per_session))
            if session and lim.per_session_queued and \
                    self._queue.count(session) >= lim.per_session_queued:
                raise JobRefused(_("you already have {n} runs waiting (limit {limit} per "
                                   "visitor)").format(n=lim.per_session_queued,
                                                      limit=lim.per_session_queued))
            if lim.max_queue and len(self._queue) >= lim.max_queue:
                raise JobRefused(_("the queue is full ({n} runs waiting, limit {limit}); try "
                                   "again in a minute").format(n=len(self._queue),
                                                               limit=lim.max_queue))
            rec = RunRecord(new_run_id(), cfg, session)
            rec.group = group
            self._jobs[rec.run_id] = rec
            self._queue.push(rec)
            self._reposition()
            self._cv.notify()
        self._persist(rec)
        return rec.run_id

    @contextlib.contextmanager
    def together(self):
        """Runs submitted inside are all queued before a worker takes any: a grid's runs can
        then leave the queue as one batched model (see _batch_mates)."""
        with self._cv:
            yield

    def owns(self, run_id: str, session: str) -> bool:
        """Whether `session` started this run (and may stop it). Stored runs belong to no
        live session once they have left memory."""
        with self._cv:
            rec = self._jobs.get(run_id)
            return rec is not None and bool(session) and rec.session == session

    def cancel(self, run_id: str, session: str | None = None) -> bool:
        """Stop a queued or running run. With `session`, only that session's own runs."""
        with self._cv:
            rec = self._jobs.get(run_id)
            if rec is None or (session is not None and rec.session != session):
                return False
            rec.stop.set()
            queued = rec in self._queue
            if queued:
                self._queue.remove(rec)
                self._reposition()
                rec.set_status("stopped", "stopped before it started")
        if queued:
            self._persist(rec)
        return True

    def get(self, run_id: str) -> RunView | None:
        """The live view of a run in memory, else the stored one."""
        with self._cv:
            rec = self._jobs.get(run_id)
        if rec is not None:
            return rec.view()
        if self.store is not None:
            v = self._safe(lambda: self.store.load(run_id))
            if v is not None:
                return v
        if self.library is not None:
            return self.library.load(run_id)
        return None

    def _finished_twin(self, cfg: Config) -> str | None:
        """A finished run of the same config id and seed on the same data: in memory first
        (a run is 'finished' there a moment before the store has saved it), then stored."""
        source = data_mod.resolve_source(cfg.dataset)
        key = (cfg.config_id(), cfg.seed)
        with self._cv:
            twins = [r for r in self._jobs.values() if r.status == "finished"
                     and (r.config.config_id(), r.config.seed) == key
                     and r.info.get("data_source") == source]
        found = lookup.find(cfg, twins, self.store, self.library, guard=self._safe)
        return found.run_id if found else None

    def find(self, cfg: Config, library: bool = True) -> RunView | None:
        """The newest run of exactly this config and seed: live in memory, else finished in
        the store, else (unless `library` is False) the results library's."""
        with self._cv:
            live = [r for r in self._jobs.values() if r.config == cfg]
        found = lookup.find(cfg, live, self.store, self.library if library else None,
                            guard=self._safe)
        return self.get(found.run_id) if found else None

    def list_runs(self, status: str | None = None, limit: int = 200) -> list[dict]:
        """This server's runs, newest first, as the store lists them (metadata, no series):
        those in memory with their live status (the store may not have their latest yet),
        then the stored ones."""
        with self._cv:
            live = {r.run_id: _listed(r) for r in self._jobs.values()}
        rows = [d for d in live.values() if status is None or d["status"] == status]
        if self.store is not None:
            stored = self._safe(lambda: self.store.list_runs(status=status,
                                                             limit=limit + len(live)))
            rows += [d for d in stored or [] if d["run_id"] not in live]
        return sorted(rows, key=lambda d: -d["created"])[:limit]

    def stats(self) -> dict[str, int]:
        with self._cv:
            self._sweep()
            running = sum(r.status == "running" for r in self._jobs.values())
            return dict(queued=len(self._queue), running=running, in_memory=len(self._jobs),
                        workers=sum(t.is_alive() for t in self._threads),
                        expired=self.expired)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closed = True
            for r in self._jobs.values():
                r.stop.set()
            self._cv.notify_all()
            threads = list(self._threads)
        for t in [*threads, self._warm]:
            t.join(timeout)

    # -- inside -------------------------------------------------------------------------
    def _spawn(self, i: int) -> threading.Thread:
        t = threading.Thread(target=self._work, name=f"bnviz-worker-{i}", daemon=True)
        t.start()
        return t

    def _reposition(self) -> None:
        for i, r in enumerate(self._queue):
            with r.lock:
                r.position = i + 1
                r.version += 1

    def _next(self) -> list[RunRecord] | None:
        """The next run to train, with the queued runs of its grid that can train with it as
        one batched model (same batch key, where batching pays), or None when closing."""
        with self._cv:
            while not len(self._queue) and not self._closed:
                self._cv.wait(timeout=5.0)
                self._sweep()
            if self._closed:
                return None
            self._sweep()
            rec = self._queue.pop()
            recs = [rec, *self._batch_mates(rec)]
            for r in recs:
                r.position = 0
            self._reposition()
            return recs

    def _batch_mates(self, rec: RunRecord) -> list[RunRecord]:
        """Queued runs of rec's grid that train in one batch with it (taken off the queue)."""
        if not self.batching or not rec.group:
            return []
        from bnviz.runs.training import batches
        from bnviz.speed.batched import MAX_BATCH
        grid = [r for r in self._queue if r.group == rec.group and r.session == rec.session]
        # the batch rec leads, as the grid runners would group these runs
        mates = [grid[i - 1] for i in batches([rec.config, *(r.config for r in grid)])[0][1:]]
        # one batch per worker: the other workers take the rest of the grid's runs
        # (at least two: the last worker's share of what is left is still a batch)
        share = max(2, -(-(1 + len(mates)) // max(1, len(self._threads))))
        mates = mates[:min(MAX_BATCH, share) - 1]
        for r in mates:
            self._queue.remove(r)
        return mates

    def _sweep(self) -> None:
        """Drop ended runs from memory once they are older than `keep_finished_s` (the store
        keeps them). Called under the lock from submit, stats and the workers, at most every
        `expire_every_s`, so it runs whether the queue is idle or busy."""
        now = time.time()
        if now - self._last_sweep < self.limits.expire_every_s:
            return
        self._last_sweep = now
        keep = self.limits.keep_finished_s
        for run_id, r in list(self._jobs.items()):
            if r.status not in ACTIVE and r.ended and now - r.ended >= keep \
                    and run_id not in self._unsaved:
                del self._jobs[run_id]
                self.expired += 1

    def _work(self) -> None:
        recs = None
        try:
            while (recs := self._next()) is not None:
                self._run(recs)
            return
        except BaseException as e:  # noqa: BLE001 - SystemExit from a library, a bug here
            log.exception("bnviz worker thread died")
            for rec in recs or []:
                if rec.status in ACTIVE:
                    rec.set_status("failed",
                                   f"the worker running it died: {type(e).__name__}: {e}")
                    try:
                        self._persist(rec)
                    except Exception:  # noqa: BLE001 - the replacement matters more
                        pass
        with self._cv:  # keep the pool at its size: a replacement takes the slot
            me = threading.current_thread()
            if not self._closed and me in self._threads:
                i = self._threads.index(me)
                self._threads[i] = self._spawn(i)

    def _run(self, recs: list[RunRecord]) -> None:
        saved = [threading.Event() for _ in recs]  # set once a run's end is in the store
        try:
            every = []
            for rec, done in zip(recs, saved):
                listeners = [self._saved_before_ended(rec, done), *self.observers]
                # A run of a batch trains while its batch does: its budget is the batch's.
                budget = self.limits.budget(rec.config, *data_mod.sizes(rec.config.dataset),
                                            batch=[r.config for r in recs])
                if budget:
                    listeners.insert(0, self._time_budget(rec, budget))
                if self.store is not None:
                    listeners.append(self._on_start(rec))
                every.append(listeners)
            self._train_batch(recs, every)
        except Exception as e:  # noqa: BLE001 - the worker lives on, the runs are failed
            for rec, done in zip(recs, saved):
                if rec.status in ACTIVE:
                    rec.set_status("failed", f"the worker crashed: {type(e).__name__}: {e}")
                    done.clear()
        for rec, done in zip(recs, saved):
            if rec.status in ACTIVE:  # no RunEnded reached the record
                rec.set_status("failed", "the run ended without a result")
                done.clear()
            if not done.is_set():
                self._persist(rec)

    # Whether a grid's runs may train as one batched model (a runner that cannot, says so).
    batching = True

    def _train_batch(self, recs: list[RunRecord], listeners: list[list]) -> None:
        """Train `recs` (one run, or one batch of a grid's runs as one batched model) here, in
        this worker thread: each run's events go to its own listeners, each rec.stop stops
        its own run (bnviz.runs.ray_runner trains them on a Ray worker instead)."""
        train_together([r.config for r in recs], listeners, [r.stop for r in recs])

    def _saved_before_ended(self, rec: RunRecord, saved: threading.Event):
        """The record as listener, except that a run's final state reaches the store before
        the record says it ended: whoever sees 'finished' here finds it stored too."""
        def listener(e):
            if e.kind == "ended" and self.store is not None:
                final = dataclasses.replace(rec.view(), status=e.status, reason=e.reason,
                                            ended=time.time(), summary=dict(e.summary))
                self._persist(rec, final)
                if rec.run_id not in self._unsaved:
                    saved.set()
            rec(e)
        return listener

    def _time_budget(self, rec: RunRecord, budget: float):
        """Stop a run that has trained longer than `budget` seconds, saying so: it ends
        "stopped", with what it had done so far, and the reason goes to the record and the
        store (this listener runs first, so it rewrites the RunEnded that the others see)."""
        t0 = [time.perf_counter()]
        over = []

        def listener(e):
            if e.kind == "started":
                t0[0] = time.perf_counter()
            elif e.kind in ("step", "eval", "snapshot") and not over:
                elapsed = time.perf_counter() - t0[0]
                if elapsed > budget:
                    over.append(f"over its time budget on this server ({elapsed:.0f} s run, "
                                f"budget {budget:.0f} s: {self.limits.budget_factor:g} × "
                                f"the estimate, at least {self.limits.budget_min_s:g} s)")
                    rec.stop.set()
            elif e.kind == "ended" and over and e.status == "stopped":
                e.reason = over[0]
                e.summary["reason"] = over[0]
        return listener

    def _on_start(self, rec: RunRecord):
        def listener(e):
            if e.kind == "started":
                self._persist(rec)
        return listener

    def _persist(self, rec: RunRecord | None = None, view: RunView | None = None) -> None:
        """Save a run (as `view` when given); when the store is locked or gone, keep it as
        unsaved and save it (and every other unsaved run) with the next save that works, so no
        run is lost."""
        if self.store is None:
            return
        pending = [rec] if rec is not None else []
        pending += [r for r in list(self._unsaved.values()) if r is not rec]
        for r in pending:
            try:
                self.store.save(view if view is not None and r is rec else r.view())
            except StoreError as e:
                self._unsaved[r.run_id] = r
                self.last_store_error = str(e)
                log.warning("run store: %s", e)
                return
            self._unsaved.pop(r.run_id, None)
        self.last_store_error = ""

    def _safe(self, fn):
        try:
            return fn()
        except StoreError as e:
            self.last_store_error = str(e)
            log.warning("run store: %s", e)
            return None
