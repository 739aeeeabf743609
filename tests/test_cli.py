import csv
import json
import os
import subprocess
import sys

from bnviz.runs.store import RunStore
from tests.conftest import ROOT


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bnviz", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_train_writes_config_metrics_and_summary(tmp_path):
    r = run_cli("train", "--preset", "d2l-lenet-bn", "--dataset", "subset", "--train-size",
                "300", "--epochs", "1", "--batch-size", "50", "--eval-every", "3",
                "--no-norm-fc2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "subset" in r.stderr and r.stdout.startswith("finished:")
    run_id = r.stderr.split("stored as run ")[1].split()[0]
    stored = RunStore(os.environ["BNVIZ_DB"]).load(run_id)
    assert stored.status == "finished" and stored.config.batch_size == 50
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["norm_fc2"] is False and cfg["batch_size"] == 50 and "config_id" in cfg
    s = json.loads((tmp_path / "summary.json").read_text())
    for key in ("status", "train_loss", "train_acc", "test_acc", "examples_per_sec",
                "data_source"):
        assert key in s
    assert s["data_source"] == "subset"
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert sum(r["kind"] == "step" for r in rows) == 6
    assert sum(r["kind"] == "eval" for r in rows) == 2


def test_bad_flags_are_refused_with_messages():
    r = run_cli("train", "--batch-size", "0", "--lr", "abc")
    assert r.returncode == 2
    assert "batch_size must be between 1 and 4096, got 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_presets_listed():
    r = run_cli("presets")
    assert r.returncode == 0 and "d2l-lenet-bn-scratch" in r.stdout


def test_inside_prints_shapes_and_counts():
    r = run_cli("inside", "--dataset", "subset", "--batch-size", "4", "--channels", "2")
    assert r.returncode == 0, r.stderr
    assert "conv1: input (4, 6, 24, 24), mean/var over axes (0, 2, 3) (2,304 values" in r.stdout
    assert "fc1: input (4, 120), mean/var over axes (0,) (4 values per mean)" in r.stdout
    r = run_cli("inside", "--dataset", "subset", "--no-norm-fc1", "--sites", "fc1")
    assert r.returncode == 2 and "no norm layer at fc1" in r.stderr
