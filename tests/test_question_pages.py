"""Each learner-question page renders, reads its link and starts its experiment."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from bnviz import ui
from tests.conftest import ROOT

PAGES = ["batch_size", "inside_bn", "fluctuation", "devices", "bias", "learning_rate",
         "gamma_beta"]
TINY = {"dataset": "subset", "train_size": "256", "epochs": "1"}


def page(name, params=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(f"pages/{name}.py")
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_with_a_mangled_link(name):
    at = page(name, {**TINY, "batch_size": "-3", "zzz": "1"})
    assert not at.exception, at.exception
    if name != "inside_bn":
        assert any("batch_size" in w.value or "zzz" in w.value for w in at.warning)


def test_inside_page_shows_counts_for_the_chosen_n():
    at = page("inside_bn", {"dataset": "subset"})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["values per mean"] in ("4,608", "8")  # conv1 and fc1 at N=8
    at.select_slider[0].set_value(32).run()
    values = [m.value for m in at.metric if m.label == "values per mean"]
    assert values == ["18,432", "32"]


def test_fluctuation_page_runs_three_eval_modes():
    at = page("fluctuation", {**TINY, "eval_every": "1", "batch_size": "64"})
    next(b for b in at.button if b.label == "▶ Run the experiment").click().run()
    mgr = ui.manager()
    t0 = time.time()
    while time.time() - t0 < 60:
        runs = [mgr.get(r) for r in list(mgr._jobs)]
        if runs and all(not v.active for v in runs):
            break
        time.sleep(0.1)
    at.run()
    assert not at.exception
    assert any("Steadiest" in s.value for s in at.success)
