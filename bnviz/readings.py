"""What each question's runs say, computed once, returned as data.

A reading takes a grid's summary (bnviz.runs.results.summarize: one row per arm, mean, 95% CI
and n per metric) and decides, by arm id, which comparisons to make and what they show. Pages,
the findings script and the tests only render or inspect the result, so the dashboard and the
README can never disagree, and every verdict is tested on tables whose answer is known.
A difference is claimed only where two 95% intervals do not overlap (bnviz.stats.separated).
A summary is any pandas frame of that shape; this module itself imports no pandas.
Names and metric phrases (`name_a`, `what`) are English data, marked with N_ where they are
written (a Phrase where a number is part of them); the functions that render sentences
(`Comparison.text`, the *_text functions, `one_run`) translate their templates and those phrases
at render time (bnviz.i18n), so the English output is unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bnviz.i18n import N_, _
from bnviz.metrics import CHANCE
from bnviz.stats import (Estimate, Phrase, compare_text, fluctuation as _fluctuation, listing,
                         say, sentences, separated, spaced)


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
        return compare_text(self.name_a, self.ea, self.name_b, self.eb, self.what, self.digits,
                            larger=self.larger)


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
        compare(summary, a, "all", "test_acc_precise", N_("test accuracy (PreciseBN)"))
        for a in arms))


def presets(summary) -> Reading:
    """d2l's LeNet-BN against LeNet; and how much wider test accuracy with running statistics
    spreads over seeds than training accuracy does (the chapter's swing)."""
    c = compare(summary, "d2l-lenet-bn", "d2l-lenet", "test_acc_precise",
                N_("test accuracy (PreciseBN)"))
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
    # The two editions' LeNet-BN (lr 0.1, batch 128 against lr 1.0, batch 256), where the
    # grid has the English edition's
    editions = tuple(
        compare(summary, "d2l-en-lenet-bn", "d2l-lenet-bn", m, what)
        for m, what in (("train_loss", N_("train loss")),
                        ("test_acc_running", N_("test accuracy (running statistics)")),
                        ("test_acc_precise", N_("test accuracy (PreciseBN)")))
        if "arm" in summary and "d2l-en-lenet-bn" in set(summary.arm))
    return Reading("presets", (c, *editions), verdict, facts)


def fluctuation(summary) -> Reading:
    """The same runs evaluated three ways: the epoch-to-epoch swing of PreciseBN and of batch
    statistics against running statistics, and the final accuracy of each."""
    arm = "three_ways"
    running = _est(summary, arm, "fluct_running")
    comps = [Comparison(arm, arm, name, N_("running statistics"), f"fluct_{how}",
                        N_("epoch-to-epoch std"), _est(summary, arm, f"fluct_{how}"), running,
                        digits=4, larger=True, metric_b="fluct_running")
             for how, name in (("precise", N_("PreciseBN")),
                               ("batch", N_("batch statistics")))]
    comps.append(Comparison(arm, arm, N_("PreciseBN"), N_("running statistics"),
                            "test_acc_precise",
                            N_("final test accuracy"), _est(summary, arm, "test_acc_precise"),
                            _est(summary, arm, "test_acc_running"),
                            metric_b="test_acc_running"))
    return Reading("fluctuation", tuple(comps))


def gamma(summary) -> Reading:
    return Reading("gamma", tuple(
        compare(summary, "learned", "frozen", m, what, N_("learned"), N_("frozen"))
        for m, what in (("train_loss", N_("final train loss")),
                        ("test_acc_precise", N_("test accuracy (PreciseBN)")))))


def bias(summary) -> Reading:
    return Reading("bias", (compare(summary, "bias_on", "bias_off", "test_acc_precise",
                                    N_("test accuracy (PreciseBN)"), N_("with bias"),
                                    N_("without")),))


def devices(summary) -> Reading:
    """Question 6: do the book's BN's lost moving statistics explain the drop on several
    devices, rather than the smaller per-device batches?"""
    what = N_("test accuracy (eval mode)")
    lost = compare(summary, "book_2", "book_1", "test_acc_running", what,
                   N_("book BN on 2 devices"), N_("book BN on 1 device"))
    train = compare(summary, "book_2", "book_1", "train_acc", N_("train accuracy"),
                    N_("book BN on 2 devices"), N_("book BN on 1 device"))
    comps = [lost, train]
    slices = None
    if "bn_8" in set(summary.arm):
        slices = compare(summary, "bn_8", "bn_1", "test_acc_running", what,
                         N_("nn.BatchNorm on 8 devices"), N_("nn.BatchNorm on 1 device"))
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
    ok, failed = limit.largest_trained is not None, limit.first_failed is not None
    if ok and failed:
        template = _("**{norm}**: largest lr at which every seed trained (95% CI of test "
                     "accuracy above 0.5): **{largest:g}**; diverged or failed on some seed "
                     "from lr {failed:g} ({seeds} seeds per lr).")
    elif ok:
        template = _("**{norm}**: largest lr at which every seed trained (95% CI of test "
                     "accuracy above 0.5): **{largest:g}** ({seeds} seeds per lr).")
    elif failed:
        template = _("**{norm}**: no lr trained on every seed; diverged or failed on some seed "
                     "from lr {failed:g} ({seeds} seeds per lr).")
    else:
        template = _("**{norm}**: no lr trained on every seed ({seeds} seeds per lr).")
    return spaced(template.format(norm=limit.norm, largest=limit.largest_trained,
                                  failed=limit.first_failed, seeds=limit.seeds))


NORM_BATCH_METRICS = {"test_acc_running": N_("test accuracy, running statistics (eval mode)"),
                      "test_acc_precise": N_("test accuracy, PreciseBN")}


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
                                 Phrase(N_("BN at m = {m}"), m=lo),
                                 Phrase(N_("BN at m = {m}"), m=hi)))
        arms = set(summary.arm)
        if "group@ref" in arms:
            for m in dict.fromkeys([lo, hi]):
                comps.append(compare(summary, f"bn@m{m}", "group@ref", metric, what,
                                     Phrase(N_("BN at m = {m}"), m=m),
                                     N_("GroupNorm (2 groups)")))
            if "layer@ref" in arms:
                comps.append(compare(summary, "group@ref", "layer@ref", metric, what,
                                     N_("GroupNorm (2 groups)"), N_("LayerNorm (1 group)")))
        if f"renorm@m{lo}" in arms:  # Batch Renorm, the fix for small m, beside BN at m
            comps.append(compare(summary, f"renorm@m{lo}", f"bn@m{lo}", metric, what,
                                 Phrase(N_("Batch Renorm at m = {m}"), m=lo),
                                 Phrase(N_("BN at m = {m}"), m=lo)))
            if f"renorm@m{hi}" in arms and lo != hi:
                comps.append(compare(summary, f"renorm@m{lo}", f"renorm@m{hi}", metric, what,
                                     Phrase(N_("Batch Renorm at m = {m}"), m=lo),
                                     Phrase(N_("Batch Renorm at m = {m}"), m=hi)))
    return Reading("norm_batch", tuple(comps), at_chance=at_chance(summary, metric))


