"""What training on Ray costs against JobManager, for the same config on this machine.

Each round submits the same run (a new seed per round, so nothing is reused) to a JobManager
(threads in this process, one torch thread) and to a RayRunner on a local Ray cluster (an actor
with one CPU), one after the other, and times submit → finished as a page sees it. Prints the
medians, their ratio and the Ray cluster's start-up time.

    python3 benchmarks/ray_overhead.py [--rounds 5] [--epochs 1] [--dataset subset]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnviz.config import Config  # noqa: E402
from bnviz.runs.jobs import JobManager, Limits  # noqa: E402
from bnviz.runs.store import RunStore  # noqa: E402


def timed(runner, cfg) -> float:
    t0 = time.perf_counter()
    run_id = runner.submit(cfg, session="bench", reuse=False)
    while (v := runner.get(run_id)).active:
        time.sleep(0.01)
    assert v.status == "finished", (v.status, v.reason)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--dataset", default="subset")
    p.add_argument("--out", help="write the numbers as JSON here")
    args = p.parse_args()
    from bnviz.runs.ray_runner import RayRunner, ray
    tmp = Path(tempfile.mkdtemp())
    base = Config().replace(dataset=args.dataset, epochs=args.epochs, device="cpu")
    local = JobManager(workers=1, store=RunStore(tmp / "a.sqlite"), torch_threads=1,
                       limits=Limits(per_session=4))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    start = time.perf_counter() - t0
    remote = RayRunner(store=RunStore(tmp / "b.sqlite"), limits=Limits(per_session=4))
    # the first run of each: data decoded, kernels built, and on Ray the slot's worker
    # process started (torch imported there); later runs reuse all of it
    first = (timed(local, base.replace(seed=1000)), timed(remote, base.replace(seed=1000)))
    a, b = [], []
    for i in range(args.rounds):
        cfg = base.replace(seed=i)
        a.append(timed(local, cfg))
        b.append(timed(remote, cfg))
    local.shutdown()
    remote.shutdown()
    ray.shutdown()
    res = dict(config=base.non_defaults(), rounds=args.rounds, ray_start_s=start,
               first_run_s=dict(jobmanager=first[0], ray=first[1]),
               jobmanager_s=a, ray_s=b, jobmanager_median_s=statistics.median(a),
               ray_median_s=statistics.median(b),
               ratio=statistics.median(b) / statistics.median(a),
               overhead_s=statistics.median(y - x for x, y in zip(a, b)))
    print(f"{args.rounds} rounds, {base.non_defaults()}: JobManager median "
          f"{res['jobmanager_median_s']:.2f} s, Ray {res['ray_median_s']:.2f} s "
          f"(×{res['ratio']:.2f}, median overhead {res['overhead_s']:+.2f} s per run); "
          f"local Ray cluster started in {start:.1f} s; first run {first[0]:.2f} s vs "
          f"{first[1]:.2f} s on a new Ray slot")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
