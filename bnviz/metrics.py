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

from bnviz.i18n import N_

# The three ways bnviz evaluates test accuracy (the eval_mode knob's choices).
EVAL_MODES = ("running", "precise", "batch")
# The modes every run's summary reports at the end, whatever its eval_mode: comparisons read
# both (test_acc_running and test_acc_precise), since the running statistics' lag swings one
# run's accuracy far more than PreciseBN's.
FINAL_MODES = ("running", "precise")
EVAL_MODE_LABELS = {"running": N_("running statistics"), "precise": "PreciseBN",
                    "batch": N_("batch statistics")}  # shown with _()
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
    label: str  # what a table column or an axis says (English, N_-marked: shown with _())
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
    # What one call of the probe costs at one evaluation, in training examples' worth of
    # forward + backward (bnviz.cost counts it, so a hosted server caps probe schedules);
    # None: free. Metrics that share one computation declare it on one of them only.
    work: Callable[[Any], float] | None = None

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
    Metric("train_loss", N_("train loss"), "eval", higher_is_better=False,
           help="mean training loss over the last epoch, train mode (as d2l reports it)"),
    Metric("train_acc", N_("train acc"), "eval", unit="accuracy",
           help="accuracy on the last epoch's training batches, train mode"),
    Metric("test_loss", N_("test loss"), "eval", higher_is_better=False, grid=False),
    Metric("test_acc", N_("test acc"), "eval", unit="accuracy",
           help="test accuracy with the run's eval_mode"),
    Metric("test_acc_running", N_("test acc (running stats)"), "final", unit="accuracy",
           help="final test accuracy with BN's running statistics (PyTorch's eval mode)"),
    Metric("test_acc_precise", N_("test acc (PreciseBN)"), "final", unit="accuracy",
           help="final test accuracy with the statistics recomputed for the final weights"),
    Metric("gap", N_("train − test"), "derived", higher_is_better=False, from_view=_gap,
           help="train accuracy minus test accuracy"),
    Metric("fluctuation", N_("fluctuation"), "derived", higher_is_better=False, digits=4,
           from_view=_fluctuation,
           help="std of test accuracy over the last five evaluations"),
    Metric("eval_batch_acc", N_("probe batch acc (eval mode)"), "eval", unit="accuracy",
           grid=False),
    Metric("train_mode_batch_acc", N_("probe batch acc (train mode)"), "eval", unit="accuracy",
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


def summary_defaults(cfg=None) -> dict[str, float]:
    """The summary's metric entries before anything is measured (with a config, only the
    probe metrics that its run measures)."""
    return {m.id: math.nan for m in METRICS.values() if m.source in ("eval", "final")
            or m.source == "probe" and m in probes(cfg)}


def format_estimate(mean: float, half: float, digits: int = 3) -> str:
    """A table cell: mean ± 95% CI half-width, the mean alone with one seed, – with none.
    The one formatter of tables (pages, CLI, findings)."""
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f}" + ("" if half != half else f" ± {half:.{digits}f}")


# Modules whose probe metrics register themselves (imported last: they import this module).
from bnviz import landscape  # noqa: E402,F401 - the loss landscape's probes (issue 20)
from bnviz import activations  # noqa: E402,F401 - the distribution at each activation


# -- weight norms (the weight-decay page; bnviz/optim.py) -------------------------------------

def _weight_norm(layer: str) -> Callable[[MetricContext], float]:
    def probe(ctx: MetricContext) -> float:
        return float(getattr(ctx.net, layer).weight.detach().norm())
    return probe


for _layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
    register(Metric(f"wnorm_{_layer}", f"‖w‖ {_layer}", "probe", higher_is_better=None,
                    grid=False, probe=_weight_norm(_layer),
                    applies=lambda cfg: bool(getattr(cfg, "track_weights", False)),
                    help=f"L2 norm of {_layer}'s weight (bias apart), at each evaluation"))
del _layer


# -- fine-tuning on a shifted part (bnviz/finetune.py; the drift: bnviz/drift.py) -------------

def _finetunes(cfg) -> bool:
    return getattr(cfg, "finetune_epochs", 0) > 0


def _part_acc(part: int) -> Callable[[MetricContext], float]:
    def probe(ctx: MetricContext) -> float:
        from bnviz.finetune import part_accuracy
        return part_accuracy(ctx.net, ctx.dataset, ctx.cfg.finetune_shift, part)
    return probe


def _part_work(cfg) -> float:
    """One pass over a part's test images (the whole test set, or about half for "classes"),
    in training examples' worth: a test-time forward costs about 0.4 of a training example."""
    from bnviz import data
    try:
        n_test = data.sizes(cfg.dataset)[1]
    except Exception:  # noqa: BLE001 - no data set to size: count the full test set
        n_test = data.SIZES["full"][1]
    return 0.4 * (n_test if cfg.finetune_shift == "rotated" else n_test / 2)


