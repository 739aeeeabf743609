"""A run's record: a thread-safe listener that accumulates a run's events, and the frozen
views of it that pages, charts, exports and the run store read."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnviz.config import Config

STEP_COLUMNS = ("iteration", "epoch", "loss", "acc")
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class RunView:
    """A consistent copy of a run at one moment; safe to read from any thread."""
    run_id: str
    config: Config
    status: str
    reason: str
    session: str
    created: float
    started: float | None
    ended: float | None
    info: dict[str, Any]  # RunStarted fields: data, data_source, device, n_params, total_steps
    summary: dict[str, Any]
    steps: np.ndarray  # (n, 4): iteration, epoch, loss, batch acc
    evals: list[dict[str, Any]]
    snapshots: list[tuple[int, float, dict[str, dict[str, np.ndarray]]]]
    epochs: list[dict[str, Any]]
    version: int = 0
    position: int = 0  # place in the queue, 1-based; 0 when not queued

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> dict[str, float]:
        total = self.info.get("total_steps") or 0
        done = int(self.steps[-1, 0]) if len(self.steps) else 0
        elapsed = ((self.ended or time.time()) - self.started) if self.started else 0.0
        rate = done / elapsed if elapsed > 0 else 0.0
        bs = self.config.batch_size
        return dict(done=done, total=total, fraction=done / total if total else 0.0,
                    epoch=float(self.steps[-1, 1]) if len(self.steps) else 0.0,
                    examples_per_sec=rate * bs,
                    eta=(total - done) / rate if rate > 0 else math.nan, elapsed=elapsed)

    def steps_frame(self):
        import pandas as pd
        return pd.DataFrame(self.steps, columns=STEP_COLUMNS).astype({"iteration": int})

    def evals_frame(self):
        import pandas as pd
        rows = []
        for e in self.evals:
            row = {k: v for k, v in e.items() if k not in ("by_mode", "metrics")}
            row.update({f"acc_{m}": a for m, a in (e.get("by_mode") or {}).items()})
            row.update(e.get("metrics") or {})  # the registry's probe metrics
            rows.append(row)
        cols = ["iteration", "epoch", "test_loss", "test_acc", "train_loss", "train_acc",
                "eval_batch_acc", "train_mode_batch_acc"]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)

    def snapshots_long(self):
        """Every snapshot value: iteration, epoch, layer, stat, channel, value (as the CLI's
        snapshots.csv)."""
        import pandas as pd
        rows = [(it, ep, site, stat, c, float(x)) for it, ep, layers in self.snapshots
                for site, d in layers.items() for stat, v in d.items() for c, x in enumerate(v)]
        return pd.DataFrame(rows, columns=["iteration", "epoch", "layer", "stat", "channel",
                                           "value"])

    def snapshots_frame(self, stat: str = "gamma"):
        """Long frame: one row per (snapshot, layer, channel) value of `stat`."""
        import pandas as pd
        parts = []
        for it, ep, layers in self.snapshots:
            for site, d in layers.items():
                if stat in d:
                    v = d[stat]
                    parts.append(pd.DataFrame({"iteration": it, "epoch": ep, "layer": site,
                                               "channel": np.arange(len(v)), "value": v}))
        if not parts:
            return pd.DataFrame(columns=["iteration", "epoch", "layer", "channel", "value"])
        return pd.concat(parts, ignore_index=True)


class RunRecord:
    """Listener that keeps everything a run emitted. Written by one worker thread, read by
    many page threads through `view()`; every access holds the lock."""

    def __init__(self, run_id: str, config: Config, session: str = ""):
        self.lock = threading.Lock()
        self.run_id, self.config, self.session = run_id, config, session
        self.status, self.reason = "queued", ""
        self.created, self.started, self.ended = time.time(), None, None
        self.info: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self._steps = np.zeros((256, 4))
        self._n = 0
        self.evals: list[dict] = []
        self.snapshots: list = []
        self.epochs: list[dict] = []
        self.version = 0
        self.position = 0
        self.stop = threading.Event()
        self.group = ""  # a grid's id when this run belongs to one

    def __call__(self, e) -> None:
        with self.lock:
            self.version += 1
            if e.kind == "step":
                if self._n == len(self._steps):
                    self._steps = np.concatenate([self._steps, np.zeros_like(self._steps)])
                self._steps[self._n] = (e.iteration, e.epoch, e.loss, e.acc)
                self._n += 1
            elif e.kind == "eval":
                self.evals.append({k: v for k, v in vars(e).items() if k != "kind"})
            elif e.kind == "snapshot":
                self.snapshots.append((e.iteration, e.epoch, e.layers))
            elif e.kind == "epoch":
                self.epochs.append({k: v for k, v in vars(e).items() if k != "kind"})
            elif e.kind == "started":
                self.status, self.started = "running", time.time()
                self.info = {k: v for k, v in vars(e).items() if k not in ("kind", "config")}
            elif e.kind == "ended":
                self.status, self.reason, self.ended = e.status, e.reason, time.time()
                self.summary = dict(e.summary)

    def set_status(self, status: str, reason: str = "") -> None:
        with self.lock:
            self.version += 1
            self.status, self.reason = status, reason
            if status not in ACTIVE and self.ended is None:
                self.ended = time.time()

    def view(self) -> RunView:
        with self.lock:
            return RunView(self.run_id, self.config, self.status, self.reason, self.session,
                           self.created, self.started, self.ended, dict(self.info),
                           dict(self.summary), self._steps[:self._n].copy(), list(self.evals),
                           list(self.snapshots), list(self.epochs), self.version,
                           self.position)
