"""A test double of a remote runner, for the Runner contract (bnviz/runner.py).

It stands in for an engine such as Celery in eager mode: the "remote worker" trains the run to
the end inside `submit`, writes it to the shared run store, and the web side knows only what the
store says — no records in memory, no threads. Ray and Celery are not installed here, so this is
what the contract test and the page test run against besides JobManager.
"""
from __future__ import annotations

from bnviz import data as data_mod
from bnviz.config import Config, validate
from bnviz.runs.jobs import JobRefused, Limits, new_run_id
from bnviz.runs.record import RunRecord, RunView
from bnviz.runs.store import RunStore
from bnviz.trainer import Trainer


class EagerRunner:
    def __init__(self, store: RunStore, limits: Limits | None = None):
        self.store = store
        self.library = None
        self.limits = limits or Limits()
        self.last_store_error = ""
        self.submitted = 0
        self._closed = False

    def submit(self, cfg: Config, session: str = "", reuse: bool = True, group: str = "") -> str:
        if self._closed:
            raise JobRefused("the server is shutting down")
        errors = validate(cfg) + self.limits.check(cfg, 5000)
        if errors:
            raise JobRefused("; ".join(errors))
        source = data_mod.resolve_source(cfg.dataset)
        if reuse and (found := self.store.find_finished(cfg.config_id(), cfg.seed, source)):
            return found
        rec = RunRecord(new_run_id(), cfg, session)
        Trainer(cfg, [rec], stop=rec.stop).run()  # the "remote" worker, run to the end
        self.store.save(rec.view())
        self.submitted += 1
        return rec.run_id

    def cancel(self, run_id: str, session: str | None = None) -> bool:
        v = self.store.load(run_id)
        return v is not None and v.active and session in (None, v.session)

    def get(self, run_id: str) -> RunView | None:
        return self.store.load(run_id)

    def find(self, cfg: Config, library: bool = True) -> RunView | None:
        found = self.store.find_finished(cfg.config_id(), cfg.seed,
                                         data_mod.resolve_source(cfg.dataset))
        return self.get(found) if found else None

    def owns(self, run_id: str, session: str) -> bool:
        v = self.store.load(run_id)
        return v is not None and bool(session) and v.session == session

    def list_runs(self, status: str | None = None, limit: int = 200) -> list[dict]:
        return self.store.list_runs(status=status, limit=limit)  # every run has ended

    def stats(self) -> dict[str, int]:
        return dict(queued=0, running=0, in_memory=0, workers=0, submitted=self.submitted)

    def shutdown(self, timeout: float = 10.0) -> None:
        self._closed = True
