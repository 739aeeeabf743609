"""The metric registry (bnviz/metrics.py): a toy metric declared inside this test, in a few
lines and no other file, reaches the trainer's evaluations and summary, the CLI's
metrics.csv and results.csv and the grid table, and measuring it changes no training number."""
import csv
import math

import pytest

from bnviz import metrics
from bnviz.cli import main
from bnviz.config import make_config
from bnviz.runs.record import RunRecord
from bnviz.runs.results import runs_table, summarize
from bnviz.trainer import Trainer

TINY = ["--dataset", "subset", "--train-size", "256", "--batch-size", "64", "--epochs", "1",
        "--no-store"]  # 4 steps; evaluated at the end (iteration 4) unless --eval-every says


@pytest.fixture
def toy():
    """A probe metric whose value can be checked from the CSV itself: the iteration it was
    measured at × 1000 + the size of that step's training batch."""
    m = metrics.register(metrics.Metric(
        "toy_probe", "toy probe", "probe", higher_is_better=None,
        probe=lambda ctx: ctx.iteration * 1000 + len(ctx.batch[1])))
    yield m
    metrics.unregister(m.id)


def test_a_toy_metric_reaches_metrics_csv_results_csv_and_the_grid_table(toy, tmp_path):
    assert main(["train", *TINY, "--eval-every", "2", "--quiet", "--out",
                 str(tmp_path / "one")]) == 0
    rows = [r for r in csv.DictReader(open(tmp_path / "one" / "metrics.csv")) if r["kind"] == "eval"]
    assert "toy_probe" in rows[0] and len(rows) == 2  # iterations 2 and 4 of 4
    assert [float(r["toy_probe"]) for r in rows] == [int(r["iteration"]) * 1000 + 64
                                                     for r in rows]

    assert main(["sweep", "bias", *TINY, "--seeds", "2", "--out", str(tmp_path / "grid")]) == 0
    results = list(csv.DictReader(open(tmp_path / "grid" / "results.csv")))
    assert [float(r["toy_probe"]) for r in results] == [4064.0] * 4  # its last value per run
    summary = next(csv.DictReader(open(tmp_path / "grid" / "summary.csv")))
    assert float(summary["toy_probe"]) == 4064.0 and "toy_probe_ci" in summary

    from bnviz.dashboard.grid import summary_view
    from bnviz.experiments import bias_grid, with_seeds
    cfg = make_config(dataset="subset", train_size=256, batch_size=64, epochs=1)
    points = with_seeds(bias_grid(cfg), 1)
    views = []
    for p in points:
        rec = RunRecord(p.config.config_id(), p.config)
        Trainer(p.config, [rec]).run()
        views.append(rec.view())
    view = summary_view(summarize(runs_table(points, views)))
    assert list(view["toy probe"]) == ["4064.000", "4064.000"]  # one seed: no interval


def test_measuring_a_probe_metric_changes_no_training_number(toy):
    cfg = make_config(dataset="subset", train_size=256, batch_size=64, epochs=1, eval_every=3)
    with_toy = RunRecord("a", cfg)
    Trainer(cfg, [with_toy]).run()
    metrics.unregister(toy.id)
    without = RunRecord("b", cfg)
    Trainer(cfg, [without]).run()
    metrics.register(toy)
    a, b = with_toy.view(), without.view()
    assert (a.steps == b.steps).all()
    assert [e["test_acc"] for e in a.evals] == [e["test_acc"] for e in b.evals]
    assert a.evals[0]["metrics"] == {"toy_probe": 3064.0} and b.evals[0]["metrics"] == {}


def test_registry_rules():
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(metrics.Metric("train_loss", "x", "eval"))
    with pytest.raises(ValueError, match="needs probe="):
        metrics.register(metrics.Metric("p", "p", "probe"))
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        metrics.metric("nope")
    with pytest.raises(ValueError, match="built in"):
        metrics.unregister("gap")
    assert metrics.format_estimate(0.5, math.nan) == "0.500"
    assert metrics.format_estimate(math.nan, 0.1) == "–"
    assert metrics.format_estimate(0.5, 0.01) == "0.500 ± 0.010"
