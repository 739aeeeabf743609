from bnviz.config import SITES, make_config
from bnviz.experiments import (GRIDS, ablation_grid, batch_size_grid, bias_grid, devices_grid,
                               lr_grid, result_row)
from bnviz.record import RunRecord
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
    assert sorted({(p.config.bias, p.config.seed) for p in bias_grid(base)}) == sorted(
        {(b, s) for b in (True, False) for s in (0, 1, 2)})
    assert set(GRIDS) == {"ablation", "batch_size", "lr", "devices", "bias"}


def test_result_row_reads_a_real_run(tiny):
    rec = RunRecord("x", make_config(**tiny, eval_every=2))
    train(rec.config, [rec])
    row = result_row("label", rec.view())
    assert row["status"] == "finished" and row["gap"] == row["train_acc"] - row["test_acc"]
    assert row["fluctuation"] >= 0
    assert result_row("later", None)["status"] == "not run"


def test_grid_in_two_processes_trains_every_point(tmp_path, tiny):
    from bnviz.experiments import GridPoint
    from bnviz.grid_runner import run_grid
    from bnviz.store import RunStore
    store = RunStore(tmp_path / "db")
    points = [GridPoint(f"seed {s}", make_config(**tiny, seed=s)) for s in (1, 2)]
    table = run_grid(points, store, jobs=2, out=tmp_path / "out")
    assert list(table.status) == ["finished", "finished"]
    assert (tmp_path / "out" / "results.csv").is_file()
    assert table.test_acc.notna().all() and len(store.list_runs()) == 2
    again = run_grid(points, store, jobs=2)  # now reused from the store: nothing retrained
    assert list(again.run_id) == list(table.run_id)
