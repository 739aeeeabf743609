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
        if f"renorm@m{lo}" in arms:  # Batch Renorm, the fix for small m, beside BN at m
            comps.append(compare(summary, f"renorm@m{lo}", f"bn@m{lo}", metric, what,
                                 f"Batch Renorm at m = {lo}", f"BN at m = {lo}"))
            if f"renorm@m{hi}" in arms and lo != hi:
                comps.append(compare(summary, f"renorm@m{lo}", f"renorm@m{hi}", metric, what,
                                     f"Batch Renorm at m = {lo}", f"Batch Renorm at m = {hi}"))
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


# -- the loss landscape (Santurkar et al. 2018; bnviz.landscape) -----------------------------

LANDSCAPE_METRICS = (("landscape_band_mean", "loss band width"),
                     ("landscape_gradpred_mean", "gradient change ‖∇L(w) − ∇L(w − s·g)‖"),
                     ("landscape_beta_mean", "effective β-smoothness"))
LANDSCAPE_ACTS = ("sigmoid", "relu")


def landscape(summary) -> Reading:
    """Per activation, BN against no BN on the three probe quantities (each run's mean over
    its evaluations), and on test accuracy. The paper's ordering is BN's being smaller (verdict
    "b" of bn vs none). Per activation `facts[act]` is "paper" (BN smaller on band and gradient
    change, intervals apart), "reversed" (BN larger on either), "mixed" or "same"/"too few";
    `at_chance`: arms whose test accuracy stayed at chance level (a flat landscape there
    means no progress, not smoothness)."""
    comps, facts = [], {}
    for act in LANDSCAPE_ACTS:
        a, b = f"bn_{act}", f"none_{act}"
        mine = [compare(summary, a, b, m, what, f"BN ({act})", f"no BN ({act})", digits=3,
                        larger=True) for m, what in LANDSCAPE_METRICS]
        mine.append(compare(summary, a, b, "test_acc_precise", "test accuracy",
                            f"BN ({act})", f"no BN ({act})"))
        comps += mine
        v = [c.verdict for c in mine[:2]]
        facts[act] = ("too few" if "too few" in v else "paper" if v == ["b", "b"] else
                      "reversed" if "a" in v else "same" if v == ["same", "same"] else "mixed")
        facts[f"n_{act}"] = min(mine[0].ea.n, mine[0].eb.n)
    return Reading("landscape", tuple(comps), facts=facts,
                   at_chance=at_chance(summary, "test_acc_precise"))


def _landscape_phrase(c: Comparison) -> str:
    d = 3
    pair = (f"{c.ea.mean:.{d}g} ± {c.ea.half:.{d}g} with BN vs {c.eb.mean:.{d}g} ± "
            f"{c.eb.half:.{d}g} without")
    if c.verdict == "b":
        return f"smaller with BN ({pair}, intervals apart)"
    if c.verdict == "a":
        return f"larger with BN ({pair}, intervals apart)"
    if c.verdict == "same":
        return f"no difference detectable ({pair}; the intervals overlap)"
    return "not enough finished runs"


def landscape_text(r: Reading) -> str:
    """The page's and the findings' one plain paragraph: what the seeded numbers show."""
    parts = []
    for act, lr_note in (("sigmoid", "the book's sigmoid"), ("relu", "ReLU")):
        cs = [c for c in r.comparisons if c.a == f"bn_{act}"]
        if not cs:
            continue
        band, grad, beta, acc = cs
        n = r.facts.get(f"n_{act}", 0)
        s = (f"With {lr_note} (n = {n} paired seeds, each run's mean over training, ± 95% "
             f"CI): loss band width {_landscape_phrase(band)}; gradient change "
             f"{_landscape_phrase(grad)}; β-smoothness {_landscape_phrase(beta)}")
        verdict = r.facts.get(act)
        s += {"paper": ": the paper's ordering.",
              "reversed": ": LeNet differs from the paper here.",
              "mixed": ": only partly the paper's ordering.",
              "same": ": no difference detectable.",
              "too few": "."}.get(verdict, ".")
        if f"none_{act}" in r.at_chance:
            s += (f" Without BN the {act} network stayed at chance accuracy "
                  f"({acc.eb.mean:.3f}): it sat on a plateau where a step barely changes the "
                  "loss, so its narrow band there means no progress, not a smoother landscape.")
        parts.append(s)
    return " ".join(parts)


