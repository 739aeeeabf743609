"""The bench subcommand end to end in tiny mode. Timings on a shared CI machine are noise, so
only the shape and sanity of the report are checked, never how fast anything was."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_tiny_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "bnviz", "bench", "--tiny", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "bnviz/d2l" in r.stdout and "bnviz/plain" in r.stdout
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny" and res["data_source"] == "subset" and res["n_train"] == 1024
    for loop in ("bnviz", "d2l", "plain"):
        s = res["loops"][loop]
        assert s["examples_per_sec"] > 0 and s["train_examples_per_sec"] > 0
        assert s["n_train"] == 1024 and 0 <= s["test_acc"] <= 1
    assert res["loops"]["bnviz"]["reported_examples_per_sec"] > 0
    for key in ("bnviz_over_d2l", "bnviz_over_plain", "train_bnviz_over_d2l",
                "train_bnviz_over_plain", "best_bnviz_over_d2l", "best_bnviz_over_plain"):
        assert res["ratios"][key] > 0
    assert all(res["first_step"][k] > 0 for k in ("cold_s", "npy_cache_s", "warm_s"))
    assert res["peak_rss_mib"] > 0
