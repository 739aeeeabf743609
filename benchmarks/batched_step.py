"""One training step at a small batch: a single LeNet (the fast path every run trains with)
against a BatchedLeNet of M models, in one process, rounds interleaved, medians.

    python benchmarks/batched_step.py [--batch 4] [--models 3,5] [--rounds 7] [--preset P]
    python benchmarks/batched_step.py --tiny     # what CI runs (tests/test_bench.py)

Prints ms per step and each batch's speed-up per run (M × single ÷ batched): what a grid's
seeds gain per step from training as one model, before data, evaluation and process start.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def steppers(preset: str, batch: int, models: list[int]) -> dict:
    import torch
    import torch.nn.functional as F
    from bnviz.config import make_config
    from bnviz.speed.batched import BatchedLeNet
    from bnviz.speed.lenet import build_fast
    cfg = make_config(preset, batch_size=batch, device="cpu")
    g = torch.Generator().manual_seed(0)
    net = build_fast(cfg, 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x1, y1 = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def single():
        loss = F.cross_entropy(net(x1), y1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = {"single": (1, single)}
    for m in models:
        bnet = BatchedLeNet([cfg.replace(seed=s) for s in range(m)])
        lrs = torch.full((m,), 0.1)
        x = torch.randn(batch, m, 28, 28, generator=g)
        y = torch.randint(0, 10, (batch, m), generator=g)

        def step(bnet=bnet, lrs=lrs, x=x, y=y):
            per = bnet.losses(bnet(x), y)
            bnet.zero_grad(set_to_none=True)
            per.sum().backward()
            bnet.sgd_step(lrs)
        out[f"batch of {m}"] = (m, step)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--models", default="3,5")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=300, help="steps per round and way")
    p.add_argument("--preset", default="d2l-lenet-bn")
    p.add_argument("--tiny", action="store_true", help="a few steps: the code path, no claim")
    p.add_argument("--out")
    a = p.parse_args()
    if a.tiny:
        a.rounds, a.steps, a.models = 1, 3, "2"
    import torch
    torch.set_num_threads(1)
    ways = steppers(a.preset, a.batch, [int(m) for m in a.models.split(",")])
    for _, f in ways.values():  # warm: allocator, kernels, the fused library
        for _ in range(3):
            f()
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(a.rounds):
        for k, (_, f) in ways.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                f()
            times[k].append((time.perf_counter() - t) / a.steps)
    single = statistics.median(times["single"])
    report = {}
    for k, (m, _) in ways.items():
        med = statistics.median(times[k])
        report[k] = dict(models=m, ms_per_step=med * 1e3, speedup_per_run=m * single / med)
        print(f"batch {a.batch}, {k:11s} {med * 1e3:7.3f} ms a step; per run "
              f"{m * single / med:.2f}× a single run's speed")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(batch=a.batch, rounds=a.rounds, steps=a.steps,
                                               preset=a.preset, ways=report), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
