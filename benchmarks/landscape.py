"""What probing the loss landscape costs (bnviz.landscape, issue 20): the d2l preset trained
as the app trains it (bnviz.runs.training, the fast model), without probes and with the
`landscape` knob on and an evaluation (full test set) + probe every `--every` steps.

The runs are interleaved round by round in one process (so drift in the machine's speed hits
both alike, one torch thread as on a hosted server); the report gives each round's wall
times, the median ratio, and what bnviz.cost estimates for both. The budget (issue 20): a
10-epoch run with probes at most 2x the run without; one epoch of the full data has the same
steps per epoch and evaluations per epoch, so the ratio is measured on `--epochs 1` by default.

    .venv/bin/python benchmarks/landscape.py [--epochs 1] [--every 50] [--rounds 2]
        [--dataset full] [--norm bn] [--out landscape.json]
"""
import argparse
import json
import platform
import statistics
import time

import torch

from bnviz import cost, data
from bnviz.config import make_config
from bnviz.runs.training import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--every", type=int, default=50, help="eval_every of the probed run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dataset", default="full", choices=("full", "subset"))
    p.add_argument("--norm", default="bn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the report as JSON here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    plain = make_config(dataset=a.dataset, epochs=a.epochs, norm=a.norm, device="cpu")
    probed = plain.replace(landscape=True, eval_every=a.every)
    train(plain.replace(epochs=1, train_size=512))  # warm-up: kernels, data, allocator
    rounds = []
    for r in range(a.rounds):
        row = {}
        for name, cfg in (("plain", plain), ("probed", probed)):
            t = time.perf_counter()
            s = train(cfg)
            row[name] = time.perf_counter() - t
            row[f"{name}_status"] = s["status"]
            row[f"{name}_test_acc"] = s["test_acc"]
        row["ratio"] = row["probed"] / row["plain"]
        rounds.append(row)
        print(f"round {r + 1}: without probes {row['plain']:.1f} s, with probes every "
              f"{a.every} steps {row['probed']:.1f} s, ratio {row['ratio']:.2f}", flush=True)
    n_train, n_test = data.sizes(a.dataset)
    est = {name: cost.estimate(c, n_train, n_test).seconds(cost.Rates())
           for name, c in (("plain", plain), ("probed", probed))}
    ten = {name: cost.estimate(c.replace(epochs=10), n_train, n_test).seconds(cost.Rates())
           for name, c in (("plain", plain), ("probed", probed))}
    report = dict(machine=platform.processor() or platform.machine(), threads=a.threads,
                  dataset=a.dataset, epochs=a.epochs, every=a.every, norm=a.norm,
                  rounds=rounds, median_ratio=statistics.median(r["ratio"] for r in rounds),
                  estimate_s=est, estimate_ratio=est["probed"] / est["plain"],
                  estimate_10_epochs_s=ten)
    print(f"median ratio {report['median_ratio']:.2f} (budget 2.0); bnviz.cost estimates "
          f"{est['plain']:.1f} s and {est['probed']:.1f} s (ratio "
          f"{report['estimate_ratio']:.2f}); 10 epochs: {ten['plain']:.0f} s and "
          f"{ten['probed']:.0f} s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