# -- scale invariance and weight decay; training only gamma and beta (bnviz/optim.py) --------

BN_LAYERS = ("conv1", "conv2", "fc1", "fc2")  # the layers a norm follows in LeNet-BN


def weight_decay(summary) -> Reading:
    """What weight decay does with BN (it shrinks ‖w‖, so the effective step η/‖w‖² of every
    BN-followed layer grows) and without (plain L2 regularisation): test accuracy with and
    without decay in each, and each BN-followed layer's final ‖w‖."""
    what = "test accuracy (PreciseBN)"
    comps = [compare(summary, "bn_wd", "bn_wd0", "test_acc_precise", what,
                     "BN with weight decay", "BN without"),
             compare(summary, "none_wd", "none_wd0", "test_acc_precise", what,
                     "no BN with weight decay", "no BN without")]
    comps += [compare(summary, "bn_wd", "bn_wd0", f"final_wnorm_{layer}",
                      f"final ‖w‖ of {layer}", "BN with weight decay", "BN without",
                      larger=True) for layer in BN_LAYERS]
    shrunk = [c for c in comps[2:] if c.verdict == "b"]
    facts = {"layers_shrunk": tuple(c.metric[len("final_wnorm_"):] for c in shrunk),
             "n": min(c.ea.n for c in comps)}
    return Reading("weight_decay", tuple(comps), at_chance=at_chance(summary,
                                                                      "test_acc_precise"),
                   facts=facts)


def train_only(summary) -> Reading:
    """Frankle et al. 2021's comparison on LeNet: only gamma and beta trained against as many
    random weights and against everything; and how many channels gamma switches off."""
    from bnviz.weights import GAMMA_OFF
    what = "test accuracy (PreciseBN)"
    names = {"all": "training everything", "bn_only": "only gamma and beta",
             "random": "as many random weights"}
    comps = [compare(summary, a, b, "test_acc_precise", what, names[a], names[b])
             for a, b in (("bn_only", "random"), ("bn_only", "all"), ("random", "all"))]
    comps.append(compare(summary, "bn_only", "all", "final_gamma_off",
                         f"fraction of channels with |gamma| < {GAMMA_OFF:g}", names["bn_only"],
                         names["all"], larger=True))
    return Reading("train_only", tuple(comps),
                   at_chance=at_chance(summary, "test_acc_precise"))


# -- internal covariate shift and noisy BN (Santurkar et al. 2018, §2.2, fig. 2; bnviz/ics.py) --

ICS_NAMES = {"bn": "BN", "noisy_bn": "noisy BN", "none": "no BN"}


