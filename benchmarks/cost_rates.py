"""Measure the rates that turn bnviz.cost's counts into seconds on this machine.

    python3 benchmarks/cost_rates.py [--threads 1] [--device cpu] [--out rates.json]

Tiny real runs on the bundled subset, as a hosted server trains them (one torch thread, the
fast training path): a run at batch 256 gives seconds per training example, one at batch 8
the per-step overhead on top, one evaluation pass over the test set seconds per evaluated
example, and repeated gamma/beta snapshots seconds per snapshot. Prints them as a
`bnviz.cost.Rates(...)` line to paste into the defaults (with the date), and the estimates of
two reference configs with those rates.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bnviz import cost, data  # noqa: E402
from bnviz.config import Config  # noqa: E402
from bnviz.evaluation import evaluate  # noqa: E402
from bnviz.speed.lenet import training_kwargs  # noqa: E402
from bnviz.trainer import Trainer, snapshot  # noqa: E402


def train_seconds(cfg: Config) -> tuple[float, int, int]:
    """Seconds spent in training steps (the trainer's own clock), examples, steps."""
    s = Trainer(cfg, **training_kwargs(cfg)).run()
    assert s["status"] == "finished", s
    ex = cost.estimate(cfg, 5000, 1000).train_examples
    return ex / s["examples_per_sec"], ex, s["iterations"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (hosted: 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="also write the rates as JSON here; a server started with "
                                  "BNVIZ_COST_RATES=FILE estimates with them")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = Config(dataset="subset", device=a.device)
    train_seconds(base.replace(epochs=1))  # warm-up: imports, kernels, data in memory

    t256, ex256, _ = train_seconds(base.replace(epochs=3))
    per_example = t256 / ex256
    t8, ex8, steps8 = train_seconds(base.replace(batch_size=8, lr=0.1, epochs=1))
    per_step = max(0.0, (t8 - ex8 * per_example) / steps8)

    ds = data.load("subset", device=a.device)
    cfg = base
    net = training_kwargs(cfg)["build"](cfg).to(a.device)
    evaluate(net, ds.test_x, ds.test_y, "running", batch_size=256)
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        evaluate(net, ds.test_x, ds.test_y, "running", batch_size=256)
    per_eval = (time.perf_counter() - t) / (reps * len(ds.test_y))

    t = time.perf_counter()
    for _ in range(500):
        snapshot(net)
    per_snap = (time.perf_counter() - t) / 500

    rates = cost.Rates(per_example, per_step, per_eval, per_snap)
    if a.out:
        import dataclasses
        import json
        with open(a.out, "w") as f:
            json.dump({**dataclasses.asdict(rates), "measured": time.strftime("%Y-%m-%d"),
                       "threads": a.threads, "device": a.device}, f, indent=2)
    print(f"{time.strftime('%Y-%m-%d')}, {a.threads} torch thread(s), {a.device}:")
    print(f"Rates(train_example={per_example:.3g}, step={per_step:.3g}, "
          f"eval_example={per_eval:.3g}, snapshot={per_snap:.3g})")
    refs = {"d2l preset, full data (60k/10k), 10 epochs": (Config(), 60000, 10000),
            "batch 2, eval+snapshot every step, compare_eval, 20k × 10 epochs":
                (Config(batch_size=2, eval_every=1, snapshot_every=1, compare_eval=True,
                        train_size=20000), 60000, 10000)}
    for name, (c, n, m) in refs.items():
        s = cost.estimate(c, n, m).seconds(rates)
        print(f"  {name}: {s:,.0f} s ({cost.describe_seconds(s)})")


if __name__ == "__main__":
    main()
