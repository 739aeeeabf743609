"""What a shared server allows: the caps a run must fit, and the refusal that names them."""
from __future__ import annotations

from dataclasses import dataclass

from bnviz import cost as cost_mod
from bnviz.config import Config
from bnviz.i18n import _, is_zh


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
    max_work: int = 0  # epochs × training examples
    # The run's estimated seconds on this machine (bnviz.cost: training steps, evaluations,
    # snapshots), checked before it is queued; while it runs, one that takes longer than
    # budget_factor × its estimate (and at least budget_min_s) is stopped. 0 = unlimited.
    max_seconds: float = 0.0
    budget_factor: float = 3.0
    budget_min_s: float = 60.0
    max_workers: int = 0  # training threads, whatever BNVIZ_WORKERS asks for
    # A share link to a run this server does not have starts that run by itself only when
    # the results library answers it or its estimate is at most this many seconds; otherwise
    # the page waits for Train. 0 = always (a local server).
    autostart_s: float = 0.0
    keep_finished_s: float = 3600.0  # ended runs leave memory after this (the store keeps them)
    expire_every_s: float = 30.0  # how often that sweep runs

    @classmethod
    def hosted(cls) -> "Limits":
        """A public demo on a small machine: short runs, one at a time per visitor."""
        # 120 estimated seconds: the d2l preset on the full data for 10 epochs (about 42 s
        # with bnviz.cost's default rates) fits; batch 2 evaluated every step does not.
        return cls(per_session=1, per_session_queued=24, max_queue=64, max_epochs=10,
                   max_train_size=60000, max_work=0, max_seconds=120.0, max_workers=2,
                   autostart_s=15.0, keep_finished_s=900, expire_every_s=30)

    def may_autostart(self, cfg: Config, n_train: int, n_test: int,
                      in_library: bool) -> bool:
        """Whether a share link may start `cfg` without anyone pressing Train."""
        return in_library or not self.autostart_s or \
            self.estimate(cfg, n_train, n_test) <= self.autostart_s

    def estimate(self, cfg: Config, n_train: int, n_test: int) -> float:
        """The run's estimated seconds on this server."""
        return cost_mod.estimate(cfg, n_train, n_test).seconds()

    def budget(self, cfg: Config, n_train: int, n_test: int,
               batch: list[Config] | None = None) -> float:
        """Wall seconds a running run may take before it is stopped; 0 = no budget. A run of
        `batch` (the configs training with it as one model) trains while its batch does: its
        budget is the batch's estimate (bnviz.cost.batch_seconds)."""
        if not self.max_seconds:
            return 0.0
        secs = cost_mod.batch_seconds(batch or [cfg], n_train, n_test)
        return max(self.budget_min_s, self.budget_factor * secs)

    def check(self, cfg: Config, n_train: int, n_test: int = 10000) -> list[str]:
        """Why `cfg` may not run here (empty: it may), in the reader's language (a page shows
        the refusal; English elsewhere). `n_train`, `n_test`: the sizes of the data set it
        would train on, before train_size."""
        errs = []
        epochs = cfg.epochs + cfg.finetune_epochs  # fine-tuning epochs are epochs too
        if self.max_epochs and epochs > self.max_epochs:
            asked = (_("{epochs} + {finetune_epochs} fine-tuning").format(
                epochs=cfg.epochs, finetune_epochs=cfg.finetune_epochs) if cfg.finetune_epochs
                else f"{cfg.epochs}")
            errs.append(_("epochs is capped at {cap} on this server (asked for {asked})")
                        .format(cap=self.max_epochs, asked=asked))
        n = cfg.train_size or n_train
        if self.max_train_size and n > self.max_train_size:
            errs.append(_("train-set size is capped at {cap:,} on this server (asked for "
                          "{n:,}); set train_size").format(cap=self.max_train_size, n=n))
        work = (n // 2 if cfg.finetune_epochs else n) * epochs  # fine-tuning: halves
        if self.max_work and work > self.max_work:
            errs.append(_("epochs × training examples is capped at {cap:,} on this server "
                          "(asked for {work:,})").format(cap=self.max_work, work=work))
        if self.max_seconds:
            c = cost_mod.estimate(cfg, n_train, n_test)
            s = c.seconds()
            if s > self.max_seconds:
                tips = cost_mod.suggestions(cfg, c)
                text = _("this run would take {estimate} here ({steps:,} training steps, "
                         "{evals:,} evaluations of {forwards:,} test-time forward passes in "
                         "all, {snapshots:,} snapshots, probes worth {probes:,} training "
                         "examples' forward and backward passes); this server allows {cap} "
                         "per run: {tips}") if c.probe_examples else \
                    _("this run would take {estimate} here ({steps:,} training steps, "
                      "{evals:,} evaluations of {forwards:,} test-time forward passes in all, "
                      "{snapshots:,} snapshots); this server allows {cap} per run: {tips}")
                errs.append(text.format(
                    estimate=cost_mod.describe_seconds(s), steps=c.train_steps,
                    evals=c.eval_points, forwards=c.eval_examples, snapshots=c.snapshots,
                    probes=c.probe_examples,
                    cap=cost_mod.describe_seconds(self.max_seconds, about=False),
                    tips=("；" if is_zh() else ", ").join(tips)))
        return errs
