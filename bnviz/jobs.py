"""Background training: a bounded pool of worker threads fed by a fair queue.

Workers never touch any UI. Each job is a RunRecord (a thread-safe listener); pages read it
through `view()`. The manager is shared by every browser session of a server.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from . import data as data_mod
from .config import Config, validate
from .record import ACTIVE, RunRecord, RunView
from .store import RunStore, StoreError
from .trainer import Trainer


class JobRefused(Exception):
    """A run was not started; the message says why in plain words."""


@dataclass
class Limits:
    """Caps for a shared server (all 0 = unlimited)."""
    per_session: int = 1  # active (queued or running) runs per browser session
    max_queue: int = 32
    max_epochs: int = 0
    max_train_size: int = 0  # 0 = any; else the full set is refused above this
    max_work: int = 0  # epochs × training examples, the cost of a run
    keep_finished_s: float = 3600.0  # finished runs leave memory after this (the store keeps them)

    def check(self, cfg: Config, n_train: int) -> list[str]:
        errs = []
        if self.max_epochs and cfg.epochs > self.max_epochs:
            errs.append(f"epochs is capped at {self.max_epochs} on this server "
                        f"(asked for {cfg.epochs})")
        n = cfg.train_size or n_train
        if self.max_train_size and n > self.max_train_size:
            errs.append(f"train-set size is capped at {self.max_train_size:,} on this server "
                        f"(asked for {n:,}); set train_size")
        if self.max_work and n * cfg.epochs > self.max_work:
            errs.append(f"epochs × training examples is capped at {self.max_work:,} on this "
                        f"server (asked for {n * cfg.epochs:,})")
        return errs


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class JobManager:
    def __init__(self, workers: int = 1, store: RunStore | None = None,
                 limits: Limits | None = None, torch_threads: int | None = None):
        if torch_threads:
            import torch
            torch.set_num_threads(torch_threads)
        self.store = store
        self.limits = limits or Limits()
        self._jobs: dict[str, RunRecord] = {}
        self._queue: deque[RunRecord] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.interrupted_on_start = store.mark_interrupted() if store else 0
        self._threads = [threading.Thread(target=self._work, name=f"bnviz-worker-{i}",
                                          daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- for pages -----------------------------------------------------------------------
    def submit(self, cfg: Config, session: str = "", reuse: bool = True, group: str = "") -> str:
        """Queue a run and return its id, or the id of a finished identical run (reuse).
        Runs of one `group` (a grid) count as one active run of their session."""
        errors = validate(cfg)
        n_train = 60000 if data_mod.resolve_source(cfg.dataset) == "full" else 5000
        errors += self.limits.check(cfg, n_train)
        if errors:
            raise JobRefused("; ".join(errors))
        if reuse and self.store is not None:
            found = self._safe(lambda: self.store.find_finished(
                cfg.config_id(), cfg.seed, data_mod.resolve_source(cfg.dataset)))
            if found:
                return found
        with self._cv:
            if self._closed:
                raise JobRefused("the server is shutting down")
            mine = {r.group or r.run_id for r in self._jobs.values()
                    if r.session == session and r.status in ACTIVE}
            if session and len(mine - {group} if group else mine) >= self.limits.per_session:
                raise JobRefused(f"you already have {len(mine)} run(s) going "
                                 f"(limit {self.limits.per_session}); stop it or wait")
            if self.limits.max_queue and len(self._queue) >= self.limits.max_queue:
                raise JobRefused(f"the queue is full ({len(self._queue)} runs waiting); "
                                 "try again in a minute")
            rec = RunRecord(new_run_id(), cfg, session)
            rec.group = group
            self._jobs[rec.run_id] = rec
            self._queue.append(rec)
            self._reposition()
            self._cv.notify()
        self._persist(rec)
        return rec.run_id

    def cancel(self, run_id: str, session: str | None = None) -> bool:
        """Stop a queued or running run. With `session`, only that session's own runs."""
        with self._cv:
            rec = self._jobs.get(run_id)
            if rec is None or (session is not None and rec.session != session):
                return False
            rec.stop.set()
            if rec in self._queue:
                self._queue.remove(rec)
                self._reposition()
                rec.set_status("stopped", "stopped before it started")
                queued = True
            else:
                queued = False
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
            return self._safe(lambda: self.store.load(run_id))
        return None

    def find(self, cfg: Config) -> RunView | None:
        """The newest run of exactly this config and seed: live in memory, else finished in
        the store."""
        with self._cv:
            live = [r for r in self._jobs.values() if r.config == cfg]
        if live:
            return max(live, key=lambda r: r.created).view()
        if self.store is not None:
            found = self._safe(lambda: self.store.find_finished(
                cfg.config_id(), cfg.seed, data_mod.resolve_source(cfg.dataset)))
            if found:
                return self.get(found)
        return None

    def active_run(self, session: str) -> str | None:
        with self._cv:
            for r in self._jobs.values():
                if r.session == session and r.status in ACTIVE:
                    return r.run_id
        return None

    def stats(self) -> dict[str, int]:
        with self._cv:
            running = sum(r.status == "running" for r in self._jobs.values())
            return dict(queued=len(self._queue), running=running, in_memory=len(self._jobs),
                        workers=sum(t.is_alive() for t in self._threads))

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closed = True
            for r in self._jobs.values():
                r.stop.set()
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)

    # -- inside -------------------------------------------------------------------------
    def _reposition(self) -> None:
        for i, r in enumerate(self._queue):
            with r.lock:
                r.position = i + 1
                r.version += 1

    def _next(self) -> RunRecord | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait(timeout=5.0)
                self._expire()
            if self._closed:
                return None
            rec = self._queue.popleft()
            rec.position = 0
            self._reposition()
            return rec

    def _expire(self) -> None:
        """Drop finished runs from memory after a while (the store still has them)."""
        keep = self.limits.keep_finished_s
        now = time.time()
        for run_id, r in list(self._jobs.items()):
            if r.status not in ACTIVE and r.ended and now - r.ended > keep:
                del self._jobs[run_id]

    def _work(self) -> None:
        while True:
            rec = self._next()
            if rec is None:
                return
            try:
                listeners = [rec]
                if self.store is not None:
                    listeners.append(self._on_start(rec))
                Trainer(rec.config, listeners, stop=rec.stop).run()
            except Exception as e:  # noqa: BLE001 - the worker lives on, the run is failed
                rec.set_status("failed", f"the worker crashed: {type(e).__name__}: {e}")
            if rec.status in ACTIVE:  # no RunEnded reached the record
                rec.set_status("failed", "the run ended without a result")
            self._persist(rec)

    def _on_start(self, rec: RunRecord):
        def listener(e):
            if e.kind == "started":
                self._persist(rec)
        return listener

    def _persist(self, rec: RunRecord) -> None:
        if self.store is not None:
            self._safe(lambda: self.store.save(rec.view()))

    def _safe(self, fn):
        try:
            return fn()
        except StoreError as e:
            self.last_store_error = str(e)
            return None

    last_store_error: str = ""
