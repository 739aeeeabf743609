"""Times one grid (the BN-placement ablation, 10 configs) four ways, in one run on one machine:

    cli_seq    bnviz ablation --jobs 1: one run after another, every core to each
    cli_jobs2  bnviz ablation --jobs 2: two processes, cores // 2 torch threads each
    dash_1     the dashboard's JobManager with 1 worker thread and cores torch threads
    dash_2     the local dashboard's default: 2 worker threads, (cores - 1) // 2 torch threads

Each in a fresh process, nothing read from or written to the run store. Prints the wall times
and the speed-up of each over cli_seq (the issue's "its configs run one after another").

    python benchmarks/grid.py [--epochs 3] [--dataset full] [--configs 10] [--train-size N]
                              [--out FILE.json]

CI runs it with `--dataset subset --epochs 1 --configs 2 --train-size 512`
(tests/test_bench.py) so that it cannot rot; no test asserts a timing.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 3600  # per way: a hung run ends the benchmark with a message, not a hang
sys.path.insert(0, str(ROOT))


def grid(epochs: int, dataset: str, configs: int, train_size: int = 0) -> list:
    from bnviz.config import make_config
    from bnviz.experiments import ablation_grid
    return ablation_grid(make_config("d2l-lenet-bn", epochs=epochs, dataset=dataset,
                                     train_size=train_size))[:configs]


def dashboard(workers: int, threads: int, epochs: int, dataset: str, configs: int,
              train_size: int = 0) -> dict:
    """Submit every point of the grid at once, as the ablation page does; wait for all."""
    from bnviz.runs.jobs import JobManager
    mgr = JobManager(workers=workers, store=None, torch_threads=threads)
    points = grid(epochs, dataset, configs, train_size)
    t0 = time.perf_counter()
    ids = [mgr.submit(p.config, session="bench", group="grid") for p in points]
    while True:
        views = [mgr.get(i) for i in ids]
        if all(v is not None and not v.active for v in views):
            break
        if time.perf_counter() - t0 > TIMEOUT_S:
            mgr.shutdown()
            raise SystemExit(f"the dashboard grid did not finish in {TIMEOUT_S} s")
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    mgr.shutdown()
    bad = [f"{v.status}: {v.reason}" for v in views if v.status != "finished"]
    return dict(wall_s=wall, runs=len(ids), failed=bad)


def cli(jobs: int, epochs: int, dataset: str, configs: int, train_size: int = 0) -> dict:
    """The CLI's grid runner (what `bnviz ablation --jobs N` calls)."""
    from bnviz.runs.grid_runner import run_grid
    t0 = time.perf_counter()
    df = run_grid(grid(epochs, dataset, configs, train_size), None, reuse=False,
                  log=sys.stderr, jobs=jobs)
    return dict(wall_s=time.perf_counter() - t0, runs=len(df),
                failed=[str(s) for s in df["status"] if s != "finished"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--dataset", default="full", choices=["full", "subset", "auto"])
    ap.add_argument("--configs", type=int, default=10, help="the first N configs of the grid")
    ap.add_argument("--train-size", type=int, default=0,
                    help="only the first N training images (0 = all)")
    ap.add_argument("--out")
    # one way in this (fresh) process: "cli:JOBS" or "dash:WORKERS,THREADS"
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, arg = a.child.split(":")
        if kind == "cli":
            res = cli(int(arg), a.epochs, a.dataset, a.configs, a.train_size)
        else:
            workers, threads = map(int, arg.split(","))
            res = dashboard(workers, threads, a.epochs, a.dataset, a.configs, a.train_size)
        print(json.dumps(res))
        return
    cores = os.cpu_count() or 2
    ways = {"cli_seq": "cli:1", "cli_jobs2": "cli:2", "dash_1": f"dash:1,{cores}",
            "dash_2": f"dash:2,{max(1, (cores - 1) // 2)}"}
    res = {}
    for name, child in ways.items():
        r = subprocess.run([sys.executable, __file__, "--child", child, "--epochs",
                            str(a.epochs), "--dataset", a.dataset, "--configs", str(a.configs),
                            "--train-size", str(a.train_size)],
                           cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
        if r.returncode != 0:
            raise SystemExit(f"{name} failed:\n{r.stderr[-2000:]}")
        res[name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{name:10s} {res[name]['wall_s']:7.1f} s  "
              f"({res[name]['runs']} runs × {a.epochs} epochs"
              f"{', FAILED: ' + '; '.join(res[name]['failed']) if res[name]['failed'] else ''})",
              file=sys.stderr)
    base = res["cli_seq"]["wall_s"]
    out = dict(epochs=a.epochs, dataset=a.dataset, train_size=a.train_size, cores=cores, ways=res,
               speedup_over_cli_seq={k: base / v["wall_s"] for k, v in res.items()})
    print("speed-up over one run after another (cli_seq): " + ", ".join(
        f"{k} {v:.2f}×" for k, v in out["speedup_over_cli_seq"].items()))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
