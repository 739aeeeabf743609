"""The loss-landscape page (pages/landscape.py): it names its paper, runs its grid, and the
numbers it states are the runs' own, recomputed here without bnviz.stats; its question."""
import math
import re
import statistics

import pandas as pd
import pytest

from bnviz import landscape
from bnviz.experiments import landscape_grid, with_seeds
from bnviz.config import make_config
from bnviz.library.catalog import PAGE, QUESTION
from tests.apptest import T975, button, open_page, wait_until_idle

TINY = {"dataset": "subset", "train_size": "64", "batch_size": "32", "epochs": "1",
        "eval_every": "1"}


def test_page_renders_names_its_paper_and_reads_a_mangled_link():
    at = open_page("landscape", {**TINY, "batch_size": "-3", "zzz": "1"})
    assert not at.exception, at.exception
    assert at.title[0].value == "The loss landscape"
    text = "\n".join(m.value for m in at.markdown)
    assert "Santurkar, Tsipras, Ilyas and Madry (2018)" in text and "β-smoothness" in text
    assert "What LeNet on Fashion-MNIST cannot show" in [s.value for s in at.subheader]
    assert any("ignored" in w.value for w in at.warning)
    assert "▶ Run the experiment" in [b.label for b in at.button]


def test_the_question_is_small_and_paired():
    q = QUESTION["landscape"]
    assert q.page == "landscape" and PAGE["landscape"].file == "landscape.py"
    assert q.settings["epochs"] <= 3 and q.settings["eval_every"] == landscape.PROBE_EVERY
    assert q.seeds == 5 and q.read is not None
    assert [p.arm for p in q.make(q.base())] == ["bn_sigmoid", "none_sigmoid", "bn_relu",
                                                 "none_relu"]


def _interval(xs):
    n = len(xs)
    return statistics.fmean(xs), T975[n - 2] * statistics.stdev(xs) / math.sqrt(n), n


@pytest.mark.slow
def test_running_the_grid_states_the_runs_own_numbers():
    at = open_page("landscape", {**TINY, "seeds": "2"})
    button(at, "▶ Run the experiment").click().run()
    # just after the click the runs exist but have probed nothing: the charts wait, no error
    assert not at.exception, at.exception
    wait_until_idle(8, 240)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.markdown)
    assert "What these runs show" in said and "n = 2 paired seeds" in said
    assert len(at.get("plotly_chart")) >= 5  # the grid's bar chart and the four landscapes
    # the BN/sigmoid band width the page quotes is the mean over the two seeds of each run's
    # mean over its probes, recomputed from the runs' own evaluations
    from bnviz.dashboard import ui
    mgr = ui.manager()
    cfg = make_config(**{k: v for k, v in TINY.items()})
    pts = [p for p in with_seeds(landscape_grid(cfg), 2) if p.arm == "bn_sigmoid"]
    per_run = []
    for p in pts:
        v = mgr.find(p.config)
        bands = [e["metrics"]["landscape_band"] for e in v.evals]
        assert len(bands) == 2  # two steps, a probe after each
        per_run.append(sum(bands) / len(bands))
    mean, half, n = _interval(per_run)
    m = re.search(r"sigmoid .*?loss band width [^(]*\(([-\d.e+]+) ± ([-\d.e+]+) with BN", said)
    assert m, said
    assert float(m.group(1)) == pytest.approx(mean, rel=1e-2)
    assert float(m.group(2)) == pytest.approx(half, rel=1e-2, abs=1e-3)


def test_band_chart_of_runs_that_have_measured_nothing_yet_waits():
    from bnviz.dashboard import charts
    fig = charts.band_figure(pd.DataFrame([]), "t", "y", "r")
    assert not fig.data and "waiting" in fig.layout.annotations[0].text
