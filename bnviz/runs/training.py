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
