"""The ICS page (pages/ics.py), its frames (bnviz/dashboard/ics_charts.py) and its reading
(bnviz.readings.ics), against numbers computed here."""
import math
import statistics
from types import SimpleNamespace

import pandas as pd
import pytest

from bnviz import ics, readings
from bnviz.dashboard import ics_charts
from bnviz.experiments import GRIDS, ics_grid
from bnviz.config import Config
from bnviz.library.catalog import QUESTION
from tests.apptest import T975, open_page


def test_page_renders_explains_and_offers_the_grid():
    at = open_page("ics", {"dataset": "subset", "train_size": "256", "epochs": "1"})
    assert not at.exception, at.exception
    assert at.title[0].value == "Internal covariate shift, measured"
    text = "\n".join(m.value for m in at.markdown)
    assert "Santurkar" in text and "cos(G, G′)" in text and "Noisy BN" in text
    assert "What LeNet cannot show" in text
    assert "▶ Run the experiment" in [b.label for b in at.button]
    assert {"Noise mean", "Noise std"} <= {n.label for n in at.number_input} or any(
        "noise" in n.label.lower() for n in at.number_input)


def test_the_grid_and_the_question():
    points = ics_grid(Config())
    assert [p.arm for p in points] == ["bn", "noisy_bn", "none"]
    assert [p.config.norm for p in points] == ["bn", "noisy_bn", "none"]
    assert all(p.config.ics_probe for p in points)
    assert GRIDS["ics"] is ics_grid
    q = QUESTION["ics"]
    assert q.page == "ics" and q.settings["epochs"] <= 3 and q.seeds == 5
    assert [p.arm for p in q.points()][::5] == ["bn", "noisy_bn", "none"]


def view(seed, evals):
    return SimpleNamespace(config=SimpleNamespace(seed=seed), evals=evals)


def test_curves_are_the_mean_and_t_interval_over_seeds():
    a = view(0, [{"epoch": 0.5, "test_acc": 0.6, "metrics": {"ics_cos_fc1": 0.9}},
                 {"epoch": 1.0, "test_acc": 0.7, "metrics": {"ics_cos_fc1": 0.8}}])
    b = view(1, [{"epoch": 0.5, "test_acc": 0.62, "metrics": {"ics_cos_fc1": 0.7}},
                 {"epoch": 1.0, "test_acc": 0.74, "metrics": {"ics_cos_fc1": math.nan}}])
    c = ics_charts.curves({"BN": [a, b]}, "ics_cos_fc1")
    first = c.iloc[0]
    half = T975[0] * statistics.stdev([0.9, 0.7]) / 2 ** 0.5
    assert first.epoch == 0.5 and first["mean"] == pytest.approx(0.8)
    assert first.hi - first["mean"] == pytest.approx(half) and first.n == 2
    assert c.iloc[1]["mean"] == 0.8 and c.iloc[1].n == 1  # the NaN left out
    acc = ics_charts.curves({"BN": [a, b]}, "test_acc")
    assert list(acc["mean"]) == pytest.approx([0.61, 0.72])


def test_input_percentiles_and_the_distribution_figure():
    m = {ics.input_metric("fc1", p): v for p, v in zip(ics.PERCENTILES, (0.1, 0.3, 0.5, 0.7,
                                                                         0.9))}
    v = view(0, [{"epoch": 1.0, "metrics": m}, {"epoch": 2.0, "metrics": {}}])
    f = ics_charts.input_percentiles(v, "fc1")
    assert list(f.columns) == ["epoch", *ics.PERCENTILES] and len(f) == 1
    assert f.iloc[0].tolist() == [1.0, 0.1, 0.3, 0.5, 0.7, 0.9]
    fig = ics_charts.distribution_figure({"BN": f, "no BN": f.iloc[0:0]}, "t")
    medians = [t for t in fig.data if t.name == "median"]
    assert len(medians) == 1 and list(medians[0].y) == [0.5]


def summary(rows):
    """A grid summary as bnviz.runs.results.summarize writes it: arm, run, n, m, m_ci."""
    out = []
    for arm, n, vals in rows:
        r = {"arm": arm, "run": readings.ICS_NAMES[arm], "n": n}
        for k, (mean, half) in vals.items():
            r[k], r[f"{k}_ci"] = mean, half
        out.append(r)
    return pd.DataFrame(out)


def test_reading_follows_the_intervals():
    s = summary([("bn", 5, {"ics_cos": (0.95, 0.01), "ics_l2": (0.02, 0.005),
                            "test_acc_precise": (0.85, 0.01), "input_shift": (0.01, 0.002)}),
                 ("noisy_bn", 5, {"ics_cos": (0.9, 0.02), "ics_l2": (0.03, 0.01),
                                  "test_acc_precise": (0.845, 0.01),
                                  "input_shift": (0.08, 0.01)}),
                 ("none", 5, {"ics_cos": (0.99, 0.005), "ics_l2": (0.01, 0.005),
                              "test_acc_precise": (0.80, 0.02), "input_shift": (0.02, 0.01)})])
    r = readings.ics(s)
    assert r.facts == {"ics": "not reduced", "noisy_acc": "same", "noisy_shift": "more", "n": 5}
    text = readings.ics_text(r)
    assert "n = 5 paired seeds" in text and "does not reduce" in text
    assert "lower with BN" in text and "no difference in test accuracy (PreciseBN)" in text
    assert "move far more than BN's" in text
    # BN's cos higher, intervals apart: "reduced"; noisy BN worse, apart: "bn"
    s.loc[s.arm == "bn", "ics_cos"] = 1.2
    s.loc[s.arm == "noisy_bn", "test_acc_precise"] = 0.7
    r = readings.ics(s)
    assert r.facts["ics"] == "reduced" and r.facts["noisy_acc"] == "bn"
    assert "LeNet differs" in readings.ics_text(r)
    # no activation statistics: said so, no claim
    s["input_shift"] = math.nan
    assert readings.ics(s).facts["noisy_shift"] == "not measured"
    # one seed: no claim at all
    s["n"] = 1
    assert readings.ics(s).facts["ics"] == "too few"
    assert "Not enough finished runs" in readings.ics_text(readings.ics(s))


def test_a_tiny_grid_run_from_the_page_draws_its_answer():
    from tests.apptest import button, wait_until_idle
    params = {"dataset": "subset", "train_size": "256", "batch_size": "64", "epochs": "1",
              "eval_every": "2", "seeds": "2"}
    at = open_page("ics", params)
    assert not at.exception, at.exception
    button(at, "▶ Run the experiment").click().run()
    wait_until_idle(6, 300)
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "n = 2 paired seeds" in text
    assert len(at.get("plotly_chart")) >= 4  # cos, ‖G − G′‖, the distributions, accuracy
