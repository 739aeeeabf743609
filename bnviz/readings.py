"""What each question's runs say, computed once, returned as data.

A reading takes a grid's summary (bnviz.runs.results.summarize: one row per arm, mean, 95% CI
and n per metric) and decides, by arm id, which comparisons to make and what they show. Pages,
the findings script and the tests only render or inspect the result, so the dashboard and the
README can never disagree, and every verdict is tested on tables whose answer is known.
A difference is claimed only where two 95% intervals do not overlap (bnviz.stats.separated).
A summary is any pandas frame of that shape; this module itself imports no pandas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bnviz.metrics import CHANCE
from bnviz.stats import Estimate, compare_text, fluctuation as _fluctuation, separated


@dataclass(frozen=True)
class Comparison:
    """Arm a's metric against arm b's (the same metric, unless `metric_b` says otherwise:
    one run evaluated two ways is one arm and two metrics)."""
    a: str  # arm ids
    b: str
    name_a: str  # how the sentence names them
    name_b: str
    metric: str
    what: str  # the metric as the sentence says it
    ea: Estimate
    eb: Estimate
    digits: int = 3
    larger: bool = False  # "has the larger" rather than "has the higher" (a spread, a swing)
    metric_b: str = ""

    @property
    def verdict(self) -> str:
        """'a' or 'b' (the one with the higher mean, intervals apart), 'same' (intervals
        overlap) or 'too few' (an arm has no finished run, or fewer than two seeds)."""
        if self.ea.n < 2 or self.eb.n < 2:
            return "too few"
        if not separated(self.ea, self.eb):
            return "same"
        return "a" if self.ea.mean > self.eb.mean else "b"

    @property
    def difference(self) -> float:
        return self.ea.mean - self.eb.mean

    def text(self) -> str:
        s = compare_text(self.name_a, self.ea, self.name_b, self.eb, self.what, self.digits)
        return s.replace("has the higher", "has the larger") if self.larger else s


@dataclass(frozen=True)
class Reading:
    """A question's answer: its comparisons, in the order they are read, plus any verdict that
    combines them (`verdict`, with its numbers in `facts`) and the arms at chance level."""
    question: str
    comparisons: tuple[Comparison, ...] = ()
    verdict: str = ""
    facts: dict = field(default_factory=dict)
    at_chance: tuple[str, ...] = ()

    def comparison(self, a: str, b: str, metric: str | None = None) -> Comparison:
        for c in self.comparisons:
            if c.a == a and c.b == b and (metric is None or c.metric == metric):
                return c
        raise KeyError(f"{self.question}: no comparison of {a!r} with {b!r}")


class UnknownArm(KeyError):
    """A reading asked for an arm the grid does not have: a renamed or removed arm must fail
    loudly, never read as 'not enough runs'."""


def row_of(summary, arm: str):
    """The summary row of the arm with this id (KeyError-like UnknownArm when there is none)."""
    r = summary[summary.arm == arm] if "arm" in summary else summary.iloc[0:0]
    if r.empty:
        known = ", ".join(map(str, summary.arm)) if "arm" in summary else "none"
        raise UnknownArm(f"no arm {arm!r} in this grid (its arms: {known})")
    return r.iloc[0]


def estimate(summary, arm: str, metric_id: str = "test_acc") -> Estimate:
    """Mean, 95% CI half-width and n of one arm's metric over its finished seeds."""
    r = row_of(summary, arm)
    if metric_id not in r:
        raise KeyError(f"the summary has no column {metric_id!r}")
    return Estimate(float(r[metric_id]), float(r[f"{metric_id}_ci"]), int(r["n"]))



_est = estimate


def _name(summary, arm: str) -> str:
    return str(row_of(summary, arm)["run"])


def compare(summary, a: str, b: str, metric: str, what: str, name_a: str | None = None,
            name_b: str | None = None, digits: int = 3, larger: bool = False) -> Comparison:
    return Comparison(a, b, name_a or _name(summary, a), name_b or _name(summary, b), metric,
                      what, _est(summary, a, metric), _est(summary, b, metric), digits, larger)


def at_chance(summary, metric: str) -> tuple[str, ...]:
    """Arms whose mean `metric` is below chance level: a comparison with them says little."""
    out = []
    for arm in summary.arm:
        e = _est(summary, arm, metric)
        if e.n and e.mean < CHANCE:
            out.append(arm)
    return tuple(out)


# -- one function per question (bnviz/library/catalog.py names them) -------------------------

def ablation(summary) -> Reading:
    """Every arm against all four BN layers, on test accuracy with PreciseBN."""
    arms = [a for a in summary.arm if a != "all"]
    _est(summary, "all", "test_acc_precise")  # the reference must exist
    return Reading("ablation", tuple(
        compare(summary, a, "all", "test_acc_precise", "test accuracy (PreciseBN)")
        for a in arms))


