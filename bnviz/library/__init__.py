"""The results library: real, seeded runs of bnviz's own code answering every question page's
default grid (bnviz.library.catalog), shipped as one SQLite file beside this module.

It is a run store like the user's (same schema, same RunView), opened read-only; a runner
looks in it after its own store, so a page draws a library run exactly like one trained a
minute ago. `python -m bnviz library build` regenerates it, `... library check` verifies it
(bnviz.library.build: presence and config ids; bnviz.library.prefix: the first steps of
entries retrained bit for bit; bnviz.library.provenance: the commit and code it was built
with).
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace as _replace
from functools import lru_cache
from pathlib import Path

from bnviz.config import Config
from bnviz.runs.record import RunView
from bnviz.runs.store import RunStore, StoreError

log = logging.getLogger("bnviz.library")
LIBRARY_FILE = Path(__file__).with_name("runs.sqlite")
ENDED = ("finished", "diverged", "failed")  # a diverged lr is an answer too
SOURCE = "library"


def library_path() -> Path | None:
    """BNVIZ_LIBRARY names another file, or turns the library off ("off", "0", "")."""
    raw = os.environ.get("BNVIZ_LIBRARY")
    if raw is None:
        return LIBRARY_FILE
    if raw.strip().lower() in ("", "0", "off", "none", "false"):
        return None
    return Path(raw)


def library_key(cfg: Config) -> Config:
    """The library's runs are on the full Fashion-MNIST: a config that asks for the best data
    available ("auto") is answered by them on any machine, even one with only the subset."""
    return cfg.replace(dataset="full") if cfg.dataset == "auto" else cfg


def answers(run: Config, cfg: Config) -> bool:
    """Whether a run of config `run` is the one `cfg` asks for: the same config up to the
    device, where a library run (dataset "full") answers a config asking for "auto"."""
    run = run.replace(device=cfg.device)
    return run == cfg or run == library_key(cfg)


def source_of(cfg: Config) -> str:
    """The data source a library run of `cfg` was trained on ("auto" is answered by "full")."""
    return "subset" if cfg.dataset == "subset" else "full"


class Library:
    """Read-only access to a library file, in the run store's terms."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.store = RunStore(self.path, readonly=True)
        # The file never changes while open, so each run is decoded once per process and the
        # same frozen view is handed to every page (nothing mutates a view's arrays).
        self._views: dict[str, RunView] = {}
        self._lock = threading.Lock()

    def find(self, cfg: Config) -> str | None:
        """The run id answering this config and seed, if the library has one: found by
        config id, and only if its stored config is this one (a changed knob default can give
        another config the stored id: that entry is stale, not an answer)."""
        key = library_key(cfg)
        run_id = self.store.find_finished(key.config_id(), key.seed, source_of(key), ENDED)
        if run_id is None:
            return None
        return run_id if answers(self.load(run_id).config, key) else None

    def load(self, run_id: str) -> RunView | None:
        with self._lock:
            hit = self._views.get(run_id)
        if hit is not None:
            return hit
        v = self.store.load(run_id)
        if v is None:
            return None
        if v.info.get("source") != SOURCE:
            v = _replace(v, info={**v.info, "source": SOURCE})
        with self._lock:
            self._views[run_id] = v
        return v

    def preload(self) -> int:
        """Decode every run now (a server's warm-up), so the first visitor waits for none."""
        ids = [r["run_id"] for r in self.list_runs(limit=100000)]
        for run_id in ids:
            self.load(run_id)
        return len(ids)

    def get(self, cfg: Config) -> RunView | None:
        run_id = self.find(cfg)
        return self.load(run_id) if run_id else None

    def seeds_of(self, cfg: Config) -> list[RunView]:
        """Every seed the library has of this configuration (any seed), seed order."""
        key = library_key(cfg)
        rows = [r for r in self.store.list_runs(config_id=key.config_id(), limit=1000)
                if r["status"] in ENDED and r["data_source"] == source_of(key)]
        seen, out = set(), []
        for r in sorted(rows, key=lambda r: r["seed"]):
            if r["seed"] not in seen:
                seen.add(r["seed"])
                out.append(self.load(r["run_id"]))
        return [v for v in out if v is not None]

    def list_runs(self, limit: int = 1000) -> list[dict]:
        return self.store.list_runs(limit=limit)

    def __len__(self) -> int:
        return self.store._read("SELECT COUNT(*) FROM runs")[0][0]


@lru_cache(maxsize=4)
def _open(path: str, mtime: float) -> Library:
    return Library(path)


def open_library() -> Library | None:
    """The library this process serves from, or None (turned off, missing or unreadable: the
    reason is logged, and pages then simply have no stored answers)."""
    path = library_path()
    if path is None:
        return None
    try:
        return _open(str(path), path.stat().st_mtime)
    except (OSError, StoreError) as e:
        log.warning("results library not used: %s", e)
        return None


def data_text(info: dict) -> str:
    """A run's data set as people read it, without the path it was read from."""
    import re
    return re.sub(r"\s*\(/[^)]*\)", "", info.get("data") or info.get("data_source", "?"))


def bnviz_version() -> str:
    """This bnviz's version: the checkout's pyproject.toml when running from one (an editable
    install's metadata keeps the version it was installed with until it is installed
    again), else the installed package's. A library run keeps the version that made it; which
    stored runs answer a config is decided by config equality (Library.find), never by it."""
    import re
    toml = Path(__file__).parents[2] / "pyproject.toml"
    try:
        text = toml.read_text()
        if re.search(r'^name = "bnviz"$', text, re.M):
            m = re.search(r'^version = "([^"]+)"', text, re.M)
            if m:
                return m.group(1)
    except OSError:
        pass  # an installed package: no pyproject.toml beside it
    try:
        from importlib.metadata import version
        return version("bnviz")
    except Exception:  # neither a checkout nor installed
        return "unknown"