def sgd_batch(summary) -> Reading:
    """Per normalisation, the smallest SGD batch against the largest (test accuracy)."""
    comps = []
    by_norm: dict[str, list[int]] = {}
    for a in summary.arm:
        norm, _at, b = a.partition("@b")
        by_norm.setdefault(norm, []).append(int(b))
    for norm, sizes in by_norm.items():
        lo, hi = min(sizes), max(sizes)
        if lo != hi:
            comps.append(compare(summary, f"{norm}@b{lo}", f"{norm}@b{hi}", "test_acc",
                                 N_("test accuracy"), Phrase(N_("batch {size}"), size=lo),
                                 Phrase(N_("batch {size}"), size=hi)))
    return Reading("sgd_batch", tuple(comps), at_chance=at_chance(summary, "test_acc"))


def batch1(summary) -> Reading:
    """Conv-only BN at batch 1: eval mode's running statistics against each test image
    normalised by itself (batch statistics at batch 1, as in training)."""
    arm = "conv_only_batch1"
    c = Comparison(arm, arm, N_("running statistics (eval mode)"),
                   N_("per-image batch statistics (as in training)"), "test_acc_running",
                   N_("test accuracy"), _est(summary, arm, "test_acc_running"),
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
        return _("No evaluation yet.") if v.status != "finished" else ""
    train, test = s["train_acc"], s["test_acc"]
    gap = train - test
    parts = [(_("Test accuracy {test:.3f}, train accuracy {train:.3f} (gap {gap:+.3f}), "
                "{speed:,.0f} examples/s.") if speed else
              _("Test accuracy {test:.3f}, train accuracy {train:.3f} (gap {gap:+.3f}).")
              ).format(test=test, train=train, gap=gap, speed=s.get('examples_per_sec', 0))]
    if test < CHANCE and train < CHANCE:
        parts.append(_("That is chance level on both: the network did not learn."))
        return sentences(parts)
    if test < CHANCE:
        parts.append(_("Test accuracy is at chance level while training learned: the model "
                       "fails in eval mode."))
    running = s.get("test_acc_running", math.nan)
    precise = s.get("test_acc_precise", math.nan)
    if v.config.eval_mode == "running" and not math.isnan(precise) and precise != running:
        lag = precise - running
        rest = train - precise
        parts.append(_("With PreciseBN (statistics recomputed for the final weights) the test "
                       "accuracy is {precise:.3f}: {lag:+.3f} of the gap comes from the running "
                       "statistics lagging the weights, not from the weights. The remaining "
                       "{rest:+.3f} compares the final model on unseen images with its average "
                       "on the last epoch's training batches in train mode, so it is at most "
                       "overfitting.").format(precise=precise, lag=lag, rest=rest))
    elif gap > 0.05:
        parts.append(_("Train accuracy (the last epoch's batches, in train mode) is above test "
                       "accuracy (the final model, eval mode)."))
    accs = [e["test_acc"] for e in v.evals]
    fl = _fluctuation(accs)
    if not math.isnan(fl) and fl > 0.015:
        parts.append(_("Test accuracy swung by ±{fl:.3f} (std) over the last evaluations: see "
                       "the fluctuation chart.").format(fl=fl))
    return sentences(parts)


# -- the loss landscape (Santurkar et al. 2018; bnviz.landscape) -----------------------------

LANDSCAPE_METRICS = (("landscape_band_mean", N_("loss band width")),
                     ("landscape_gradpred_mean", N_("gradient change ‖∇L(w) − ∇L(w − s·g)‖")),
                     ("landscape_beta_mean", N_("effective β-smoothness")))
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
        mine = [compare(summary, a, b, m, what, Phrase(N_("BN ({act})"), act=act),
                        Phrase(N_("no BN ({act})"), act=act), digits=3,
                        larger=True) for m, what in LANDSCAPE_METRICS]
        mine.append(compare(summary, a, b, "test_acc_precise", N_("test accuracy"),
                            Phrase(N_("BN ({act})"), act=act),
                            Phrase(N_("no BN ({act})"), act=act)))
        comps += mine
        v = [c.verdict for c in mine[:2]]
        facts[act] = ("too few" if "too few" in v else "paper" if v == ["b", "b"] else
                      "reversed" if "a" in v else "same" if v == ["same", "same"] else "mixed")
        facts[f"n_{act}"] = min(mine[0].ea.n, mine[0].eb.n)
    return Reading("landscape", tuple(comps), facts=facts,
                   at_chance=at_chance(summary, "test_acc_precise"))


def _landscape_phrase(c: Comparison) -> str:
    d = 3
    pair = _("{a} ± {a_half} with BN vs {b} ± {b_half} without").format(
        a=f"{c.ea.mean:.{d}g}", a_half=f"{c.ea.half:.{d}g}", b=f"{c.eb.mean:.{d}g}",
        b_half=f"{c.eb.half:.{d}g}")
    if c.verdict == "b":
        return _("smaller with BN ({pair}, intervals apart)").format(pair=pair)
    if c.verdict == "a":
        return _("larger with BN ({pair}, intervals apart)").format(pair=pair)
    if c.verdict == "same":
        return _("no difference detectable ({pair}; the intervals overlap)").format(pair=pair)
    return _("not enough finished runs")


# The landscape paragraph's sentence per activation, by its verdict (None: no verdict read).
_LANDSCAPE_SENTENCES = {
    "paper": N_("With {act} (n = {n} paired seeds, each run's mean over training, ± 95% CI): "
                "loss band width {band}; gradient change {grad}; β-smoothness {beta}: the "
                "paper's ordering."),
    "reversed": N_("With {act} (n = {n} paired seeds, each run's mean over training, ± 95% "
                   "CI): loss band width {band}; gradient change {grad}; β-smoothness {beta}: "
                   "LeNet differs from the paper here."),
    "mixed": N_("With {act} (n = {n} paired seeds, each run's mean over training, ± 95% CI): "
                "loss band width {band}; gradient change {grad}; β-smoothness {beta}: only "
                "partly the paper's ordering."),
    "same": N_("With {act} (n = {n} paired seeds, each run's mean over training, ± 95% CI): "
               "loss band width {band}; gradient change {grad}; β-smoothness {beta}: no "
               "difference detectable."),
    None: N_("With {act} (n = {n} paired seeds, each run's mean over training, ± 95% CI): "
             "loss band width {band}; gradient change {grad}; β-smoothness {beta}."),
}


def landscape_text(r: Reading) -> str:
    """The page's and the findings' one plain paragraph: what the seeded numbers show."""
    parts = []
    for act, lr_note in (("sigmoid", N_("the book's sigmoid")), ("relu", N_("ReLU"))):
        cs = [c for c in r.comparisons if c.a == f"bn_{act}"]
        if not cs:
            continue
        band, grad, beta, acc = cs
        n = r.facts.get(f"n_{act}", 0)
        verdict = r.facts.get(act)
        parts.append(_(_LANDSCAPE_SENTENCES.get(verdict, _LANDSCAPE_SENTENCES[None])).format(
            act=say(lr_note), n=n, band=_landscape_phrase(band), grad=_landscape_phrase(grad),
            beta=_landscape_phrase(beta)))
        if f"none_{act}" in r.at_chance:
            parts.append(_("Without BN the {act} network stayed at chance accuracy ({acc:.3f}): "
                           "it sat on a plateau where a step barely changes the loss, so its "
                           "narrow band there means no progress, not a smoother landscape.")
                         .format(act=act, acc=acc.eb.mean))
    return sentences(parts)


# -- scale invariance and weight decay; training only gamma and beta (bnviz/optim.py) --------

BN_LAYERS = ("conv1", "conv2", "fc1", "fc2")  # the layers a norm follows in LeNet-BN


def weight_decay(summary) -> Reading:
    """What weight decay does with BN (it shrinks ‖w‖, so the effective step η/‖w‖² of every
    BN-followed layer grows) and without (plain L2 regularisation): test accuracy with and
    without decay in each, and each BN-followed layer's final ‖w‖."""
    what = N_("test accuracy (PreciseBN)")
    comps = [compare(summary, "bn_wd", "bn_wd0", "test_acc_precise", what,
                     N_("BN with weight decay"), N_("BN without")),
             compare(summary, "none_wd", "none_wd0", "test_acc_precise", what,
                     N_("no BN with weight decay"), N_("no BN without"))]
    comps += [compare(summary, "bn_wd", "bn_wd0", f"final_wnorm_{layer}",
                      Phrase(N_("final ‖w‖ of {layer}"), layer=layer), N_("BN with weight decay"),
                      N_("BN without"), larger=True) for layer in BN_LAYERS]
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
    what = N_("test accuracy (PreciseBN)")
    names = {"all": N_("training everything"), "bn_only": N_("only gamma and beta"),
             "random": N_("as many random weights")}
    comps = [compare(summary, a, b, "test_acc_precise", what, names[a], names[b])
             for a, b in (("bn_only", "random"), ("bn_only", "all"), ("random", "all"))]
    comps.append(compare(summary, "bn_only", "all", "final_gamma_off",
                         Phrase(N_("fraction of channels with |gamma| < {off:g}"), off=GAMMA_OFF),
                         names["bn_only"], names["all"], larger=True))
    return Reading("train_only", tuple(comps),
                   at_chance=at_chance(summary, "test_acc_precise"))


# -- internal covariate shift and noisy BN (Santurkar et al. 2018, §2.2, fig. 2; bnviz/ics.py) --

ICS_NAMES = {"bn": N_("BN"), "noisy_bn": N_("noisy BN"), "none": N_("no BN")}
INPUT_SHIFT = N_("input shift (mean |Δ median| of a unit's input between evaluations)")


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
    acc = N_("test accuracy (PreciseBN)")
    cos = compare(summary, "bn", "none", "ics_cos", N_("cos(G, G′)"), names["bn"],
                  names["none"])
    l2 = compare(summary, "bn", "none", "ics_l2", N_("‖G − G′‖"), names["bn"], names["none"],
                 digits=4, larger=True)
    noisy_acc = compare(summary, "noisy_bn", "bn", "test_acc_precise", acc, names["noisy_bn"],
                        names["bn"])
    shift = compare(summary, "noisy_bn", "bn", "input_shift", INPUT_SHIFT, names["noisy_bn"],
                    names["bn"], digits=4, larger=True)
    shift_none = compare(summary, "none", "bn", "input_shift", INPUT_SHIFT, names["none"],
                         names["bn"], digits=4, larger=True)
    bn_acc = compare(summary, "bn", "none", "test_acc_precise", acc, names["bn"],
                     names["none"])
    noisy_cos = compare(summary, "noisy_bn", "bn", "ics_cos", N_("cos(G, G′)"), names["noisy_bn"],
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
        return _("{a} ± {a_half} ({name_a}) vs {b} ± {b_half} ({name_b})").format(
            a=f"{c.ea.mean:.{d}f}", a_half=f"{c.ea.half:.{d}f}", name_a=say(c.name_a),
            b=f"{c.eb.mean:.{d}f}", b_half=f"{c.eb.half:.{d}f}", name_b=say(c.name_b))
    if n < 2:
        return _("Not enough finished runs (fewer than two seeds per arm) to read this grid.")
    s = [_("n = {n} paired seeds, mean ± 95% CI.").format(n=n)]
    if r.facts["ics"] == "reduced":
        s.append(_("By the paper's gradient measure BN reduces internal covariate shift here: "
                   "cos(G, G′) {pair}, intervals apart — LeNet differs from the paper's deep "
                   "networks.").format(pair=pair(cos)))
    elif r.facts["ics"] == "not reduced":
        s.append((_("By the paper's gradient measure BN does not reduce internal covariate "
                    "shift: cos(G, G′) {pair}, intervals apart (lower with BN) — as Santurkar "
                    "et al. found.") if cos.verdict == "b" else
                  _("By the paper's gradient measure BN does not reduce internal covariate "
                    "shift: cos(G, G′) {pair}, the intervals overlap — as Santurkar et al. "
                    "found.")).format(pair=pair(cos)))
    else:
        raise KeyError(r.facts["ics"])
    s.append({"a": _("‖G − G′‖: {pair}, larger with BN, intervals apart (a length, so it also "
                     "follows the size of the gradients themselves, which BN changes; cos(G, G′) "
                     "does not)."),
              "b": _("‖G − G′‖: {pair}, smaller with BN, intervals apart (a length, so it also "
                     "follows the size of the gradients themselves, which BN changes; cos(G, "
                     "G′) does not).")}
             .get(l2.verdict, _("‖G − G′‖: {pair}, the intervals overlap (a length, so it also "
                                "follows the size of the gradients themselves, which BN "
                                "changes; cos(G, G′) does not)."))
             .format(pair=pair(l2, 4)))
    what = say(noisy_acc.what)
    s.append({"same": _("Noisy BN against BN: no difference in {what} is detectable, {pair}, "
                        "the intervals overlap (the paper: noisy BN trains about as well as "
                        "BN)."),
              "bn": _("BN beats noisy BN on {what}: {pair}, intervals apart — with these noise "
                      "scales LeNet does not bear out the paper's \"about as well\"."),
              "noisy": _("Noisy BN beats BN on {what}: {pair}, intervals apart.")}
             .get(r.facts["noisy_acc"], "").format(what=what, pair=pair(noisy_acc)))
    if r.facts["noisy_shift"] == "more":
        s.append((_("Its layers' inputs move far more than BN's: input shift {pair}, intervals "
                    "apart, with no accuracy loss detectable against BN: by this measure, "
                    "stable input distributions are not what makes BN work.")
                  if r.facts["noisy_acc"] in ("same", "noisy") else
                  _("Its layers' inputs move far more than BN's: input shift {pair}, intervals "
                    "apart; that it also trains worse here leaves the paper's conclusion "
                    "untested on LeNet at these noise scales.")).format(pair=pair(shift, 4)))
    else:
        s.append({"less": _("Its layers' inputs move less than BN's: input shift {pair}."),
                  "same": _("Its layers' inputs do not move measurably more than BN's: input "
                            "shift {pair}, the intervals overlap."),
                  "not measured": _("These runs did not record their layers' inputs, so input "
                                    "shift is not measured.")}
                 .get(r.facts["noisy_shift"], "").format(pair=pair(shift, 4)))
    if "none" in r.at_chance:
        s.append(_("Without BN the network stayed at chance accuracy ({acc:.3f}): its ICS "
                   "numbers describe a network that is not learning.").format(acc=bn_acc.eb.mean))
    return sentences(x for x in s if x)


# -- fine-tuning with BN frozen or updating (bnviz/finetune.py; arms: experiments.finetune_grid)

FINETUNE_NAMES = {"update": N_("BN updating"), "frozen_stats": N_("BN frozen (γ/β learn)"),
                  "frozen_all": N_("BN frozen (γ/β fixed)")}


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
            ("frozen_stats", "update", "acc_part_b", N_("test accuracy on part B (new)")),
            ("frozen_stats", "update", "acc_part_a", N_("test accuracy on part A (old)")),
            ("frozen_stats", "update", "train_loss", N_("train loss over the last fine-tuning "
                                                        "epoch")),
            ("frozen_all", "frozen_stats", "acc_part_b", N_("test accuracy on part B (new)")),
            ("update", "frozen_stats", "bn_drift", N_("running-mean drift (σ)"))):
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
        return _("Not enough finished runs (fewer than two seeds per arm) to read the drift.")
    m, h, n = d["update"]
    frozen = listing(_("{name} {drift:.3f}").format(name=say(FINETUNE_NAMES[a]), drift=v[0])
                     for a, v in d.items() if a != "update")
    said = {"moved": _("Updating, the running means moved by {m:.3f} ± {h:.3f} running "
                       "standard deviations over the fine-tuning (n = {n} seeds); frozen, by "
                       "exactly 0 ({frozen}): eval mode keeps part A's statistics bit for bit."),
            "still": _("Updating, the running means moved by {m:.3f} ± {h:.3f} running "
                       "standard deviations (n = {n} seeds), an interval that reaches 0: these "
                       "seeds cannot tell that drift from none; frozen, by exactly 0 "
                       "({frozen})."),
            "frozen moved": _("A frozen arm's running means moved ({frozen}): they should "
                              "not — a bug.")}[r.verdict]
    return spaced(said.format(m=m, h=h, n=n, frozen=frozen))


def _than(c: Comparison, b: str) -> str:
    """'higher than b' / 'lower than b' (intervals apart), or why no difference is claimed."""
    return {"a": _("higher than {b}"), "b": _("lower than {b}"),
            "same": _("not distinguishable from {b} (the 95% intervals overlap)"),
            "too few": _("not yet comparable with {b} (too few finished seeds)")
            }[c.verdict].format(b=b)


def weight_decay_text(r: Reading) -> str:
    """The weight-decay page's and the findings' plain paragraph."""
    acc_bn, acc_none, *norms = r.comparisons
    n = r.facts.get("n", 0)
    shrunk = r.facts.get("layers_shrunk", ())
    if shrunk:
        lead = _("With BN, weight decay left a smaller final ‖w‖ at {layers} (intervals apart), "
                 "so a larger effective step η/‖w‖² there.").format(layers=listing(shrunk))
    else:
        lead = _("With BN, no layer's final ‖w‖ differed detectably with weight decay.")
    without = _("{acc:.3f} without")
    s = [lead, _("Test accuracy (PreciseBN) with weight decay: with BN {bn:.3f}, {bn_than}; "
                 "without BN {none:.3f}, {none_than}. n = {n} paired seeds.").format(
        bn=acc_bn.ea.mean, bn_than=_than(acc_bn, without.format(acc=acc_bn.eb.mean)),
        none=acc_none.ea.mean, none_than=_than(acc_none, without.format(acc=acc_none.eb.mean)),
        n=n)]
    if {"none_wd0", "none_wd"} & set(r.at_chance):
        s.append(_("Without BN the network stayed at chance accuracy on some arm (the book's "
                   "sigmoid LeNet learns slowly without BN), so that comparison says little."))
    return sentences(s)


def train_only_text(r: Reading) -> str:
    """The train-only page's and the findings' plain paragraph."""
    bn_rand, bn_all, rand_all, off = r.comparisons

    def pm(e) -> str:
        return f"{e.mean:.3f} ± {e.half:.3f}" if e.n > 1 else f"{e.mean:.3f}"
    n = min(bn_rand.ea.n, bn_rand.eb.n, bn_all.eb.n)
    what = say(off.what)
    return sentences([
        _("Training only gamma and beta reached {acc} test accuracy (PreciseBN, mean ± 95% CI, "
          "n = {n} paired seeds): {than_random}; {than_all}.").format(
            acc=pm(bn_all.ea), n=n,
            than_random=_than(bn_rand, _("as many random weights, {acc}").format(
                acc=pm(bn_rand.eb))),
            than_all=_than(bn_all, _("training everything, {acc}").format(acc=pm(bn_all.eb)))),
        _("{What}: {bn_only:.1%} with only gamma and beta trained, {all:.1%} when everything "
          "trains.").format(What=what[0].upper() + what[1:], bn_only=off.ea.mean,
                            all=off.eb.mean)])


def lite(summary) -> Reading:
    """d2l's exercise 4: mean-only and variance-only BN, and no norm, each against full BN
    (test accuracy with running statistics and with PreciseBN, final train loss, and the
    epoch-to-epoch swing of test accuracy)."""
    names = {"bn_mean": N_("mean-only BN"), "bn_var": N_("variance-only BN"),
             "none": N_("no norm")}
    comps = []
    for arm, name in names.items():
        for metric, what, larger in (("test_acc_precise", N_("test accuracy (PreciseBN)"),
                                      False),
                                     ("test_acc_running", N_("test accuracy (running stats)"),
                                      False),
                                     ("train_loss", N_("final train loss"), False),
                                     ("fluctuation", N_("epoch-to-epoch std of test accuracy"),
                                      True)):
            comps.append(Comparison(arm, "bn", name, N_("full BN"), metric, what,
                                    _est(summary, arm, metric), _est(summary, "bn", metric),
                                    4 if metric == "fluctuation" else 3, larger))
    return Reading("lite", tuple(comps), at_chance=at_chance(summary, "test_acc_precise"))


def placement(summary) -> Reading:
    """BN after the activation against BN before it (d2l's placement), with sigmoid and with
    ReLU, on test accuracy (PreciseBN and running statistics)."""
    comps = []
    for act in ("sigmoid", "relu"):
        for metric, what in (("test_acc_precise", N_("test accuracy (PreciseBN)")),
                             ("test_acc_running", N_("test accuracy (running stats)"))):
            comps.append(compare(summary, f"after_{act}", f"before_{act}", metric, what,
                                 Phrase(N_("BN after the {act}"), act=act),
                                 Phrase(N_("BN before the {act}"), act=act)))
    return Reading("placement", tuple(comps), at_chance=at_chance(summary, "test_acc_precise"))
