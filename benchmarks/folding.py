"""Eval-mode inference time of LeNet-BN with and without its BatchNorms folded into the
conv/linear layers before them (bnviz.folding.fold_bn), on this machine.

Both models are timed in one process, interleaved round by round (so drift in the machine's
speed hits both alike), on the same batch of test images; each round is `--iters` forward
passes under torch.no_grad, and the report gives the median round per model and the ratio of
the medians. The models are the default config (nn.BatchNorm at all four sites) after a few
SGD steps on the bundled subset, so the running statistics and gamma, beta are not 0, 1, 1, 0;
the folded outputs are checked against the unfolded ones (max |difference| is reported).

    .venv/bin/python benchmarks/folding.py [--tiny] [--batch 256] [--out folding.json]
"""
import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from bnviz import data
from bnviz.config import make_config
from bnviz.folding import fold_bn
from bnviz.model import build_lenet


def trained_lenet(norm: str, steps: int):
    ds = data.load("subset")
    net = build_lenet(make_config(norm=norm, dataset="subset"))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(ds.train_y), (256,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(ds.train_x[i]), ds.train_y[i]).backward()
        opt.step()
    return net.eval(), ds


@torch.no_grad()
def round_seconds(net, x, iters: int) -> float:
    t = time.perf_counter()
    for _ in range(iters):
        net(x)
    return (time.perf_counter() - t) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a few short rounds: checks it runs")
    ap.add_argument("--batch", type=int, default=256, help="images per forward pass")
    ap.add_argument("--norm", default="bn", help="the norm kind to fold (default bn)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per model")
    ap.add_argument("--iters", type=int, default=None, help="forward passes per round")
    ap.add_argument("--out", help="also write the results as JSON here")
    a = ap.parse_args()
    rounds = a.rounds or (3 if a.tiny else 30)
    iters = a.iters or (2 if a.tiny else 20)

    net, ds = trained_lenet(a.norm, 3 if a.tiny else 20)
    folded = fold_bn(net)
    x = ds.test_x[: a.batch]
    with torch.no_grad():
        diff = (net(x) - folded(x)).abs().max().item()
        for _ in range(3):  # warm-up: allocator, kernels picked
            net(x), folded(x)
    times = {"unfolded": [], "folded": []}
    for _ in range(rounds):
        times["unfolded"].append(round_seconds(net, x, iters))
        times["folded"].append(round_seconds(folded, x, iters))
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {
        "mode": "tiny" if a.tiny else "full", "norm": a.norm, "batch": len(x),
        "rounds": rounds, "iters": iters, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "torch": torch.__version__,
        "layers": {"unfolded": len(net), "folded": len(folded)},
        "median_ms": {k: v * 1e3 for k, v in med.items()},
        "unfolded_over_folded": med["unfolded"] / med["folded"],
        "max_abs_diff": diff,
    }
    print(f"LeNet ({a.norm}) eval, batch {len(x)}, {torch.get_num_threads()} threads: "
          f"unfolded {res['median_ms']['unfolded']:.3f} ms ({len(net)} layers), folded "
          f"{res['median_ms']['folded']:.3f} ms ({len(folded)} layers): "
          f"{res['unfolded_over_folded']:.2f}x (median of {rounds} rounds of {iters}); "
          f"max |difference| {diff:.2e}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
