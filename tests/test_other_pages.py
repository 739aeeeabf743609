"""Compare and ablation pages, and the landing page, through AppTest."""
import time

import pytest

from bnviz.dashboard import ui
from bnviz.config import make_config
from bnviz.experiments import ablation_grid, with_seeds
from tests.apptest import button, open_page, seed_intervals


def finished_runs(n, tiny):
    mgr = ui.manager()
    ids = [mgr.submit(make_config(**tiny, seed=100 + i, eval_every=4), session=f"cmp{i}")
           for i in range(n)]
    t0 = time.time()
    while any(mgr.get(i).active for i in ids) and time.time() - t0 < 60:
        time.sleep(0.05)
    return ids


def test_landing_page_explains_each_page():
    at = open_page("pages/home.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Live lab" in text and "Compare runs" in text and "Which BN layers" in text


def test_compare_overlays_runs_from_a_link(tiny):
    ids = finished_runs(2, tiny)
    at = open_page("pages/compare.py", {"runs": ",".join(ids) + ",nothex,"})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.multiselect[0].value == ids
    table = at.dataframe[0].value
    assert list(table["run_id"]) == ids and "seed" in table.columns
    assert len(at.get("plotly_chart")) == 5


def test_compare_with_unknown_run_warns(tiny):
    at = open_page("pages/compare.py", {"runs": "0123456789ab"})
    assert not at.exception
    assert any("0123456789ab" in w.value for w in at.warning)


@pytest.mark.slow
def test_ablation_page_runs_the_grid_over_seeds_and_shows_intervals(tiny):
    params = {"dataset": "subset", "train_size": "256", "batch_size": "128", "epochs": "1",
              "seed": "42", "seeds": "2"}
    at = open_page("pages/ablation.py", params)
    assert not at.exception
    assert next(n for n in at.number_input if n.label == "Seeds per configuration").value == 2
    button(at, "▶ Run the grid").click().run()
    base = make_config(**{k: v for k, v in params.items() if k != "seeds"})
    points = with_seeds(ablation_grid(base), 2)
    assert len(points) == 20 and {p.config.seed for p in points} == {42, 43}
    mgr = ui.manager()
    t0 = time.time()
    while time.time() - t0 < 180:
        views = [mgr.find(p.config) for p in points]
        if all(v is not None and not v.active for v in views):
            break
        time.sleep(0.1)
    at.run()
    assert not at.exception
    summary = at.dataframe[0].value  # one row per configuration: mean ± CI, n
    assert len(summary) == 10 and set(summary["n"]) == {"2/2"}
    assert all("±" in c for c in summary["test acc (PreciseBN)"])
    runs = at.dataframe[1].value  # every run, seed as a column
    assert len(runs) == 20 and set(runs["status"]) == {"finished"}
    assert sorted(set(runs["seed"])) == [42, 43]
    # each arm's verdict against all four BN layers is the one its runs imply, recomputed here
    # from the runs' own summaries: a difference only where the 95% intervals separate
    est = seed_intervals(points, "test_acc_precise")
    ref = est.pop("all four BN layers")
    said = {line.split("**")[1]: line for m in at.markdown for line in m.value.splitlines()
            if line.startswith("- **")}
    assert set(said) == set(est) and len(est) == 9
    for label, e in est.items():
        line = said[label]
        assert f"{e.text()}" in line and f"{ref.text()}" in line, line
        if e.apart(ref):
            hi = label if e.mean > ref.mean else "all four BN layers"
            assert line.startswith(f"- **{label}**: {hi} has the higher test accuracy "
                                   "(PreciseBN)"), line
        else:
            assert "No difference in test accuracy (PreciseBN) detectable with 2 seeds" in line, \
                line
    # the same link in a new session shows the stored results without training
    again = open_page("pages/ablation.py", params)
    assert set(again.dataframe[1].value["status"]) == {"finished"}


def test_back_on_a_page_its_controls_are_as_this_session_left_them_not_the_last_pages():
    """The knobs' widget keys are shared by every page: Ablation → Fine-tuning → Ablation used
    to reopen Ablation with Fine-tuning's settings (2 epochs, its fine-tuning knobs), so the
    address bar carried them and the stored answer was gone. Each page now gets back its own
    controls, a change made on it included."""
    from bnviz.config import KNOBS
    from bnviz.dashboard.ui import page_base, wkey

    def controls(at):
        return {k.name: at.session_state[wkey(k.name)] for k in KNOBS
                if wkey(k.name) in at.session_state}

    at = open_page("ablation")
    assert not at.exception and not at.query_params  # the page's defaults: an empty query
    assert controls(at) == {k: v for k, v in page_base("ablation").to_dict().items()
                            if k in controls(at)}
    next(s for s in at.number_input if s.label == "Seed").set_value(7).run()
    left = controls(at)
    assert left["seed"] == 7 and at.query_params.get("seed") == "7"
    at.query_params.clear()  # as a browser does on a page change (AppTest keeps them)
    at.switch_page("pages/finetune.py").run()
    assert not at.exception
    ft = page_base("finetune")
    assert controls(at)["epochs"] == ft.epochs != left["epochs"]  # the pages differ here
    assert controls(at)["seed"] == 0  # Ablation's change stays on Ablation
    at.query_params.clear()
    at.switch_page("pages/ablation.py").run()
    assert not at.exception
    assert controls(at) == left  # Ablation as it was left: seed 7, none of Fine-tuning's
    assert dict(at.query_params) == {"seed": "7"}
    at.query_params.clear()  # as a browser does on a page change (AppTest keeps them)
    at.switch_page("pages/finetune.py").run()
    assert controls(at)["epochs"] == ft.epochs and not at.query_params
