"""The lite-BN and placement pages (issue 21 items 1 and 2): each runs its grid, reads it in the
core's words, and draws the distribution the activation sees, from the runs' own numbers."""
import pandas as pd
import pytest

from bnviz import activations, readings
from bnviz.dashboard import distributions
from bnviz.dashboard import ui
from bnviz.experiments import lite_grid, placement_grid, result_row, with_seeds
from bnviz.config import make_config
from bnviz.runs.results import summarize
from tests.apptest import button, open_page, wait_until_idle

TINY = {"dataset": "subset", "train_size": "256", "batch_size": "64", "epochs": "1",
        "eval_every": "2", "seeds": "2"}


def shown(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "warning")
                     for e in getattr(at, kind))


@pytest.mark.slow  # 8 tiny runs each
@pytest.mark.parametrize("page, grid, reading", [("lite_bn", lite_grid, readings.lite),
                                                 ("placement", placement_grid,
                                                  readings.placement)])
def test_page_runs_its_grid_and_draws_what_the_activation_sees(page, grid, reading):
    at = open_page(page, TINY)
    assert not at.exception, at.exception
    button(at, "▶ Run the experiment").click().run()
    wait_until_idle(8, 240)
    at.run()
    assert not at.exception, at.exception
    text = shown(at)
    assert "What these runs show" in [s.value for s in at.subheader]
    # the page says what the core's reading of these very runs says
    cfg = make_config(**{k: v for k, v in TINY.items() if k != "seeds"})
    points = with_seeds(grid(cfg), 2)
    mgr = ui.manager()
    rows = []
    for p in points:
        view = mgr.find(p.config)
        assert view is not None and view.status == "finished", p.label
        rows.append(dict(result_row(p.label, view, p.arm), seed=p.config.seed))
    r = reading(summarize(pd.DataFrame(rows)))
    for c in r.comparisons:
        assert c.text() in text
    assert len(at.get("plotly_chart")) >= 4  # grid, accuracy, distributions
    # every run of the grid recorded the activations at each of its evaluations
    view = mgr.find(points[0].config)
    f = distributions.frame(view, "fc1", "act_in")
    assert len(f) == len(view.evals) >= 2 and f.p50.notna().all()


@pytest.mark.slow  # a subprocess that imports torch and trains 4 tiny runs
def test_cli_sweep_writes_the_distributions_and_the_reading(tmp_path):
    import subprocess
    import sys
    from tests.conftest import ROOT
    # 2 steps a run and one evaluation, at the end: the columns and the reading are what is
    # checked here (the page test above checks a distribution at every evaluation)
    r = subprocess.run([sys.executable, "-m", "bnviz", "sweep", "lite", "--dataset", "subset",
                        "--train-size", "128", "--batch-size", "64", "--epochs", "1",
                        "--eval-every", "2", "--seeds", "1", "--no-store", "--out",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "mean-only BN" in r.stdout and "variance-only BN" in r.stdout
    evals = pd.read_csv(tmp_path / "evals.csv")
    assert {"act_conv1_act_in_chvar", "act_fc2_act_out_sat"} <= set(evals.columns)
    results = pd.read_csv(tmp_path / "results.csv")
    assert sorted(results.arm) == ["bn", "bn_mean", "bn_var", "none"]
