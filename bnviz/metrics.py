"""The metric registry: every number a run reports, declared once.

A metric says what it is (id, label, unit), which way is better, where its value comes from
and how grids aggregate it over seeds. The trainer's summary, the CLI's metrics.csv and
results.csv, the grid tables and charts, Compare and the findings all read this list, so a
metric added here appears everywhere (the way torchmetrics' metrics never name a logger).

Where a value comes from (`source`):
- "eval": a field of every Evaluation event; the run's value is the last evaluation's.
- "final": computed once, at the end of the run (the trainer's summary only).
- "derived": computed from a finished run's record (`from_view`), e.g. the train–test gap.
- "probe": measured by the trainer at every evaluation with `probe(ctx)` (a MetricContext);
  each Evaluation carries it in `metrics`, the summary keeps the last value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

# The three ways bnviz evaluates test accuracy (the eval_mode knob's choices).
EVAL_MODES = ("running", "precise", "batch")
# The modes every run's summary reports at the end, whatever its eval_mode: comparisons read
# both (test_acc_running and test_acc_precise), since the running statistics' lag swings one
# run's accuracy far more than PreciseBN's.
FINAL_MODES = ("running", "precise")
EVAL_MODE_LABELS = {"running": "running statistics", "precise": "PreciseBN",
                    "batch": "batch statistics"}
# Fashion-MNIST has ten balanced classes: 0.10 is guessing, and below this a run has not
# trained (or its eval-mode statistics do not fit its weights).
CHANCE = 0.15


@dataclass(frozen=True)
class MetricContext:
    """What a probe metric may look at, at an evaluation: the model (train mode, do not change
    it), the run's config and data set, the iteration, and the training batch of this step."""
    net: Any
    cfg: Any
    dataset: Any
    iteration: int
    batch: tuple[Any, Any]


@dataclass(frozen=True)
class Metric:
    id: str
    label: str  # what a table column or an axis says
    source: str  # "eval" | "final" | "derived" | "probe" (see the module docstring)
    higher_is_better: bool | None = True  # None: neither (a diagnostic)
    unit: str = ""  # "" for a plain number; "accuracy" for a fraction of test images
    aggregate: str = "mean_ci"  # over seeds: mean and 95% Student-t CI half-width
    digits: int = 3
    grid: bool = True  # a column of results.csv, the grid tables and the findings
    from_view: Callable[[Any], float] | None = None  # source "derived"
    probe: Callable[[MetricContext], float] | None = None  # source "probe"
    # Which runs measure it (source "probe"): a probe costs forward/backward passes, so it is
    # measured only in runs whose config asks for it (a knob), never in every run.
    applies: Callable[[Any], bool] | None = None
    help: str = ""

    def value(self, view) -> float:
        """This metric of one run (a RunView), NaN when the run has none."""
        if self.from_view is not None:
            try:
                return float(self.from_view(view))
            except (KeyError, TypeError, ValueError, IndexError):
                return math.nan
        v = (view.summary or {}).get(self.id, math.nan)
        return math.nan if v is None else float(v)


def _gap(view) -> float:
    s = view.summary or {}
    return s.get("train_acc", math.nan) - s.get("test_acc", math.nan)


def _fluctuation(view) -> float:
    from bnviz.stats import fluctuation
    return fluctuation([e["test_acc"] for e in view.evals])


_BUILTIN = (
    Metric("train_loss", "train loss", "eval", higher_is_better=False,
           help="mean training loss over the last epoch, train mode (as d2l reports it)"),
    Metric("train_acc", "train acc", "eval", unit="accuracy",
           help="accuracy on the last epoch's training batches, train mode"),
    Metric("test_loss", "test loss", "eval", higher_is_better=False, grid=False),
    Metric("test_acc", "test acc", "eval", unit="accuracy",
           help="test accuracy with the run's eval_mode"),
    Metric("test_acc_running", "test acc (running stats)", "final", unit="accuracy",
           help="final test accuracy with BN's running statistics (PyTorch's eval mode)"),
    Metric("test_acc_precise", "test acc (PreciseBN)", "final", unit="accuracy",
           help="final test accuracy with the statistics recomputed for the final weights"),
    Metric("gap", "train − test", "derived", higher_is_better=False, from_view=_gap,
           help="train accuracy minus test accuracy"),
    Metric("fluctuation", "fluctuation", "derived", higher_is_better=False, digits=4,
           from_view=_fluctuation,
           help="std of test accuracy over the last five evaluations"),
    Metric("eval_batch_acc", "probe batch acc (eval mode)", "eval", unit="accuracy",
           grid=False),
    Metric("train_mode_batch_acc", "probe batch acc (train mode)", "eval", unit="accuracy",
           grid=False),
)
METRICS: dict[str, Metric] = {m.id: m for m in _BUILTIN}


def register(metric: Metric) -> Metric:
    """Add a metric (a test's toy metric, a page's new measurement). Ids are unique."""
    if metric.id in METRICS:
        raise ValueError(f"a metric {metric.id!r} is already registered")
    if metric.source == "probe" and metric.probe is None:
        raise ValueError(f"metric {metric.id!r}: a probe metric needs probe=")
    if metric.source == "derived" and metric.from_view is None:
        raise ValueError(f"metric {metric.id!r}: a derived metric needs from_view=")
    METRICS[metric.id] = metric
    return metric


def unregister(metric_id: str) -> None:
    if metric_id in {m.id for m in _BUILTIN}:
        raise ValueError(f"{metric_id!r} is built in")
    METRICS.pop(metric_id, None)


def metric(metric_id: str) -> Metric:
    """The metric with this id; KeyError naming the known ones otherwise."""
    try:
        return METRICS[metric_id]
    except KeyError:
        raise KeyError(f"unknown metric {metric_id!r}; known: {', '.join(METRICS)}") from None


def grid_metrics() -> tuple[str, ...]:
    """Ids of the metrics every results table carries, in registry order."""
    return tuple(m.id for m in METRICS.values() if m.grid)


def eval_fields() -> tuple[str, ...]:
    """The Evaluation fields that are metrics (the eval-level columns of metrics.csv)."""
    return tuple(m.id for m in METRICS.values() if m.source == "eval")


def probes(cfg=None) -> tuple[Metric, ...]:
    """The probe metrics; with a config, those that run measures (their `applies(cfg)`)."""
    return tuple(m for m in METRICS.values() if m.source == "probe"
                 and (cfg is None or m.applies is None or m.applies(cfg)))


def summary_defaults() -> dict[str, float]:
    """The summary's metric entries before anything is measured."""
    return {m.id: math.nan for m in METRICS.values() if m.source in ("eval", "final", "probe")}


def format_estimate(mean: float, half: float, digits: int = 3) -> str:
    """A table cell: mean ± 95% CI half-width, the mean alone with one seed, – with none.
    The one formatter of tables (pages, CLI, findings)."""
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f}" + ("" if half != half else f" ± {half:.{digits}f}")
