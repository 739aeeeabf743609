"""Training one config: the one way every runner does it — the job manager's worker threads,
the Ray actors, `bnviz train`, the CLI's grids and the results library's build and check.

bnviz's Trainer with the fast model and its summary lines (bnviz.speed.lenet), its events fed
to the listeners; `train_record` also keeps them in a RunRecord. A change here changes every
runner at once, and the library check (bnviz.library.build) retrains through it too, so the
library is compared with exactly what a page would train today.
"""
from __future__ import annotations

import threading
import uuid
from typing import Callable, Iterable

from bnviz.config import Config
from bnviz.runs.record import RunRecord


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def train(cfg: Config, listeners: Iterable[Callable] = (),
          stop: threading.Event | None = None) -> dict:
    """Train `cfg`, feeding every event to `listeners`; returns the run's summary. `stop`
    stops it (the run then ends "stopped"). Never raises: every ending is a RunEnded."""
    from bnviz.speed.lenet import training_kwargs
    from bnviz.trainer import Trainer  # torch is imported only when something trains
    return Trainer(cfg, listeners, stop=stop, **training_kwargs(cfg)).run()


def train_record(cfg: Config, session: str = "", listeners: Iterable[Callable] = (),
                 stop: threading.Event | None = None) -> RunRecord:
    """Train `cfg` into a new RunRecord (which hears each event first, then `listeners`)."""
    rec = RunRecord(new_run_id(), cfg, session)
    train(cfg, [rec, *listeners], stop=stop)
    return rec


def train_together(configs: list[Config], listeners: list[list[Callable]],
                   stops: list[threading.Event]) -> list[dict]:
    """Train one batch of `batches`: a single config as `train` does, several (one batch key)
    as one batched model (bnviz.speed.batched_trainer). listeners[i] hear run i, stops[i]
    stops it; returns the runs' summaries. Every runner trains a batch through here."""
    if len(configs) == 1:
        return [train(configs[0], listeners[0], stop=stops[0])]
    from bnviz.speed.batched_trainer import BatchedTrainer
    return BatchedTrainer(configs, listeners, stops=stops).run()


def train_records(configs: list[Config], session: str = "", listeners: Iterable[Callable] = (),
                  stop: threading.Event | None = None) -> list[RunRecord]:
    """Train `configs` (one batch of `batches`) into a RunRecord each, through
    `train_together`; every record hears its own run's events, as from train_record."""
    recs = [RunRecord(new_run_id(), c, session) for c in configs]
    stop = stop or threading.Event()
    train_together(list(configs), [[r, *listeners] for r in recs], [stop] * len(recs))
    return recs


def batches(configs: list[Config], max_size: int = 0, force: bool = False) -> list[list[int]]:
    """The indices of `configs` grouped into the batches they train in: configs that may train
    as one model (same batch_key) and for which batching pays (bnviz.speed.batched.pays), in
    order of first appearance and at most `max_size` each (0: no limit; 1: every config
    alone); every other config alone. `force` batches where it does not pay too (benchmarks)."""
    from bnviz.speed.batched import batch_key, pays
    groups: dict[tuple, list[int]] = {}
    out: list[list[int]] = []
    for i, cfg in enumerate(configs):
        key = batch_key(cfg) if force or pays(cfg) else None
        if key is None:
            out.append([i])
            continue
        if key not in groups or (max_size and len(groups[key]) >= max_size):
            groups[key] = []
            out.append(groups[key])
        groups[key].append(i)
    return out


def spread(groups: list[list[int]], workers: int) -> list[list[int]]:
    """`groups` with the largest split in halves until there are at least `workers` (or
    every group is one run): on a CPU one batch per core beats one wide batch on all of them,
    whose tiny operations gain nothing from a second thread."""
    out = [list(g) for g in groups]
    while out and len(out) < workers:
        big = max(range(len(out)), key=lambda i: len(out[i]))
        if len(out[big]) < 2:
            break
        g = out.pop(big)
        half = (len(g) + 1) // 2
        out[big:big] = [g[:half], g[half:]]
    return out


def grid_seconds(configs: list[Config], n_train: int, n_test: int) -> float:
    """Estimated seconds of training for a grid, one batch after another, its runs grouped
    into the batches the grid runners train (`batches`, at most MAX_BATCH each), each batch
    at what it costs (bnviz.cost.batch_seconds), not at the sum of its runs trained alone."""
    from bnviz.cost import batch_seconds
    from bnviz.speed.batched import MAX_BATCH
    return sum(batch_seconds([configs[i] for i in g], n_train, n_test)
               for g in batches(list(configs), MAX_BATCH))
