"""Where bnviz looks for a run of a config, in one order everywhere: this process's own runs
in memory, then the user's run store, then the results library; an earlier place wins. The
job manager's reuse and `find`, the CLI's grids, the grid pages and the library build all ask
here, so none can look in another order or match a config another way.

Each place matches in its own way: memory by whatever the caller asks of its live records
(they are passed in already picked), the store by config id, seed and the data source the
config resolves to here, the library by its stored config (bnviz.library.Library.find).
"""
from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

from bnviz import data as data_mod
from bnviz.config import Config

FINISHED = ("finished",)
MEMORY, STORE, LIBRARY = "memory", "store", "library"


class Found(NamedTuple):
    run_id: str
    where: str  # MEMORY, STORE or LIBRARY


def in_store(store, cfg: Config, statuses: tuple[str, ...] = FINISHED) -> str | None:
    """The newest run in `store` of cfg's config id and seed, on the data cfg loads here,
    that ended in one of `statuses`."""
    return store.find_finished(cfg.config_id(), cfg.seed,
                               data_mod.resolve_source(cfg.dataset), statuses)


def _call(fn):
    return fn()


def find(cfg: Config, memory: Iterable = (), store=None, library=None,
         statuses: tuple[str, ...] = FINISHED, guard: Callable = _call) -> Found | None:
    """The run answering `cfg`: the newest of `memory` (records or views the caller picked),
    else the store's (`guard` wraps the store call, e.g. to turn a StoreError into None),
    else the library's."""
    newest = max(memory, key=lambda r: r.created, default=None)
    if newest is not None:
        return Found(newest.run_id, MEMORY)
    if store is not None:
        run_id = guard(lambda: in_store(store, cfg, statuses))
        if run_id:
            return Found(run_id, STORE)
    if library is not None:
        run_id = library.find(cfg)
        if run_id:
            return Found(run_id, LIBRARY)
    return None
