"""The readings of "Why does BN help?": the loss landscape and internal covariate shift
(Santurkar et al. 2018), scale invariance and weight decay (van Laarhoven 2017; Li & Arora
2019), and training only gamma and beta (Frankle et al. 2021).
"""
from __future__ import annotations

import math

from bnviz.i18n import N_, _
from bnviz.readings.core import Comparison, Reading, compare, at_chance, _than
from bnviz.stats import Phrase, listing, say, sentences


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
