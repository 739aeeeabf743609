"""Measures the live lab as a user meets it: Train → first chart point of the run it trains
(the results library's faded seeds, where the config has them, are not counted), examples/s
of runs trained while the page is open and polling, server memory after the runs, and the
same config through the CLI for comparison. Loopback only; about a minute on 2 cores.

    python benchmarks/lab_latency.py [--runs 5] [--epochs 3] [--out FILE.json]
    python benchmarks/lab_latency.py --tiny     # 1 run of 512 images, for CI (tests/test_bench.py)
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
from tests.server import CHROMIUM, CHROMIUM_ARGS, address, live_points, serve  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=0, help="0: the whole subset")
    ap.add_argument("--tiny", action="store_true", help="1 run, 1 epoch of 512 images")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.tiny:
        a.runs, a.epochs, a.train_size = 1, 1, 512
    sized = ["--train-size", str(a.train_size)] if a.train_size else []
    query = f"dataset=subset&epochs={a.epochs}" + (f"&train_size={a.train_size}" if sized else "")
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
            if live_points(page):
                raise SystemExit("the lab shows a run's points before Train: nothing to time")
            page.get_by_role("button", name="▶ Train").click()
            t0 = time.time()
            while live_points(page) == 0 and time.time() - t0 < 60:
                page.wait_for_timeout(20)
            if not live_points(page):
                raise SystemExit("no point of the run within 60 s of Train")
            report["first_point_s"].append(round(time.time() - t0, 3))
            page.get_by_text("Finished").first.wait_for(timeout=300000)
            run_id = address(page).split("run=")[1][:12]
            import sqlite3
            s = json.loads(sqlite3.connect(db).execute(
                "SELECT summary FROM runs WHERE run_id=?", (run_id,)).fetchone()[0])
            report["page_examples_per_sec"].append(round(s["examples_per_sec"]))
        report["rss_after_runs_mb"] = rss_mb(proc.pid)
        b.close()
    cli = subprocess.run([sys.executable, "-m", "bnviz", "train", "--dataset", "subset",
                          "--epochs", str(a.epochs), "--seed", "100", *sized, "--quiet"],
                         cwd=ROOT, capture_output=True, text=True)
    report["cli_summary"] = cli.stdout.strip()
    report["cli_examples_per_sec"] = int(cli.stdout.split(" examples/s")[0].split()[-1]
                                         .replace(",", ""))
    print(json.dumps(report, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