def _drift(view) -> float:
    from bnviz.drift import final_drift
    return final_drift(view)


for _part, _name, _label in ((0, "a", N_("test acc, part A")), (1, "b", N_("test acc, part B"))):
    register(Metric(f"acc_part_{_name}", _label, "probe",
                    unit="accuracy", probe=_part_acc(_part), applies=_finetunes,
                    work=_part_work,
                    help=f"fine-tuning runs: test accuracy on part {_name.upper()}'s test "
                         "images (finetune_shift) with the running statistics (eval mode)"))
register(Metric("bn_drift", N_("running-mean drift (σ)"), "derived", higher_is_better=None,
                from_view=_drift, applies=_finetunes,
                help="fine-tuning runs: how far BN's running means moved from the start of "
                     "the fine-tuning to its end, in running standard deviations, averaged "
                     "over channels and layers (0 when frozen)"))
del _part, _name, _label


# -- internal covariate shift (Santurkar et al. 2018, §2.2; bnviz/ics.py, issue 20) -----------

ICS_LAYERS = ("conv2", "fc1", "fc2", "fc3")  # bnviz.ics.ICS_LAYERS (conv1 has no earlier layer)


def _ics_on(cfg) -> bool:
    return bool(getattr(cfg, "ics_probe", False))


def _ics(layer: str, stat: str) -> Callable[[MetricContext], float]:
    def probe(ctx: MetricContext) -> float:
        from bnviz.ics import at_evaluation  # one measurement per evaluation, memoised
        return at_evaluation(ctx)[layer][stat]
    return probe


def _ics_over_training(stat: str) -> Callable[[Any], float]:
    def of(view) -> float:
        from bnviz.ics import over_training
        return over_training(view, stat)
    return of


def _input_shift(view) -> float:
    from bnviz.ics import input_shift
    return input_shift(view)


for _i, _layer in enumerate(ICS_LAYERS):
    register(Metric(f"ics_l2_{_layer}", f"‖G − G′‖ {_layer}", "probe", higher_is_better=None,
                    digits=4, grid=False, probe=_ics(_layer, "l2"), applies=_ics_on,
                    # the whole measurement (1 + 4 passes) is made once, by the first metric
                    work=(lambda cfg: 5 * cfg.batch_size) if _i == 0 else None,
                    help=f"ICS: change of {_layer}'s weight gradient when the layers before "
                         "it take their SGD step on the same batch"))
    register(Metric(f"ics_cos_{_layer}", f"cos(G, G′) {_layer}", "probe",
                    higher_is_better=None, grid=False, probe=_ics(_layer, "cos"),
                    applies=_ics_on,
                    help=f"ICS: cosine between {_layer}'s weight gradient before and after "
                         "the earlier layers' SGD step on the same batch"))
del _i, _layer


def _unit_input(layer: str, stat: str) -> Callable[[MetricContext], float]:
    def probe(ctx: MetricContext) -> float:
        from bnviz.ics import inputs_at_evaluation  # one forward per evaluation, memoised
        return inputs_at_evaluation(ctx)[layer][stat]
    return probe


for _layer in ICS_LAYERS:
    for _q in ("p5", "p25", "p50", "p75", "p95"):  # bnviz.ics.PERCENTILES
        register(Metric(f"ics_in_{_layer}_{_q}", f"{_layer} input, unit 0, {_q}", "probe",
                        higher_is_better=None, digits=4, grid=False,
                        probe=_unit_input(_layer, _q), applies=_ics_on,
                        # one forward of the 256 probe images (about 0.4 of a training
                        # example each), counted once for all twenty
                        work=(lambda cfg: 0.4 * 256)
                        if (_layer, _q) == ("conv2", "p5") else None,
                        help=f"{_q[1:]}th percentile of unit 0 of {_layer}'s input on a "
                             "fixed probe batch (train mode), at each evaluation"))
del _layer, _q
register(Metric("ics_cos", "ICS cos(G, G′)", "derived", higher_is_better=None,
                from_view=_ics_over_training("cos"), applies=_ics_on,
                help="internal covariate shift as Santurkar et al. measure it: cos(G, G′), "
                     "averaged over conv2, fc1, fc2, fc3 and the run's evaluations "
                     "(1 = the earlier layers' step leaves the gradient's direction alone)"))
register(Metric("ics_l2", "ICS ‖G − G′‖", "derived", higher_is_better=None, digits=4,
                from_view=_ics_over_training("l2"), applies=_ics_on,
                help="internal covariate shift: ‖G − G′‖₂, averaged over conv2, fc1, fc2, "
                     "fc3 and the run's evaluations"))
register(Metric("input_shift", N_("input shift (|Δ median|)"), "derived", higher_is_better=None,
                digits=4, from_view=_input_shift, applies=_ics_on,
                help="how far the layers' inputs move over training: the change of unit 0's "
                     "median input between consecutive evaluations (fixed probe batch), "
                     "averaged over conv2, fc1, fc2, fc3 and the run"))
