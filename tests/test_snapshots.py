"""gamma/beta history: every snapshot is a copy taken at its moment, not a view of the live
parameters (a view would make every snapshot show the latest values)."""
import csv
import subprocess
import sys

import numpy as np
import pytest

from bnviz.config import make_config
from bnviz.runs.record import RunRecord
from bnviz.trainer import Trainer
from tests.conftest import ROOT


def test_snapshots_are_history_not_views_of_the_live_parameters(tiny):
    rec = RunRecord("s", make_config(**{**tiny, "epochs": 2}))
    Trainer(rec.config, [rec]).run()
    v = rec.view()
    assert v.status == "finished" and len(v.snapshots) == 3  # before training + 2 epochs
    first, last = v.snapshots[0][2], v.snapshots[-1][2]
    assert v.snapshots[0][0] == 0  # taken before the first step
    for site in ("conv1", "conv2", "fc1", "fc2"):
        np.testing.assert_array_equal(first[site]["gamma"], 1.0)
        np.testing.assert_array_equal(first[site]["beta"], 0.0)
        np.testing.assert_array_equal(first[site]["running_mean"], 0.0)
        np.testing.assert_array_equal(first[site]["running_var"], 1.0)
        assert not np.array_equal(first[site]["gamma"], last[site]["gamma"])
        assert not np.array_equal(v.snapshots[1][2][site]["gamma"], last[site]["gamma"])
    # the fan chart's data moves over training
    g = v.snapshots_frame("gamma").groupby("epoch").value.std()
    assert g.iloc[0] == 0 and g.iloc[-1] > 0


@pytest.mark.slow
def test_cli_writes_the_snapshot_history_as_a_long_csv(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "bnviz", "train", "--dataset", "subset",
                        "--train-size", "128", "--batch-size", "64", "--epochs", "2",
                        "--quiet", "--no-store", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(out / "snapshots.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iteration", "epoch", "layer", "stat", "channel", "value"]
    gamma = {(int(r["iteration"]), r["layer"], int(r["channel"])): float(r["value"])
             for r in rows if r["stat"] == "gamma"}
    its = sorted({k[0] for k in gamma})
    assert its[0] == 0 and len(its) == 3
    assert all(gamma[(0, layer, c)] == 1.0 for (_, layer, c) in gamma)
    assert {k[1] for k in gamma} == {"conv1", "conv2", "fc1", "fc2"}
    assert sum(1 for k in gamma if k[0] == its[-1] and k[1] == "fc1") == 120
    assert any(gamma[(its[-1], "conv1", c)] != 1.0 for c in range(6))
