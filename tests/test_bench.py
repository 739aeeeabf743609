"""benchmarks/bench.py end to end in tiny mode. Timings on a shared CI machine are noise, so
only the shape and sanity of the report are checked, never how fast anything was."""
import json
import subprocess
import sys

import pytest

from tests.conftest import RAY_PYTHON, ROOT

pytestmark = pytest.mark.slow  # benchmarks end to end


def test_bench_tiny_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "benchmarks/bench.py", "--tiny", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "bnviz/d2l" in r.stdout and "bnviz/plain" in r.stdout and "app: import" in r.stdout
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny" and res["data_source"] == "subset" and res["n_train"] == 1024
    assert set(res["loops"]) == {"bnviz", "bnviz_unfused", "d2l", "d2l_book", "plain",
                                 "plain_tuned"}
    for loop, s in res["loops"].items():
        assert s["examples_per_sec"] > 0 and s["train_examples_per_sec"] > 0
        assert s["n_train"] == 1024 and 0 <= s["test_acc"] <= 1
        # every loop ran in its own process, with its own allocator setting
        tuned = loop in ("bnviz", "bnviz_unfused", "plain_tuned")
        assert (s["allocator"] == "glibc malloc, buffers kept in the heap") == tuned, loop
        # only the bnviz loop may use the fused kernels; it says whether it did, and why not
        assert s["fused"].startswith("off") or loop == "bnviz", (loop, s["fused"])
    assert res["loops"]["bnviz_unfused"]["fused"] == "off (BNVIZ_FUSED=0)"
    assert res["loops"]["bnviz"]["reported_examples_per_sec"] > 0
    for ref in ("bnviz_unfused", "d2l", "d2l_book", "plain", "plain_tuned"):
        for pre in ("", "train_", "best_"):
            assert res["ratios"][f"{pre}bnviz_over_{ref}"] > 0
    assert all(res["first_step"][k] > 0 for k in ("cold_s", "npy_cache_s", "warm_s",
                                                   "fused_build_s"))
    assert res["first_step"]["fused"].startswith(("on", "off ("))
    assert not res["app"]["errors"]
    assert all(res["app"][k] > 0 for k in ("import_streamlit_s", "first_render_s",
                                           "lab_render_s"))
    assert res["peak_rss_mib"] > 0 and res["ten_epochs_estimate_s"] > 0


def test_grid_benchmark_runs_every_way(tmp_path):
    """benchmarks/grid.py, cut down to two configs of one epoch on 512 images of the bundled
    subset."""
    out = tmp_path / "grid.json"
    r = subprocess.run([sys.executable, "benchmarks/grid.py", "--dataset", "subset", "--epochs",
                        "1", "--configs", "2", "--train-size", "512", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "speed-up over one run after another" in r.stdout
    res = json.loads(out.read_text())
    assert set(res["ways"]) == {"cli_seq", "cli_jobs2", "dash_1", "dash_2"}
    for way in res["ways"].values():
        assert way["runs"] == 2 and way["failed"] == [] and way["wall_s"] > 0
    assert res["speedup_over_cli_seq"]["cli_seq"] == 1.0 and res["train_size"] == 512


def test_ray_overhead_benchmark_runs(tmp_path):
    if not RAY_PYTHON:
        pytest.skip("Ray ships no wheels for this Python; the ray extra leaves it out")
    out = tmp_path / "ray.json"
    r = subprocess.run([sys.executable, "benchmarks/ray_overhead.py", "--rounds", "1",
                        "--epochs", "1", "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert len(res["ray_s"]) == len(res["jobmanager_s"]) == 1 and res["ratio"] > 0


def test_lab_latency_tiny_times_train_to_the_first_point_of_a_trained_run(tmp_path):
    """benchmarks/lab_latency.py --tiny: one run in Chromium, timed from ▶ Train to the
    first point of the run it trains (it exits non-zero when no point came)."""
    out = tmp_path / "lab.json"
    r = subprocess.run([sys.executable, "benchmarks/lab_latency.py", "--tiny", "--out",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert len(res["first_point_s"]) == 1 and 0 < res["first_point_s"][0] < 60
    assert res["page_examples_per_sec"][0] > 0 and res["cli_examples_per_sec"] > 0
    assert res["rss_after_runs_mb"] > 0


def test_folding_benchmark_tiny_times_both_models(tmp_path):
    """benchmarks/folding.py --tiny: folded and unfolded LeNet-BN timed in one process; the
    folded one has the four BNs fewer and the same outputs."""
    out = tmp_path / "folding.json"
    r = subprocess.run([sys.executable, "benchmarks/folding.py", "--tiny", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny" and res["layers"] == {"unfolded": 16, "folded": 12}
    assert all(res["median_ms"][k] > 0 for k in ("unfolded", "folded"))
    assert res["unfolded_over_folded"] > 0 and res["max_abs_diff"] < 1e-5
    assert "folded" in r.stdout


def test_batched_benchmark_tiny_trains_each_way(tmp_path):
    """benchmarks/batched.py --tiny: the batch-4 arm of two seeds trained apart, batched and
    forced into a batch (in one process, on 64 images); every run finishes."""
    out = tmp_path / "batched.json"
    r = subprocess.run([sys.executable, "benchmarks/batched.py", "--tiny", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny" and set(res["summary"]["sgd4"]) == {"apart", "batched",
                                                                     "forced"}
    for way in res["results"]["sgd4"].values():
        assert way[0]["runs"] == way[0]["finished"] == 2 and way[0]["wall_s"] > 0
    assert res["summary"]["sgd4"]["apart"]["speedup"] == 1.0


@pytest.mark.slow
def test_batched_step_benchmark_tiny_times_single_and_batched(tmp_path):
    """benchmarks/batched_step.py --tiny: one step of a single LeNet and of a batch of 2,
    timed in one process; the report has both, with a positive time and speed-up."""
    out = tmp_path / "step.json"
    r = subprocess.run([sys.executable, "benchmarks/batched_step.py", "--tiny", "--out",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ways = json.loads(out.read_text())["ways"]
    assert set(ways) == {"single", "batch of 2"} and ways["single"]["speedup_per_run"] == 1.0
    assert all(w["ms_per_step"] > 0 and w["speedup_per_run"] > 0 for w in ways.values())