def presets(summary) -> Reading:
    """d2l's LeNet-BN against LeNet; and how much wider test accuracy with running statistics
    spreads over seeds than training accuracy does (the chapter's swing)."""
    c = compare(summary, "d2l-lenet-bn", "d2l-lenet", "test_acc_precise",
                "test accuracy (PreciseBN)")
    bn = {m: _est(summary, "d2l-lenet-bn", m)
          for m in ("train_acc", "test_acc_running", "test_acc_precise")}
    facts = {f"half_{m}": e.half for m, e in bn.items()}
    facts["n"] = bn["train_acc"].n
    ratio = (bn["test_acc_running"].half / bn["train_acc"].half
             if bn["train_acc"].half and bn["train_acc"].half == bn["train_acc"].half
             else math.nan)
    facts["running_vs_train"] = ratio
    facts["running_vs_precise"] = (bn["test_acc_running"].half / bn["test_acc_precise"].half
                                   if bn["test_acc_precise"].half else math.nan)
    verdict = ("running swings" if ratio == ratio and ratio > 2 else
               "no swing" if ratio == ratio else "too few")
    return Reading("presets", (c,), verdict, facts)


def fluctuation(summary) -> Reading:
    """The same runs evaluated three ways: the epoch-to-epoch swing of PreciseBN and of batch
    statistics against running statistics, and the final accuracy of each."""
    arm = "three_ways"
    running = _est(summary, arm, "fluct_running")
    comps = [Comparison(arm, arm, name, "running statistics", f"fluct_{how}",
                        "epoch-to-epoch std", _est(summary, arm, f"fluct_{how}"), running,
                        digits=4, larger=True, metric_b="fluct_running")
             for how, name in (("precise", "PreciseBN"), ("batch", "batch statistics"))]
    comps.append(Comparison(arm, arm, "PreciseBN", "running statistics", "test_acc_precise",
                            "final test accuracy", _est(summary, arm, "test_acc_precise"),
                            _est(summary, arm, "test_acc_running"),
                            metric_b="test_acc_running"))
    return Reading("fluctuation", tuple(comps))


def gamma(summary) -> Reading:
    return Reading("gamma", tuple(
        compare(summary, "learned", "frozen", m, what, "learned", "frozen")
        for m, what in (("train_loss", "final train loss"),
                        ("test_acc_precise", "test accuracy (PreciseBN)"))))


def bias(summary) -> Reading:
    return Reading("bias", (compare(summary, "bias_on", "bias_off", "test_acc_precise",
                                    "test accuracy (PreciseBN)", "with bias", "without"),))


def devices(summary) -> Reading:
    """Question 6: do the book's BN's lost moving statistics explain the drop on several
    devices, rather than the smaller per-device batches?"""
    what = "test accuracy (eval mode)"
    lost = compare(summary, "book_2", "book_1", "test_acc_running", what,
                   "book BN on 2 devices", "book BN on 1 device")
    train = compare(summary, "book_2", "book_1", "train_acc", "train accuracy",
                    "book BN on 2 devices", "book BN on 1 device")
    comps = [lost, train]
    slices = None
    if "bn_8" in set(summary.arm):
        slices = compare(summary, "bn_8", "bn_1", "test_acc_running", what,
                         "nn.BatchNorm on 8 devices", "nn.BatchNorm on 1 device")
        comps.append(slices)
    drop_book = -lost.difference
    drop_slices = -slices.difference if slices is not None else math.nan
    explained = lost.verdict == "b" and not (
        slices is not None and slices.verdict == "b" and drop_slices >= drop_book)
    return Reading("devices", tuple(comps), "lost statistics" if explained else "undecided",
                   {"drop_book": drop_book, "drop_slices": drop_slices})


@dataclass(frozen=True)
class LrLimit:
    norm: str
    largest_trained: float | None  # every seed finished, 95% CI of test acc above 0.5
    first_failed: float | None  # the smallest lr at which some seed diverged or failed
    seeds: int


def lr(summary) -> Reading:
    """Per normalisation, the largest lr at which every seed trained."""
    limits = []
    for norm in dict.fromkeys(summary.norm):
        rows = summary[summary.norm == norm]
        ok = rows[(rows.n == rows.runs) & (rows.test_acc - rows.test_acc_ci.fillna(0) > 0.5)]
        bad = rows[rows.ended_badly > 0]
        limits.append(LrLimit(norm, float(ok.lr.max()) if not ok.empty else None,
                              float(bad.lr.min()) if not bad.empty else None,
                              int(rows.runs.max())))
    return Reading("lr", facts={"limits": tuple(limits)})


def lr_text(limit: LrLimit) -> str:
    msg = (f"largest lr at which every seed trained (95% CI of test accuracy above 0.5): "
           f"**{limit.largest_trained:g}**" if limit.largest_trained is not None
           else "no lr trained on every seed")
    if limit.first_failed is not None:
        msg += f"; diverged or failed on some seed from lr {limit.first_failed:g}"
    return f"**{limit.norm}**: {msg} ({limit.seeds} seeds per lr)."


