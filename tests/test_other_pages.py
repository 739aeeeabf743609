"""Compare and ablation pages, and the landing page, through AppTest."""
import time

from streamlit.testing.v1 import AppTest

from bnviz import ui
from bnviz.config import make_config
from bnviz.experiments import ablation_grid
from tests.conftest import ROOT


def page(path, params=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(path)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


def finished_runs(n, tiny):
    mgr = ui.manager()
    ids = [mgr.submit(make_config(**tiny, seed=100 + i, eval_every=4), session=f"cmp{i}")
           for i in range(n)]
    t0 = time.time()
    while any(mgr.get(i).active for i in ids) and time.time() - t0 < 60:
        time.sleep(0.05)
    return ids


def test_landing_page_explains_each_page():
    at = page("pages/home.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Live lab" in text and "Compare runs" in text and "Which BN layers" in text


def test_compare_overlays_runs_from_a_link(tiny):
    ids = finished_runs(2, tiny)
    at = page("pages/compare.py", {"runs": ",".join(ids) + ",nothex,"})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.multiselect[0].value == ids
    table = at.dataframe[0].value
    assert list(table["run_id"]) == ids and "seed" in table.columns
    assert len(at.get("plotly_chart")) == 5


def test_compare_with_unknown_run_warns(tiny):
    at = page("pages/compare.py", {"runs": "0123456789ab"})
    assert not at.exception
    assert any("0123456789ab" in w.value for w in at.warning)


def test_ablation_page_runs_the_grid_and_shows_the_table(tiny):
    params = {"dataset": "subset", "train_size": "256", "batch_size": "128", "epochs": "1",
              "seed": "42"}
    at = page("pages/ablation.py", params)
    assert not at.exception
    next(b for b in at.button if b.label == "▶ Run the grid").click().run()
    points = ablation_grid(make_config(**{k: v for k, v in params.items()}))
    mgr = ui.manager()
    t0 = time.time()
    while time.time() - t0 < 120:
        views = [mgr.find(p.config) for p in points]
        if all(v is not None and not v.active for v in views):
            break
        time.sleep(0.1)
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 10 and set(table["status"]) == {"finished"}
    assert any("Best test accuracy" in s.value for s in at.success)
    # the same link in a new session shows the stored results without training
    again = page("pages/ablation.py", params)
    assert set(again.dataframe[0].value["status"]) == {"finished"}
