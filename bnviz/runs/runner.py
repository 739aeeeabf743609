"""What the pages need from whatever trains the runs, and how a server picks its runner.

`JobManager` (threads in the web server's process) is the default runner; `RayRunner`
(bnviz.runs.ray_runner, BNVIZ_RUNNER=ray) trains the same runs on a Ray cluster. Any runner
implements the calls below and the pages stay as they are; see "Deploying" in the README.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Mapping, Protocol, runtime_checkable

from bnviz.config import Config
from bnviz.runs.jobs import JobManager, JobRefused, Limits
from bnviz.runs.record import RunView
from bnviz.runs.store import RunStore, StoreError

__all__ = ["Runner", "JobRefused", "runner_from_env"]
log = logging.getLogger("bnviz.runs.runner")


@runtime_checkable
class Runner(Protocol):
    """The contract (tests/test_runner.py checks it against JobManager and a fake):

    - `submit` validates, applies the server's limits and returns a run id at once; it raises
      JobRefused with the limit named, never anything else. A finished run of the same config
      and seed may be returned instead when `reuse`.
    - `get` returns a frozen RunView (live while active, else from the store, else from the
      results library) or None.
    - `find` returns the newest run of a config and seed the same way; `library=False` leaves
      the library out (a page shows a live run beside the library's).
    - `cancel` with a session stops only that session's runs; it returns whether it did.
    - `owns` says whether a session may stop a run; every other session sees it read-only.
    - `list_runs` lists this server's runs as RunStore.list_runs does (metadata dicts, newest
      first, optionally of one status), live status for runs still training: pages list runs
      through it, never through the store.
    - `stats` has at least queued, running, in_memory and workers.
    - `shutdown` stops every run and leaves no thread behind; later submits are refused.
    """
    store: RunStore | None
    library: object | None  # bnviz.library.Library, read after the store; None: no library
    last_store_error: str

    def submit(self, cfg: Config, session: str = "", reuse: bool = True,
               group: str = "") -> str: ...

    def cancel(self, run_id: str, session: str | None = None) -> bool: ...

    def get(self, run_id: str) -> RunView | None: ...

    def find(self, cfg: Config, library: bool = True) -> RunView | None: ...

    def owns(self, run_id: str, session: str) -> bool: ...

    def list_runs(self, status: str | None = None, limit: int = 200) -> list[dict]: ...

    def stats(self) -> dict[str, int]: ...

    def shutdown(self, timeout: float = 10.0) -> None: ...


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, "")) if env.get(name) else default
    except ValueError:
        return default


def runner_from_env(env: Mapping[str, str] | None = None) -> Runner:
    """The server's runner. BNVIZ_HOSTED=1 turns on the public-demo limits (Limits.hosted)
    and one torch thread per worker, so the web server keeps a core to answer requests;
    BNVIZ_LIMIT_<FIELD> sets any one field of Limits; BNVIZ_WORKERS, BNVIZ_TORCH_THREADS.
    A store that cannot be opened leaves runs in memory and says why in last_store_error."""
    env = os.environ if env is None else env
    hosted = env.get("BNVIZ_HOSTED") == "1"
    limits = Limits.hosted() if hosted else Limits()
    for f in dataclasses.fields(Limits):  # BNVIZ_LIMIT_MAX_EPOCHS=5 etc. override one cap
        raw = env.get(f"BNVIZ_LIMIT_{f.name.upper()}")
        if raw:
            try:
                setattr(limits, f.name, type(getattr(limits, f.name))(raw))
            except ValueError:
                log.warning("ignored BNVIZ_LIMIT_%s=%r: not a number", f.name.upper(), raw)
    try:
        store, error = RunStore(env.get("BNVIZ_DB") or None), ""
    except StoreError as e:
        store, error = None, str(e)
    # Local default: two training threads, so a grid trains two runs at a time and a second
    # tab need not queue, with (cores - 1) // 2 torch threads each (1 on a 2-core laptop).
    # Single-threaded runs side by side each just take a core; an OpenMP team of 2 threads
    # instead stalls at every op whenever the server or browser takes one of its cores.
    # Measured on 2 cores (README, Benchmarks): a 6-run grid in 14 s on 2 workers against 26 s
    # on one. Hosted: one worker with one torch thread, a core left to serve the visitors.
    workers = max(1, _int(env, "BNVIZ_WORKERS", 1 if hosted else 2))
    cores = os.cpu_count() or 2
    threads = _int(env, "BNVIZ_TORCH_THREADS",
                   1 if hosted else max(1, (cores - 1) // workers)) or None
    from bnviz.library import open_library
    if env.get("BNVIZ_RUNNER", "").lower() == "ray":  # training on a Ray cluster
        from bnviz.runs.ray_runner import ray_runner_from_env
        mgr = ray_runner_from_env(env, store, limits, open_library())
        mgr.last_store_error = error or mgr.last_store_error
        return mgr
    mgr = JobManager(workers=workers, store=store, limits=limits, torch_threads=threads,
                     library=open_library())
    mgr.last_store_error = error or mgr.last_store_error
    return mgr
