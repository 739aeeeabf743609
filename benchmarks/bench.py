"""Training throughput of bnviz's Trainer next to reference loops, on one machine, in one run.

    python3 benchmarks/bench.py [--tiny] [--epochs N] [--out bench.json]

The loops are in bench_loops.py. Each timed epoch runs in a fresh child process, so that one
loop's process-wide settings (allocator, torch threads, forked workers) cannot leak into
another's; rounds rotate the loop order so that drift on a shared machine hits all alike.
The app's import and first render are timed by benchmarks/app_render.py where the checkout
has it (the core itself never imports streamlit).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys

from pathlib import Path

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_ROOT, os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402

from bench_loops import D2L_WORKERS, LOOPS, bench_config, has_pil  # noqa: E402
from bnviz.trainer import resolve_device  # noqa: E402


def _spawn(what: str, tiny: bool, threads: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).with_name("bench_loops.py")), "--child", what,
           *(["--tiny"] * tiny)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p))
    if threads:
        env["BNVIZ_TORCH_THREADS"] = threads
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"bench child {what} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def app_render_times() -> dict | None:
    """benchmarks/app_render.py's timings in a fresh process; None where the checkout lacks it
    or streamlit is not installed (the GPU machine has neither)."""
    import importlib.util
    script = os.path.join(_ROOT, "benchmarks", "app_render.py")
    if not os.path.isfile(script) or importlib.util.find_spec("streamlit") is None:
        return None
    r = subprocess.run([sys.executable, script], cwd=_ROOT, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return dict(error=r.stderr[-500:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- driver -----------------------------------------------------------------------------
def _summarise(runs: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in ("epoch_s", "train_s", "eval_s")}
    n = runs[0]["n_train"]
    fast, slow = min(r["epoch_s"] for r in runs), max(r["epoch_s"] for r in runs)
    # On a shared machine the fastest epoch is the least disturbed one; spread shows noise.
    out = dict(n_train=n, **med, examples_per_sec=n / med["epoch_s"],
               train_examples_per_sec=n / med["train_s"], best_examples_per_sec=n / fast,
               spread=slow / fast,
               test_acc=statistics.median(r["test_acc"] for r in runs),
               allocator=runs[0]["allocator"], fused=runs[0]["fused"],
               threads=runs[0]["threads"],
               peak_rss_mib=max(r["peak_rss_mib"] for r in runs), runs=runs)
    if "reported_examples_per_sec" in runs[0]:
        out["reported_examples_per_sec"] = statistics.median(
            r["reported_examples_per_sec"] for r in runs)
    return out


def run_bench(tiny: bool = False, epochs: int = 1, log=print) -> dict:
    cfg = bench_config(tiny)
    device = resolve_device(cfg.device)
    workers = 0 if tiny else D2L_WORKERS
    log(f"bench: {'tiny' if tiny else 'full'} mode on {device}; every epoch in a fresh process")
    loops_here = tuple(k for k in LOOPS if k != "d2l_book" or has_pil())
    runs: dict[str, list[dict]] = {k: [] for k in loops_here}
    if tiny:
        # Tiny mode (CI) checks the report, not the speed: the same fresh processes, two at a
        # time with one torch thread each (two threads each would only spin against each
        # other), the app's render beside them.
        from concurrent.futures import ThreadPoolExecutor
        threads = os.environ.get("BNVIZ_TORCH_THREADS") or "1"
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(_spawn, "first_step", tiny, threads)
            jobs = [(r, name, pool.submit(_spawn, name, tiny, threads))
                    for r in range(epochs) for name in loops_here]
            app_job = pool.submit(app_render_times)
            first_step = first.result()
            for r, name, job in jobs:
                runs[name].append({**job.result(), "loadavg_1m": os.getloadavg()[0]})
                log(f"bench: round {r + 1}/{epochs} {name:11s} "
                    f"{runs[name][-1]['epoch_s']:.2f} s")
            app = app_job.result()
    else:
        # First, before anything else has warmed the data path.
        first_step = _spawn("first_step", tiny)
        for r in range(epochs):
            order = loops_here[r % len(loops_here):] + loops_here[:r % len(loops_here)]
            for name in order:
                runs[name].append({**_spawn(name, tiny), "loadavg_1m": os.getloadavg()[0]})
                log(f"bench: round {r + 1}/{epochs} {name:11s} "
                    f"{runs[name][-1]['epoch_s']:.2f} s")
        app = app_render_times()
    loops = {k: _summarise(v) for k, v in runs.items()}
    ratio = lambda key, a, b: loops[a][key] / loops[b][key]  # noqa: E731
    ratios = {}
    for ref in (k for k in loops if k != "bnviz"):
        ratios[f"bnviz_over_{ref}"] = ratio("examples_per_sec", "bnviz", ref)
        ratios[f"train_bnviz_over_{ref}"] = ratio("train_examples_per_sec", "bnviz", ref)
        ratios[f"best_bnviz_over_{ref}"] = ratio("best_examples_per_sec", "bnviz", ref)
    one = runs["bnviz"][0]
    return dict(
        mode="tiny" if tiny else "full", epochs=epochs, device=str(device),
        torch=torch.__version__, threads=one["threads"], cpus=os.cpu_count(),
        machine=f"{platform.system()} {platform.release()} {platform.machine()}",
        data=one["data"], data_source=one["data_source"],
        n_train=one["n_train"], n_test=one["n_test"], batch_size=cfg.batch_size,
        d2l_workers=workers, loops=loops, ratios=ratios, first_step=first_step, app=app,
        ten_epochs_estimate_s=10 * loops["bnviz"]["epoch_s"],
        peak_rss_mib=loops["bnviz"]["peak_rss_mib"],
        peak_rss_children_mib=max(r["peak_rss_children_mib"] for r in runs["d2l"]))


def format_report(res: dict) -> str:
    lines = [f"{res['mode']} benchmark on {res['device']} ({res['threads']} torch threads, "
             f"{res['cpus']} CPUs), {res['data']}, batch {res['batch_size']}, "
             f"median of {res['epochs']} epoch(s) per loop, each in a fresh process",
             f"{'loop':13s} {'epoch s':>8s} {'train s':>8s} {'eval s':>7s} {'examples/s':>11s} "
             f"{'train ex/s':>11s} {'best ex/s':>10s} {'spread':>6s} {'test acc':>8s}  fused kernels; allocator"]
    for name, s in res["loops"].items():
        lines.append(f"{name:13s} {s['epoch_s']:8.2f} {s['train_s']:8.2f} {s['eval_s']:7.2f} "
                     f"{s['examples_per_sec']:11,.0f} {s['train_examples_per_sec']:11,.0f} "
                     f"{s['best_examples_per_sec']:10,.0f} {s['spread']:6.2f} "
                     f"{s['test_acc']:8.3f}  {s['fused']}; {s['allocator']}")
    r, f = res["ratios"], res["first_step"]
    lines += [f"bnviz's own examples_per_sec: "
              f"{res['loops']['bnviz']['reported_examples_per_sec']:,.0f} (steps only)"]
    for label, pre in (("examples/s, epoch incl. eval", ""), ("training steps only", "train_"),
                       ("fastest epoch of each loop", "best_")):
        lines.append(f"ratios ({label}):".ljust(40) + ", ".join(
            f"bnviz/{ref} {r[f'{pre}bnviz_over_{ref}']:.2f}"
            for ref in res["loops"] if ref != "bnviz"))
    lines += [f"10 epochs of this config, from the median epoch: "
              f"{res['ten_epochs_estimate_s']:.0f} s",
              f"first Step after Trainer start: cold {f['cold_s']:.2f} s, .npy cache "
              f"{f['npy_cache_s']:.2f} s, warm {f['warm_s']:.2f} s (+ "
              f"{f['torch_first_optimizer_s']:.2f} s once per process: torch's first "
              f"optimizer imports torch._dynamo; + {f['fused_build_s']:.2f} s once per "
              f"machine: building the fused kernels, {f['fused']})"]
    app = res.get("app")
    if app and "error" not in app:
        lines.append(f"app: import streamlit {app['import_streamlit_s']:.2f} s, first render "
                     f"{app['first_render_s']:.2f} s, live lab render {app['lab_render_s']:.2f} s"
                     f" (AppTest, fresh process)")
    elif app:
        lines.append(f"app: render failed: {app['error'].strip().splitlines()[-1]}")
    lines.append(f"peak RSS: {res['peak_rss_mib']:.0f} MiB (bnviz loop's process); largest "
                 f"d2l DataLoader worker {res['peak_rss_children_mib']:.0f} MiB (counts pages "
                 f"shared at fork)")
    if max(s["spread"] for s in res["loops"].values()) > 1.3:
        lines.append("warning: epochs of one loop differ by over 30%: the machine was busy; "
                     "trust the fastest-epoch ratios more than the medians")
    return "\n".join(lines)


def main(tiny: bool = False, out: str | None = None, epochs: int = 1) -> int:
    res = run_bench(tiny=tiny, epochs=epochs, log=lambda m: print(m, file=sys.stderr))
    print(format_report(res))
    if out:
        with open(out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="training throughput: bnviz vs a d2l-style loop "
                                             "vs a plain tensor loop (d2l LeNet-BN preset)")
    ap.add_argument("--tiny", action="store_true",
                    help="bundled subset, 1024 images, no DataLoader workers, the loops' processes "
                         "two at a time with one torch thread each: seconds, for CI")
    ap.add_argument("--out", help="write every number as JSON to this file")
    ap.add_argument("--epochs", type=int, default=1,
                    help="timed epochs per loop, interleaved; the median is reported")
    a = ap.parse_args()
    if a.epochs < 1:
        ap.error("--epochs must be at least 1")
    sys.exit(main(tiny=a.tiny, out=a.out, epochs=a.epochs))
