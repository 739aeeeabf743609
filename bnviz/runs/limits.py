"""What a shared server allows: the caps a run must fit, and the refusal that names them."""
from __future__ import annotations

from dataclasses import dataclass

from bnviz.config import Config


class JobRefused(Exception):
    """A run was not started; the message says why in plain words."""


@dataclass
class Limits:
    """Caps for a shared server (0 = unlimited)."""
    per_session: int = 1  # active (queued or running) runs per browser session; a grid is one
    per_session_queued: int = 0  # runs one session may have waiting (a grid's runs count)
    max_queue: int = 32  # runs waiting, all sessions together
    max_epochs: int = 0
    max_train_size: int = 0  # 0 = any; else the full set is refused above this
    max_work: int = 0  # epochs × training examples, the cost of a run
    max_workers: int = 0  # training threads, whatever BNVIZ_WORKERS asks for
    keep_finished_s: float = 3600.0  # ended runs leave memory after this (the store keeps them)
    expire_every_s: float = 30.0  # how often that sweep runs

    @classmethod
    def hosted(cls) -> "Limits":
        """A public demo on a small machine: short runs, one at a time per visitor."""
        return cls(per_session=1, per_session_queued=24, max_queue=64, max_epochs=10,
                   max_train_size=60000, max_work=200_000, max_workers=2,
                   keep_finished_s=900, expire_every_s=30)

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