def ics(summary) -> Reading:
    """BN against no BN on ICS as the paper measures it (cos(G, G′) and ‖G − G′‖, each run's
    mean over layers and evaluations), noisy BN against BN on test accuracy and on how far the
    layers' inputs move (input_shift), and each arm's accuracy. Facts:
    - "ics": "reduced" (BN's cos(G, G′) higher, intervals apart: its earlier layers' step
      turns the gradient less), "not reduced" (the same or lower: the paper's finding),
      "too few";
    - "noisy_acc": "same" (noisy BN trains about as well as BN: the paper), "bn" (BN better),
      "noisy" (noisy BN better), "too few";
    - "noisy_shift": "more" (noisy BN's inputs move more than BN's: the paper), "less",
      "same", "not measured" (the inputs not recorded), "too few";
    - "n": the fewest finished seeds of any arm."""
    names = ICS_NAMES
    acc = "test accuracy (PreciseBN)"
    cos = compare(summary, "bn", "none", "ics_cos", "cos(G, G′)", names["bn"], names["none"])
    l2 = compare(summary, "bn", "none", "ics_l2", "‖G − G′‖", names["bn"], names["none"],
                 digits=4, larger=True)
    noisy_acc = compare(summary, "noisy_bn", "bn", "test_acc_precise", acc, names["noisy_bn"],
                        names["bn"])
    shift = compare(summary, "noisy_bn", "bn", "input_shift", "input shift (mean |Δ median| "
                    "of a unit's input between evaluations)", names["noisy_bn"], names["bn"],
                    digits=4, larger=True)
    shift_none = compare(summary, "none", "bn", "input_shift", "input shift (mean |Δ median| "
                         "of a unit's input between evaluations)", names["none"],
                         names["bn"], digits=4, larger=True)
    bn_acc = compare(summary, "bn", "none", "test_acc_precise", acc, names["bn"],
                     names["none"])
    noisy_cos = compare(summary, "noisy_bn", "bn", "ics_cos", "cos(G, G′)", names["noisy_bn"],
                        names["bn"])
    comps = (cos, l2, noisy_acc, shift, shift_none, bn_acc, noisy_cos)
    v = cos.verdict
    facts = {"ics": "too few" if v == "too few" else "reduced" if v == "a" else "not reduced",
             "noisy_acc": {"same": "same", "a": "noisy", "b": "bn"}.get(noisy_acc.verdict,
                                                                      "too few"),
             "n": min(cos.ea.n, cos.eb.n, noisy_acc.ea.n)}
    if math.isnan(shift.ea.mean) or math.isnan(shift.eb.mean):
        facts["noisy_shift"] = "not measured"
    else:
        facts["noisy_shift"] = {"a": "more", "b": "less", "same": "same"}.get(shift.verdict,
                                                                           "too few")
    return Reading("ics", comps, facts=facts,
                   at_chance=at_chance(summary, "test_acc_precise"))


def ics_text(r: Reading) -> str:
    """The page's and the findings' plain paragraph: what the seeded numbers show, beside the
    paper's claims (ICS by the gradient measure not reduced by BN; noisy BN trains about as
    well as BN while its layers' inputs shift far more)."""
    cos, l2, noisy_acc, shift, shift_none, bn_acc = r.comparisons[:6]
    n = r.facts.get("n", 0)

    def pair(c: Comparison, d: int = 3) -> str:
        return (f"{c.ea.mean:.{d}f} ± {c.ea.half:.{d}f} ({c.name_a}) vs "
                f"{c.eb.mean:.{d}f} ± {c.eb.half:.{d}f} ({c.name_b})")
    if n < 2:
        return "Not enough finished runs (fewer than two seeds per arm) to read this grid."
    s = [f"n = {n} paired seeds, mean ± 95% CI."]
    s.append({"reduced": f"By the paper's gradient measure BN reduces internal covariate "
                         f"shift here: cos(G, G′) {pair(cos)}, intervals apart — LeNet "
                         f"differs from the paper's deep networks.",
              "not reduced": f"By the paper's gradient measure BN does not reduce internal "
                             f"covariate shift: cos(G, G′) {pair(cos)}"
                             + (", intervals apart (lower with BN)" if cos.verdict == "b"
                                else ", the intervals overlap")
                             + " — as Santurkar et al. found."}[r.facts["ics"]])
    s.append(f"‖G − G′‖: {pair(l2, 4)}, "
             + {"a": "larger with BN, intervals apart", "b": "smaller with BN, intervals apart"}
             .get(l2.verdict, "the intervals overlap")
             + " (a length, so it also follows the size of the gradients themselves, which "
               "BN changes; cos(G, G′) does not).")
    s.append({"same": f"Noisy BN against BN: no difference in {noisy_acc.what} is "
                      f"detectable, {pair(noisy_acc)}, the intervals overlap (the paper: "
                      f"noisy BN trains about as well as BN).",
              "bn": f"BN beats noisy BN on {noisy_acc.what}: {pair(noisy_acc)}, intervals "
                    f"apart — with these noise scales LeNet does not bear out the paper's "
                    f"\"about as well\".",
              "noisy": f"Noisy BN beats BN on {noisy_acc.what}: {pair(noisy_acc)}, intervals "
                       f"apart."}.get(r.facts["noisy_acc"], ""))
    s.append({"more": f"Its layers' inputs move far more than BN's: input shift "
                      f"{pair(shift, 4)}, intervals apart"
                      + (", with no accuracy loss detectable against BN: by this measure, "
                         "stable input distributions are not what makes BN work." if
                         r.facts["noisy_acc"] in ("same", "noisy")
                         else "; that it also trains worse here leaves the paper's "
                              "conclusion untested on LeNet at these noise scales."),
              "less": f"Its layers' inputs move less than BN's: input shift {pair(shift, 4)}.",
              "same": f"Its layers' inputs do not move measurably more than BN's: input "
                      f"shift {pair(shift, 4)}, the intervals overlap.",
              "not measured": "These runs did not record their layers' inputs, so input "
                              "shift is not measured."}.get(r.facts["noisy_shift"], ""))
    if "none" in r.at_chance:
        s.append(f"Without BN the network stayed at chance accuracy ({bn_acc.eb.mean:.3f}): "
                 "its ICS numbers describe a network that is not learning.")
    return " ".join(x for x in s if x)


