"""The readings of the book chapter's questions (d2l's BN section): the ablation, the
presets, fluctuating test accuracy, gamma and beta, the cancelled bias, BN on several devices,
the learning rate, batch size (norms, SGD, batch size 1), and one run's status line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from bnviz.i18n import N_, _
from bnviz.metrics import CHANCE
from bnviz.readings.core import Comparison, Reading, _est, compare, at_chance
from bnviz.stats import Phrase, fluctuation as _fluctuation, sentences, spaced


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
