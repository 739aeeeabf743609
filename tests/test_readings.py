"""The readings (bnviz/readings/) on small synthetic tables whose answer is known: separated
one way, the other way, not separated, too few seeds; a missing arm raises."""
import math

import pandas as pd
import pytest

from bnviz import readings
from bnviz.library.catalog import QUESTION
from bnviz.metrics import grid_metrics
from bnviz.runs.results import UnknownArm, summarize

HIGH = [0.90, 0.91, 0.89, 0.90, 0.91]
LOW = [0.80, 0.81, 0.79, 0.80, 0.81]
WIDE = [0.70, 0.95, 0.80, 0.90, 0.85]  # overlaps both


def table(arms: dict[str, dict[str, list[float]]], extra: dict[str, dict] | None = None,
          status: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """A runs table: one row per (arm, seed), every grid metric (NaN unless given)."""
    rows = []
    for arm, metrics in arms.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            row = {"run": f"label of {arm}", "arm": arm, "seed": seed, "run_id": f"{arm}{seed}",
                   "status": (status or {}).get(arm, ["finished"] * n)[seed],
                   **{m: math.nan for m in grid_metrics()}}
            row.update({m: v[seed] for m, v in metrics.items()})
            row.update((extra or {}).get(arm, {}))
            rows.append(row)
    return pd.DataFrame(rows)


def s(arms, **kw):
    return summarize(table(arms, **kw))


@pytest.mark.parametrize("a, b, verdict", [(HIGH, LOW, "a"), (LOW, HIGH, "b"),
                                           (HIGH, WIDE, "same"), (HIGH[:1], LOW[:1], "too few")])
def test_bias_reading_all_four_ways(a, b, verdict):
    r = readings.bias(s({"bias_on": {"test_acc_precise": a},
                         "bias_off": {"test_acc_precise": b}}))
    c = r.comparison("bias_on", "bias_off")
    assert c.verdict == verdict
    if verdict == "a":
        assert c.text().startswith("with bias has the higher test accuracy (PreciseBN)")
    elif verdict == "b":
        assert c.text().startswith("without has the higher")
    else:
        assert c.text().startswith("No difference")


def test_ablation_compares_every_arm_with_all_four_and_raises_without_it():
    r = readings.ablation(s({"all": {"test_acc_precise": HIGH},
                             "none": {"test_acc_precise": LOW},
                             "without_fc2": {"test_acc_precise": WIDE}}))
    assert [(c.a, c.verdict) for c in r.comparisons] == [("none", "b"), ("without_fc2", "same")]
    with pytest.raises(UnknownArm, match="'all'"):
        readings.ablation(s({"none": {"test_acc_precise": LOW}}))


def test_gamma_reading_on_train_loss_and_accuracy():
    r = readings.gamma(s({"learned": {"train_loss": [0.26] * 5 + [], "test_acc_precise": HIGH},
                          "frozen": {"train_loss": [0.36] * 5, "test_acc_precise": LOW}}))
    assert r.comparison("learned", "frozen", "train_loss").verdict == "b"
    assert r.comparison("learned", "frozen", "test_acc_precise").verdict == "a"


@pytest.mark.parametrize("b2, drop_slices, verdict", [
    (LOW, HIGH, "lost statistics"),  # book BN drops on 2 devices, slices change nothing
    (HIGH, HIGH, "undecided"),  # no drop at all
    (LOW, [0.60, 0.61, 0.59, 0.60, 0.61], "undecided"),  # slices drop more than the book's BN
])
def test_devices_verdict(b2, drop_slices, verdict):
    arms = {"book_1": {"test_acc_running": HIGH, "train_acc": HIGH},
            "book_2": {"test_acc_running": b2, "train_acc": HIGH},
            "bn_8": {"test_acc_running": drop_slices, "train_acc": HIGH},
            "bn_1": {"test_acc_running": HIGH, "train_acc": HIGH}}
    r = readings.devices(s(arms))
    assert r.verdict == verdict
    assert r.comparison("book_2", "book_1", "train_acc").verdict == "same"


def test_lr_limits():
    t = table({"bn@lr1": {"test_acc": HIGH}, "bn@lr10": {"test_acc": LOW},
               "bn@lr30": {"test_acc": [0.5, 0.5, 0.5, 0.5, 0.5]},
               "none@lr1": {"test_acc": [0.1] * 5}},
              extra={"bn@lr1": {"norm": "bn", "lr": 1.0}, "bn@lr10": {"norm": "bn", "lr": 10.0},
                     "bn@lr30": {"norm": "bn", "lr": 30.0},
                     "none@lr1": {"norm": "none", "lr": 1.0}},
              status={"bn@lr30": ["finished"] + ["diverged"] * 4})
    bn, none = readings.lr(summarize(t)).facts["limits"]
    assert (bn.norm, bn.largest_trained, bn.first_failed) == ("bn", 10.0, 30.0)
    assert (none.largest_trained, none.first_failed) == (None, None)
    assert "**10**" in readings.lr_text(bn) and "from lr 30" in readings.lr_text(bn)


def test_norm_batch_ends_and_references_and_chance():
    r = readings.norm_batch(s({"bn@m4": {"test_acc_precise": HIGH},
                               "bn@m256": {"test_acc_precise": LOW},
                               "group@ref": {"test_acc_precise": [0.1, 0.11, 0.12, 0.1, 0.1]},
                               "layer@ref": {"test_acc_precise": LOW}}))
    assert r.comparison("bn@m4", "bn@m256").verdict == "a"
    assert r.comparison("bn@m256", "group@ref").verdict == "a"
    assert r.comparison("group@ref", "layer@ref").verdict == "b"
    assert r.at_chance == ("group@ref",)


def test_norm_batch_puts_batch_renorm_beside_bn_at_the_smallest_m():
    r = readings.norm_batch(s({"bn@m2": {"test_acc_precise": LOW},
                               "bn@m256": {"test_acc_precise": HIGH},
                               "renorm@m2": {"test_acc_precise": HIGH},
                               "renorm@m256": {"test_acc_precise": WIDE}}))
    fix = r.comparison("renorm@m2", "bn@m2")
    assert fix.verdict == "a" and "Batch Renorm at m = 2" in fix.text()
    assert r.comparison("renorm@m2", "renorm@m256").verdict == "same"
    assert r.comparison("bn@m2", "bn@m256").verdict == "b"


def test_fluctuation_and_batch1_compare_two_metrics_of_one_arm():
    r = readings.fluctuation(s({"three_ways": {
        "fluct_running": [0.05, 0.06, 0.04, 0.05, 0.05], "fluct_precise": [0.01] * 5,
        "fluct_batch": [0.04, 0.07, 0.03, 0.06, 0.05], "test_acc_precise": HIGH,
        "test_acc_running": WIDE}}))
    swing_precise, swing_batch, final = r.comparisons
    assert swing_precise.verdict == "b" and "has the larger epoch-to-epoch std" in \
        swing_precise.text()
    assert swing_batch.verdict == "same" and final.verdict == "same"
    one = readings.batch1(s({"conv_only_batch1": {"test_acc_running": LOW,
                                                  "final_acc_batch": HIGH}}))
    assert one.verdict == "mismatch" and one.facts["gain"] == pytest.approx(0.1)


def test_presets_reading_states_the_spread():
    r = readings.presets(s({"d2l-lenet-bn": {"test_acc_precise": HIGH, "train_acc": HIGH,
                                             "test_acc_running": WIDE},
                            "d2l-lenet": {"test_acc_precise": LOW}}))
    assert r.comparisons[0].verdict == "a" and r.verdict == "running swings"
    assert r.facts["running_vs_train"] > 2


def test_every_question_has_a_reading_and_its_arms_exist():
    from bnviz.experiments import with_seeds
    for q in QUESTION.values():
        assert q.read is not None, q.key
        points = q.make(q.base())
        assert len({p.arm for p in points}) == len(points) and all(p.arm for p in points), q.key
        with_seeds(points, 2)  # arms survive seeding
    with pytest.raises(KeyError, match="no arm 'nope'"):
        QUESTION["ablation"].arm("nope")
