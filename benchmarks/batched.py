"""A changed question's 5-seed answer, trained apart and batched, in one run on one machine.

Two grids, each timed three ways through the CLI's grid runner (bnviz.runs.grid_runner, what
`bnviz sweep` calls), each way in a fresh process, nothing read from or written to the store:

    apart     every run alone, two processes (`--jobs 2`): the grid runner before batching
    batched   the grid runner as it is: runs that can train as one model, where that pays
              (bnviz.speed.batched.pays), as one batched model; batches over two processes
    forced    every batchable configuration's seeds batched, where it does not pay too

The grids: the SGD-batch sweep's batch-4 arm (BN, 5 seeds; where batching pays on a CPU) and
the BN-placement ablation (10 configurations × 5 seeds at batch 256). Prints wall times and
each way's speed-up over `apart`; rounds alternate the ways and the medians are reported.

    python benchmarks/batched.py [--rounds 1] [--train-size N] [--epochs E] [--out FILE.json]
    python benchmarks/batched.py --tiny     # what CI runs (tests/test_bench.py): no timing claim
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TIMEOUT_S = 3600
WAYS = {"apart": dict(batch=1), "batched": dict(), "forced": dict(force_batch=True)}


def points(grid: str, epochs: int, train_size: int, dataset: str, seeds: int,
           configs: int) -> list:
    from bnviz.config import make_config
    from bnviz.experiments import ablation_grid, batch_size_grid, with_seeds
    batch = 64 if 0 < train_size < 256 else 256  # the tiny mode's 64 images: batch 64
    base = make_config("d2l-lenet-bn", epochs=epochs, train_size=train_size, dataset=dataset,
                       device="cpu", batch_size=batch)
    if grid == "sgd4":
        # the sweep's own point: BN at every site, batch 4, the lr scaled from the base
        # batch (as the SGD-batch page's grid does from 256)
        pts = [p for p in batch_size_grid(base, sizes=(4,), norms=("bn",))]
    else:
        pts = ablation_grid(base)[:configs]
    return with_seeds(pts, seeds)


def one(way: str, grid: str, args) -> dict:
    """In this (fresh) process: the grid trained the way `way` says; wall seconds."""
    import io
    from bnviz.runs.grid_runner import run_grid
    pts = points(grid, args.epochs, args.train_size, args.dataset, args.seeds, args.configs)
    t0 = time.perf_counter()
    table = run_grid(pts, None, reuse=False, log=io.StringIO(), jobs=args.jobs, **WAYS[way])
    wall = time.perf_counter() - t0
    return dict(wall_s=wall, runs=len(pts), finished=int((table.status == "finished").sum()),
                examples=int(sum(p.config.epochs * (p.config.train_size or 60000)
                                 for p in pts)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="seconds, on the bundled subset (CI)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-size", type=int, default=8192,
                   help="training images per run (0: all 60,000)")
    p.add_argument("--dataset", default="full")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--configs", type=int, default=10, help="ablation configurations")
    p.add_argument("--grids", default="sgd4,ablation")
    p.add_argument("--ways", default=",".join(WAYS), help="of " + ", ".join(WAYS))
    p.add_argument("--jobs", type=int, default=2, help="the grid runner's processes")
    p.add_argument("--out")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # way grid: the child process
    args = p.parse_args()
    if args.tiny:
        args.dataset, args.train_size, args.seeds, args.configs = "subset", 64, 2, 2
        args.grids, args.jobs = "sgd4", 1
    if args.one:
        print(json.dumps(one(*args.one, args)))
        return 0
    child = ["--epochs", str(args.epochs), "--train-size", str(args.train_size), "--dataset",
             args.dataset, "--seeds", str(args.seeds), "--configs", str(args.configs),
             "--jobs", str(args.jobs)]
    results: dict = {}
    for r in range(args.rounds):
        for grid in args.grids.split(","):
            ways = [w for w in WAYS if w in args.ways.split(",")]
            order = ways if r % 2 == 0 else ways[::-1]
            for way in order:
                if args.tiny:  # in this process: the code path, not the timing
                    res = one(way, grid, args)
                else:
                    out = subprocess.run([sys.executable, __file__, *child, "--one", way,
                                          grid], capture_output=True, text=True,
                                         timeout=TIMEOUT_S, cwd=ROOT)
                    if out.returncode:
                        print(out.stderr[-2000:], file=sys.stderr)
                        return 1
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(grid, {}).setdefault(way, []).append(res)
                print(f"round {r + 1} {grid:9s} {way:8s} {res['wall_s']:7.1f} s "
                      f"({res['finished']}/{res['runs']} finished)", flush=True)
    summary = {}
    for grid, ways in results.items():
        med = {w: statistics.median(x["wall_s"] for x in runs) for w, runs in ways.items()}
        summary[grid] = {w: dict(median_s=s, speedup=med["apart"] / s) for w, s in med.items()}
        print(f"{grid}: " + ", ".join(f"{w} {s:.1f} s ({med['apart'] / s:.2f}×)"
                                      for w, s in med.items()))
    report = dict(mode="tiny" if args.tiny else "full", machine=f"{platform.machine()}, "
                  f"{os.cpu_count()} cores", epochs=args.epochs, train_size=args.train_size,
                  seeds=args.seeds, rounds=args.rounds, results=results, summary=summary)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
