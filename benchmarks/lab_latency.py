"""Measures the live lab as a user meets it: Train → first chart point, examples/s of runs
trained while the page is open and polling, server memory after 5 runs, and the same config
through the CLI for comparison. Loopback only; about a minute on 2 cores.

    python benchmarks/lab_latency.py [--runs 5] [--epochs 3] [--out FILE.json]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.server import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402

POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(g => (g.data || []).reduce((n, t) => n + ((t.x && t.x.length) || 0), 0))
  .reduce((a, b) => a + b, 0)"""


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    query = f"dataset=subset&epochs={a.epochs}"
    db = Path(tempfile.mkdtemp()) / "runs.sqlite"
    report = {"first_point_s": [], "page_examples_per_sec": []}
    with serve(db) as (url, proc), sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        report["rss_start_mb"] = rss_mb(proc.pid)
        for seed in range(a.runs):
            page.goto(f"{url}/lab?{query}&seed={seed + 100}")
            page.get_by_role("button", name="▶ Train").wait_for(timeout=60000)
            page.wait_for_timeout(1500)  # let the page settle, as a person would
            page.get_by_role("button", name="▶ Train").click()
            t0 = time.time()
            while page.evaluate(POINTS) == 0 and time.time() - t0 < 60:
                page.wait_for_timeout(20)
            report["first_point_s"].append(round(time.time() - t0, 3))
            page.get_by_text("Finished").first.wait_for(timeout=300000)
            run_id = page.url.split("run=")[1][:12]
            import sqlite3
            s = json.loads(sqlite3.connect(db).execute(
                "SELECT summary FROM runs WHERE run_id=?", (run_id,)).fetchone()[0])
            report["page_examples_per_sec"].append(round(s["examples_per_sec"]))
        report["rss_after_runs_mb"] = rss_mb(proc.pid)
        b.close()
    cli = subprocess.run([sys.executable, "-m", "bnviz", "train", "--dataset", "subset",
                          "--epochs", str(a.epochs), "--seed", "100", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True)
    report["cli_summary"] = cli.stdout.strip()
    report["cli_examples_per_sec"] = int(cli.stdout.split(" examples/s")[0].split()[-1]
                                         .replace(",", ""))
    print(json.dumps(report, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
