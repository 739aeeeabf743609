import argparse
import csv
import io
import json
import math
import os
import subprocess
import sys

import pytest

from bnviz.cli import ProgressBar, add_knob_flags
from bnviz.events import RunStarted, Step
from bnviz.runs.store import RunStore
from tests.conftest import ROOT


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bnviz", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
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


@pytest.mark.slow
def test_bad_flags_are_refused_with_messages():
    r = run_cli("train", "--batch-size", "0", "--lr", "abc")
    assert r.returncode == 2
    assert "batch_size must be between 1 and 4096, got 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_presets_listed():
    r = run_cli("presets")
    assert r.returncode == 0 and "d2l-lenet-bn-scratch" in r.stdout


@pytest.mark.slow
def test_inside_prints_shapes_and_counts():
    r = run_cli("inside", "--dataset", "subset", "--batch-size", "4", "--channels", "2")
    assert r.returncode == 0, r.stderr
    assert "conv1: input (4, 6, 24, 24), mean/var over axes (0, 2, 3) (2,304 values" in r.stdout
    assert "fc1: input (4, 120), mean/var over axes (0,) (4 values per mean)" in r.stdout
    r = run_cli("inside", "--dataset", "subset", "--no-norm-fc1", "--sites", "fc1")
    assert r.returncode == 2 and "no norm layer at fc1" in r.stderr


# -- the progress bar, fed synthetic events on a fake clock ---------------------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Stream(io.StringIO):
    def isatty(self):
        return False  # one line per report, at most every 5 s of the clock


def started(total_steps, epochs=1):
    return RunStarted(config={"epochs": epochs}, data_source="subset", data="the subset",
                      device="cpu", n_params=1, n_train=1, n_test=1,
                      steps_per_epoch=total_steps // epochs, total_steps=total_steps)


def test_progress_eta_comes_from_the_steps_timed_after_the_warm_up():
    clock, out = FakeClock(), Stream()
    bar = ProgressBar(stream=out, clock=clock)
    clock.now = 100.0  # loading the data and building the model took 100 s
    bar(started(total_steps=1000, epochs=2))
    clock.now = 130.0  # the first step pays for warm-up: 30 s
    bar(Step(iteration=1, epoch=0.001, loss=2.3, acc=0.1))
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("ETA     —")  # nothing timed yet: no guess
    for i in range(2, 1001):  # then 0.1 s a step
        clock.now = 130.0 + 0.1 * (i - 1)
        bar(Step(iteration=i, epoch=i / 500, loss=1.0, acc=0.5))
    lines = out.getvalue().splitlines()[1:]
    etas = [line.rsplit("ETA", 1)[1].strip() for line in lines]
    assert etas[0] == "—" and len(etas) > 10
    # every estimate after the warm-up is the true remaining time (0.1 s a step), not the
    # ~30x too long one that counting the warm-up (and the data loading) gave
    for line, eta in zip(lines[1:], etas[1:]):
        done = int(line.split("%")[0].rsplit("]", 1)[1]) / 100 * 1000
        assert abs(float(eta.rstrip("s")) - (1000 - done) * 0.1) <= 1.0, line
    assert etas[-1] == "0s" and lines[-1].startswith("epoch 2/2 [" + "#" * 28 + "] 100%")


def test_progress_shows_a_dash_until_a_step_after_the_warm_up_is_timed():
    clock, out = FakeClock(), Stream()
    bar = ProgressBar(stream=out, clock=clock)
    bar(started(total_steps=5))
    for i in range(1, 6):  # every step of a 5-step run is a warm-up step
        clock.now += 60.0
        bar(Step(iteration=i, epoch=i / 5, loss=1.0, acc=0.5))
    lines = out.getvalue().splitlines()[1:]
    assert len(lines) == 5 and all(line.endswith("ETA     —") for line in lines)
    assert math.isnan(bar.eta(5, clock.now))
    bar(started(total_steps=20))  # a second run starts its own warm-up
    assert bar.mark is None and math.isnan(bar.eta(6, clock.now))


def test_integer_ranges_in_help_are_whole_numbers():
    p = argparse.ArgumentParser()
    add_knob_flags(p)
    h = " ".join(p.format_help().split())  # unwrapped
    assert "[0..2147483647]" in h and "[1..200]" in h  # --seed, --epochs
    assert "e+" not in h and "2.14748" not in h
    assert "[0.0001..100]" in h  # floats keep the short form (--lr)
