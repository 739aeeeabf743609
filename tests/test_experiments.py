import pytest

from bnviz.config import SITES, make_config
from bnviz.experiments import (GRIDS, ablation_grid, batch_size_grid, bias_grid, devices_grid,
                               lr_grid, result_row, with_seeds)
from bnviz.runs.record import RunRecord
from bnviz.trainer import train


def test_ablation_grid_is_d2l_exercise():
    pts = ablation_grid(make_config())
    labels = [p.label for p in pts]
    assert len(pts) == 10 and len({p.config.config_id() for p in pts}) == 10
    sites = {p.label: tuple(s for s in SITES if getattr(p.config, f"norm_{s}")) for p in pts}
    assert sites["all four BN layers"] == SITES
    assert sites["without fc1 BN"] == ("conv1", "conv2", "fc2")
    assert sites["only conv2 + fc2 BN"] == ("conv2", "fc2")
    assert next(p for p in pts if p.label == "no BN").config.norm == "none"
    drop = next(p for p in pts if "dropout" in p.label).config
    assert drop.dropout_fc and drop.dropout_p == 0.5
    assert {p.config.seed for p in pts} == {0} and "all four BN layers" in labels


def test_sweeps_vary_only_what_they_sweep():
    base = make_config(epochs=1)
    bs = batch_size_grid(base, sizes=(4, 256), norms=("bn", "group"))
    assert [(p.config.norm, p.config.batch_size) for p in bs] == [
        ("bn", 4), ("bn", 256), ("group", 4), ("group", 256)]
    assert bs[0].config.lr == base.lr * 4 / 256 and bs[1].config.lr == base.lr
    assert not batch_size_grid(base, sizes=(4,), scale_lr=False)[0].config.lr != base.lr
    assert [p.config.lr for p in lr_grid(base, lrs=(0.1, 1.0), norms=("bn",))] == [0.1, 1.0]
    assert [p.config.devices for p in devices_grid(base.replace(batch_size=8))] == [1, 2, 4, 8]
    seeded = with_seeds(bias_grid(base), 3)
    assert sorted((p.config.bias, p.config.seed) for p in seeded) == sorted(
        (b, s) for b in (True, False) for s in (0, 1, 2))
    assert {p.label for p in seeded} == {"bias on", "bias off"}
    assert set(GRIDS) == {"ablation", "batch_size", "norm_batch", "lr", "devices",
                          "dataparallel", "bias", "fluctuation", "presets", "landscape", "ics",
                          "weight_decay", "train_only", "finetune", "lite", "placement"}
    for name, grid in GRIDS.items():  # every grid the CLI offers names its arms, uniquely
        points = grid(base)
        arms = [p.arm for p in points]
        assert points and all(arms) and len(set(arms)) == len(arms), name


def test_presets_grid_is_the_chapters_three_runs():
    from bnviz.config import PRESETS
    from bnviz.experiments import presets_grid
    base = make_config(epochs=3, dataset="subset", seed=4)
    pts = presets_grid(base)
    assert [p.label for p in pts] == list(PRESETS)
    for p in pts:
        assert p.config == make_config(p.label, epochs=3, dataset="subset", seed=4)
    # a base that is itself a preset does not leak into the others
    other = presets_grid(make_config("d2l-lenet"))
    assert other[0].config.norm == "bn" and other[0].config.lr == 1.0


def test_result_row_reads_a_real_run(tiny):
    rec = RunRecord("x", make_config(**tiny, eval_every=2))
    train(rec.config, [rec])
    row = result_row("label", rec.view())
    assert row["status"] == "finished" and row["gap"] == row["train_acc"] - row["test_acc"]
    assert row["fluctuation"] >= 0
    assert result_row("later", None)["status"] == "not run"


@pytest.mark.slow
def test_grid_in_two_processes_trains_every_point(tmp_path, tiny):
    from bnviz.experiments import GridPoint
    from bnviz.runs.grid_runner import run_grid
    from bnviz.runs.store import RunStore
    store = RunStore(tmp_path / "db")
    points = [GridPoint(f"seed {s}", make_config(**tiny, seed=s)) for s in (1, 2)]
    table = run_grid(points, store, jobs=2, out=tmp_path / "out")
    assert list(table.status) == ["finished", "finished"]
    assert (tmp_path / "out" / "results.csv").is_file()
    assert table.test_acc.notna().all() and len(store.list_runs()) == 2
    again = run_grid(points, store, jobs=2)  # now reused from the store: nothing retrained
    assert list(again.run_id) == list(table.run_id)


@pytest.mark.slow
def test_results_and_summary_csv_have_seeds_and_intervals(tmp_path):
    """`ablation --seeds 2 --out DIR` on a sliver of data: results.csv has one row per run
    with every varied setting (seed included); summary.csv's CI is the Student-t interval of
    those rows, recomputed here independently."""
    import math
    import statistics
    import subprocess
    import sys

    import pandas as pd

    from tests.conftest import ROOT
    out = tmp_path / "abl"
    r = subprocess.run([sys.executable, "-m", "bnviz", "ablation", "--dataset", "subset",
                        "--train-size", "256", "--batch-size", "128", "--epochs", "1",
                        "--seeds", "2", "--no-store", "--jobs", "2", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = pd.read_csv(out / "results.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert len(runs) == 20 and sorted(set(runs.seed)) == [0, 1]
    for col in ("norm", "norm_conv1", "norm_fc2", "dropout_fc", "seed"):
        assert col in runs.columns
    assert len(summary) == 10 and set(summary.n) == {2}
    for m in ("train_loss", "train_acc", "test_acc_running", "test_acc_precise"):
        assert f"{m}_ci" in summary.columns
    row = summary[summary.run == "without conv2 BN"].iloc[0]
    xs = list(runs[runs.run == "without conv2 BN"].test_acc_precise)
    assert row.test_acc_precise == pytest.approx(statistics.mean(xs))
    assert row.test_acc_precise_ci == pytest.approx(
        12.7062 * statistics.stdev(xs) / math.sqrt(2), rel=1e-4, abs=1e-12)
    assert "95% CI" in r.stdout and "test acc (PreciseBN)" in r.stdout
