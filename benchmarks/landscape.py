"""What probing the loss landscape costs (bnviz.landscape, issue 20): the d2l preset trained
as the app trains it (bnviz.runs.training, the fast model), without probes and with the
`landscape` knob on and an evaluation (full test set) + probe every `--every` steps.

The runs are interleaved round by round in one process (so drift in the machine's speed hits
both alike, one torch thread as on a hosted server); the report gives each round's wall
times, the median ratio, and what bnviz.cost estimates for both. The budget (issue 20): a
10-epoch run with probes at most 2x the run without; one epoch of the full data has the same
steps per epoch and evaluations per epoch, so the ratio is measured on `--epochs 1` by default.

    .venv/bin/python benchmarks/landscape.py [--epochs 1] [--every 50] [--rounds 2]
        [--dataset full] [--norm bn] [--probe landscape|ics|both] [--out landscape.json]
        [--tiny]

Measured 2026-12-02 on the 2-core development machine (shared with other jobs, load 5-8, one
torch thread), 1 epoch of the full data, d2l preset (nn.BatchNorm, sigmoid, lr 1, batch 256),
probes every 50 steps (landscape.PROBE_EVERY): 29.0 s → 38.5 s (ratio 1.33) and 21.4 s →
30.9 s (ratio 1.44), two separate runs of one round each; bnviz.cost's estimate for the same
pair is 1.32 (10 epochs: about 42 s and 58 s). Within the 2x budget.

The budget's own case, measured 2026-12-02 on the same machine with little else running
(load about 1, one torch thread), `--epochs 10 --rounds 1 --probe both` (the loss landscape
and the ICS measurement at once, every 50 steps, the worst case): 53.3 s without probes, 81.0 s
with, ratio 1.52; bnviz.cost estimates 41.6 s and 62.5 s (ratio 1.50).
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

# The knobs of each probe (bnviz.landscape, bnviz.ics); "both" is issue 20's worst case.
PROBES = {"landscape": {"landscape": True}, "ics": {"ics_probe": True},
          "both": {"landscape": True, "ics_probe": True}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--every", type=int, default=50, help="eval_every of the probed run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dataset", default="full", choices=("full", "subset"))
    p.add_argument("--norm", default="bn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--probe", default="landscape", choices=tuple(PROBES),
                   help="which probes the probed run measures (issue 20's two measurements)")
    p.add_argument("--out", help="write the report as JSON here")
    p.add_argument("--tiny", action="store_true",
                   help="CI: the bundled subset, 256 images, batch 64, a probe every 2 steps")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    size = dict(dataset="subset", train_size=256, batch_size=64) if a.tiny else \
        dict(dataset=a.dataset)
    if a.tiny:
        a.dataset, a.every, a.rounds = "subset", 2, 1
    plain = make_config(**size, epochs=a.epochs, norm=a.norm, device="cpu")
    probed = plain.replace(**PROBES[a.probe], eval_every=a.every)
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
                  probe=a.probe,
                  dataset=a.dataset, tiny=a.tiny, epochs=a.epochs, every=a.every, norm=a.norm,
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