# -- fine-tuning with BN frozen or updating (bnviz/finetune.py; arms: experiments.finetune_grid)

FINETUNE_NAMES = {"update": "BN updating", "frozen_stats": "BN frozen (γ/β learn)",
                  "frozen_all": "BN frozen (γ/β fixed)"}


def finetune(summary) -> Reading:
    """After fine-tuning on part B: frozen running statistics against updating ones on the new
    part, on the old one and on the fine-tuning's train loss, frozen gamma/beta against learning ones on the new part, and how
    far the running means moved. Verdict "moved" when the updating arm's drift is above 0
    (its interval too) and every frozen arm's is exactly 0; "still" when even the updating
    arm's interval reaches 0; "too few" below two seeds."""
    arms = [a for a in FINETUNE_NAMES if a in set(summary.arm)]
    _est(summary, "update", "acc_part_b")  # the reference must exist
    comps = []
    for a, b, metric_id, what in (
            ("frozen_stats", "update", "acc_part_b", "test accuracy on part B (new)"),
            ("frozen_stats", "update", "acc_part_a", "test accuracy on part A (old)"),
            ("frozen_stats", "update", "train_loss", "train loss over the last fine-tuning "
                                                     "epoch"),
            ("frozen_all", "frozen_stats", "acc_part_b", "test accuracy on part B (new)"),
            ("update", "frozen_stats", "bn_drift", "running-mean drift (σ)")):
        if a in arms and b in arms:
            comps.append(compare(summary, a, b, metric_id, what, FINETUNE_NAMES[a],
                                 FINETUNE_NAMES[b], larger=metric_id == "bn_drift"))
    drift = {a: _est(summary, a, "bn_drift") for a in arms}
    frozen = [drift[a] for a in arms if a != "update"]
    up = drift["update"]
    if up.n < 2 or any(e.n < 2 for e in frozen):
        verdict = "too few"
    elif up.mean - up.half > 0 and all(e.mean == 0 for e in frozen):
        verdict = "moved"
    elif up.mean - up.half <= 0:
        verdict = "still"
    else:
        verdict = "frozen moved"  # a frozen arm's statistics moved: a bug, said out loud
    return Reading("finetune", tuple(comps), verdict,
                   {"drift": {a: (e.mean, e.half, e.n) for a, e in drift.items()}},
                   at_chance=at_chance(summary, "acc_part_b"))


def finetune_text(r: Reading) -> str:
    """The drift verdict in one sentence, with its numbers."""
    d = r.facts.get("drift", {})
    if r.verdict == "too few" or "update" not in d:
        return "Not enough finished runs (fewer than two seeds per arm) to read the drift."
    m, h, n = d["update"]
    frozen = ", ".join(f"{FINETUNE_NAMES[a]} {v[0]:.3f}" for a, v in d.items() if a != "update")
    return {"moved": f"Updating, the running means moved by {m:.3f} ± {h:.3f} running "
                     f"standard deviations over the fine-tuning (n = {n} seeds); frozen, by "
                     f"exactly 0 ({frozen}): eval mode keeps part A's statistics bit for bit.",
            "still": f"Updating, the running means moved by {m:.3f} ± {h:.3f} running "
                     f"standard deviations (n = {n} seeds), an interval that reaches 0: these "
                     f"seeds cannot tell that drift from none; frozen, by exactly 0 "
                     f"({frozen}).",
            "frozen moved": f"A frozen arm's running means moved ({frozen}): they should "
                            "not — a bug."}[r.verdict]