NORM_BATCH_METRICS = {"test_acc_running": "test accuracy, running statistics (eval mode)",
                      "test_acc_precise": "test accuracy, PreciseBN"}


def norm_batch(summary, metric: str = "test_acc_precise") -> Reading:
    """BN at the smallest against the largest normalisation batch m, BN at each end against
    the GroupNorm reference, GroupNorm against LayerNorm."""
    what = NORM_BATCH_METRICS[metric]
    ms = sorted(int(a.split("@m")[1]) for a in summary.arm if a.startswith("bn@m"))
    comps = []
    if ms:
        lo, hi = ms[0], ms[-1]
        if lo != hi:
            comps.append(compare(summary, f"bn@m{lo}", f"bn@m{hi}", metric, what,
                                 f"BN at m = {lo}", f"BN at m = {hi}"))
        arms = set(summary.arm)
        if "group@ref" in arms:
            for m in dict.fromkeys([lo, hi]):
                comps.append(compare(summary, f"bn@m{m}", "group@ref", metric, what,
                                     f"BN at m = {m}", "GroupNorm (2 groups)"))
            if "layer@ref" in arms:
                comps.append(compare(summary, "group@ref", "layer@ref", metric, what,
                                     "GroupNorm (2 groups)", "LayerNorm (1 group)"))
    return Reading("norm_batch", tuple(comps), at_chance=at_chance(summary, metric))


def sgd_batch(summary) -> Reading:
    """Per normalisation, the smallest SGD batch against the largest (test accuracy)."""
    comps = []
    by_norm: dict[str, list[int]] = {}
    for a in summary.arm:
        norm, _, b = a.partition("@b")
        by_norm.setdefault(norm, []).append(int(b))
    for norm, sizes in by_norm.items():
        lo, hi = min(sizes), max(sizes)
        if lo != hi:
            comps.append(compare(summary, f"{norm}@b{lo}", f"{norm}@b{hi}", "test_acc",
                                 "test accuracy", f"batch {lo}", f"batch {hi}"))
    return Reading("sgd_batch", tuple(comps), at_chance=at_chance(summary, "test_acc"))


def batch1(summary) -> Reading:
    """Conv-only BN at batch 1: eval mode's running statistics against each test image
    normalised by itself (batch statistics at batch 1, as in training)."""
    arm = "conv_only_batch1"
    c = Comparison(arm, arm, "running statistics (eval mode)",
                   "per-image batch statistics (as in training)", "test_acc_running",
                   "test accuracy", _est(summary, arm, "test_acc_running"),
                   _est(summary, arm, "final_acc_batch"), metric_b="final_acc_batch")
    verdict = {"b": "mismatch", "a": "running better", "same": "undecided",
               "too few": "too few"}[c.verdict]
    return Reading("batch1", (c,), verdict, {"gain": -c.difference})


# -- one run (the lab's status line) ---------------------------------------------------------

def one_run(v, speed: bool = True) -> str:
    """What one run's final numbers say, and no more: one run has no error bar, so this never
    compares it with another run. The train–test gap is split into the part the running
    statistics cause (PreciseBN recomputes them for the final weights) and the rest.
    speed=False leaves out the examples/s (a library run's was measured on another machine)."""
    s = v.summary
    if not s or math.isnan(s.get("test_acc", math.nan)):
        return "No evaluation yet." if v.status != "finished" else ""
    train, test = s["train_acc"], s["test_acc"]
    gap = train - test
    parts = [f"Test accuracy {test:.3f}, train accuracy {train:.3f} (gap {gap:+.3f})"
             + (f", {s.get('examples_per_sec', 0):,.0f} examples/s." if speed else ".")]
    if test < CHANCE and train < CHANCE:
        parts.append("That is chance level on both: the network did not learn.")
        return " ".join(parts)
    if test < CHANCE:
        parts.append("Test accuracy is at chance level while training learned: the model "
                     "fails in eval mode.")
    running = s.get("test_acc_running", math.nan)
    precise = s.get("test_acc_precise", math.nan)
    if v.config.eval_mode == "running" and not math.isnan(precise) and precise != running:
        lag = precise - running
        rest = train - precise
        parts.append(f"With PreciseBN (statistics recomputed for the final weights) the test "
                     f"accuracy is {precise:.3f}: {lag:+.3f} of the gap comes from the running "
                     f"statistics lagging the weights, not from the weights. The remaining "
                     f"{rest:+.3f} compares the final model on unseen images with its average "
                     f"on the last epoch's training batches in train mode, so it is at most "
                     f"overfitting.")
    elif gap > 0.05:
        parts.append("Train accuracy (the last epoch's batches, in train mode) is above test "
                     "accuracy (the final model, eval mode).")
    accs = [e["test_acc"] for e in v.evals]
    fl = _fluctuation(accs)
    if not math.isnan(fl) and fl > 0.015:
        parts.append(f"Test accuracy swung by ±{fl:.3f} (std) over the last evaluations: see "
                     "the fluctuation chart.")
    return " ".join(parts)
