"""Confidence intervals over seeds, and the sentences allowed from them."""
import math
import random
import statistics

import pytest

from bnviz.stats import Estimate, compare_text, mean_ci, separated, t975


@pytest.mark.parametrize("df,expected", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262),
                                         (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980),
                                         (10**6, 1.960)])
def test_t_quantiles_match_published_tables(df, expected):
    assert t975(df) == pytest.approx(expected, abs=1.5e-3)


def test_mean_ci_is_the_student_t_interval():
    xs = [0.84, 0.88, 0.86, 0.71, 0.85]
    e = mean_ci(xs)
    sd = statistics.stdev(xs)
    assert e.n == 5 and e.mean == pytest.approx(statistics.mean(xs))
    assert e.half == pytest.approx(2.7764 * sd / math.sqrt(5), rel=1e-4)
    assert mean_ci([0.5, float("nan"), 0.7]).n == 2  # unfinished/NaN values are left out
    one = mean_ci([0.9])
    assert one.n == 1 and math.isnan(one.half) and "no interval" in one.text()


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(0)
    hits = 0
    for _ in range(4000):
        e = mean_ci([rng.gauss(0.8, 0.03) for _ in range(3)])
        hits += e.lo <= 0.8 <= e.hi
    assert 0.93 < hits / 4000 < 0.97


def test_a_difference_is_claimed_only_when_the_intervals_separate():
    a, b = Estimate(0.85, 0.01, 5), Estimate(0.80, 0.01, 5)
    assert separated(a, b) and "do not overlap" in compare_text("A", a, "B", b)
    c = Estimate(0.83, 0.03, 3)
    assert not separated(a, c)
    said = compare_text("A", a, "C", c)
    assert said.startswith("No difference in test accuracy detectable with 3 seeds")
    assert not separated(Estimate(0.9, math.nan, 1), Estimate(0.1, math.nan, 1))


@pytest.mark.slow  # trains three runs
def test_compare_curves_band_is_the_95_percent_interval_over_seeds(tiny):
    from bnviz.config import make_config
    from bnviz.dashboard.compare import curves
    from bnviz.runs.record import RunRecord
    from bnviz.trainer import train
    views = []
    for seed in (0, 1, 2):
        rec = RunRecord(f"r{seed}", make_config(**tiny, seed=seed))
        train(rec.config, [rec])
        views.append(rec.view())
    c = curves(views, "test_acc", aggregate=True)
    accs = [v.evals[-1]["test_acc"] for v in views]
    last = c.iloc[-1]
    e = mean_ci(accs)
    assert last["n"] == 3 and last["mean"] == pytest.approx(e.mean)
    assert last["hi"] - last["mean"] == pytest.approx(4.3027 * statistics.stdev(accs) / 3 ** 0.5)
    gap = curves(views, "gap", aggregate=True).iloc[-1]
    assert gap["mean"] == pytest.approx(statistics.mean(
        v.evals[-1]["train_acc"] - v.evals[-1]["test_acc"] for v in views))
