"""The readings of BN's variants and the exercises: BN when fine-tuning (frozen or
updating), Lite BN (d2l's exercise 4: only the mean, or only the variance) and BN before or
after the activation.
"""
from __future__ import annotations

from bnviz.i18n import N_, _
from bnviz.readings.core import Comparison, Reading, _est, compare, at_chance
from bnviz.stats import Phrase, listing, say, spaced


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