def _than(c: Comparison, b: str) -> str:
    """'higher than b' / 'lower than b' (intervals apart), or why no difference is claimed."""
    return {"a": f"higher than {b}", "b": f"lower than {b}",
            "same": f"not distinguishable from {b} (the 95% intervals overlap)",
            "too few": f"not yet comparable with {b} (too few finished seeds)"}[c.verdict]


def weight_decay_text(r: Reading) -> str:
    """The weight-decay page's and the findings' plain paragraph."""
    acc_bn, acc_none, *norms = r.comparisons
    n = r.facts.get("n", 0)
    shrunk = r.facts.get("layers_shrunk", ())
    if shrunk:
        lead = (f"With BN, weight decay left a smaller final ‖w‖ at {', '.join(shrunk)} "
                f"(intervals apart), so a larger effective step η/‖w‖² there")
    else:
        lead = "With BN, no layer's final ‖w‖ differed detectably with weight decay"
    return (f"{lead}. Test accuracy (PreciseBN) with weight decay: with BN "
            f"{acc_bn.ea.mean:.3f}, {_than(acc_bn, f'{acc_bn.eb.mean:.3f} without')}; "
            f"without BN {acc_none.ea.mean:.3f}, "
            f"{_than(acc_none, f'{acc_none.eb.mean:.3f} without')}. n = {n} paired seeds."
            + (" Without BN the network stayed at chance accuracy on some arm (the book's "
               "sigmoid LeNet learns slowly without BN), so that comparison says little."
               if {"none_wd0", "none_wd"} & set(r.at_chance) else ""))


def train_only_text(r: Reading) -> str:
    """The train-only page's and the findings' plain paragraph."""
    bn_rand, bn_all, rand_all, off = r.comparisons

    def pm(e) -> str:
        return f"{e.mean:.3f} ± {e.half:.3f}" if e.n > 1 else f"{e.mean:.3f}"
    n = min(bn_rand.ea.n, bn_rand.eb.n, bn_all.eb.n)
    return (f"Training only gamma and beta reached {pm(bn_all.ea)} test accuracy "
            f"(PreciseBN, mean ± 95% CI, n = {n} paired seeds): "
            f"{_than(bn_rand, f'as many random weights, {pm(bn_rand.eb)}')}; "
            f"{_than(bn_all, f'training everything, {pm(bn_all.eb)}')}. "
            f"{off.what[0].upper() + off.what[1:]}: {off.ea.mean:.1%} with only gamma and "
            f"beta trained, {off.eb.mean:.1%} when everything trains.")


def lite(summary) -> Reading:
    """d2l's exercise 4: mean-only and variance-only BN, and no norm, each against full BN
    (test accuracy with running statistics and with PreciseBN, final train loss, and the
    epoch-to-epoch swing of test accuracy)."""
    names = {"bn_mean": "mean-only BN", "bn_var": "variance-only BN", "none": "no norm"}
    comps = []
    for arm, name in names.items():
        for metric, what, larger in (("test_acc_precise", "test accuracy (PreciseBN)", False),
                                     ("test_acc_running", "test accuracy (running stats)",
                                      False),
                                     ("train_loss", "final train loss", False),
                                     ("fluctuation", "epoch-to-epoch std of test accuracy",
                                      True)):
            comps.append(Comparison(arm, "bn", name, "full BN", metric, what,
                                    _est(summary, arm, metric), _est(summary, "bn", metric),
                                    4 if metric == "fluctuation" else 3, larger))
    return Reading("lite", tuple(comps), at_chance=at_chance(summary, "test_acc_precise"))


def placement(summary) -> Reading:
    """BN after the activation against BN before it (d2l's placement), with sigmoid and with
    ReLU, on test accuracy (PreciseBN and running statistics)."""
    comps = []
    for act in ("sigmoid", "relu"):
        for metric, what in (("test_acc_precise", "test accuracy (PreciseBN)"),
                             ("test_acc_running", "test accuracy (running stats)")):
            comps.append(compare(summary, f"after_{act}", f"before_{act}", metric, what,
                                 f"BN after the {act}", f"BN before the {act}"))
    return Reading("placement", tuple(comps), at_chance=at_chance(summary, "test_acc_precise"))
