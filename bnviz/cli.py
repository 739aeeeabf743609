"""`python -m bnviz ...`: train one config, list presets. Flags come from the knob registry."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from .config import KNOBS, PRESET_HELP, PRESETS, ConfigError, Config, make_config

METRIC_COLUMNS = ("kind", "iteration", "epoch", "loss", "acc", "test_loss", "test_acc",
                  "train_loss", "train_acc", "eval_batch_acc", "train_mode_batch_acc",
                  "acc_running", "acc_precise", "acc_batch")


def add_knob_flags(p: argparse.ArgumentParser) -> None:
    """One flag per registry knob; None means 'not given', so presets can fill it in."""
    for k in KNOBS:
        rng = f" [{', '.join(map(str, k.choices))}]" if k.choices else (
            f" [{k.lo:g}..{k.hi:g}]" if k.lo is not None else "")
        help_ = f"{k.help}{rng} (default {k.default})"
        if k.type is bool:
            p.add_argument(k.flag, dest=k.name, action=argparse.BooleanOptionalAction,
                           default=None, help=help_)
        else:
            p.add_argument(k.flag, dest=k.name, default=None, metavar=k.type.__name__.upper(),
                           help=help_)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="start from a preset; explicit flags override it")


def config_from_args(args: argparse.Namespace) -> Config:
    given = {k.name: getattr(args, k.name) for k in KNOBS if getattr(args, k.name) is not None}
    return make_config(args.preset, **given)


def config_or_none(args: argparse.Namespace) -> Config | None:
    """The config the flags describe, or None after printing one line per bad flag."""
    try:
        return config_from_args(args)
    except ConfigError as e:
        for msg in e.errors:
            print(f"bnviz: {msg}", file=sys.stderr)
        return None


class ProgressBar:
    """A one-line terminal progress bar; a listener like any other."""

    def __init__(self, stream=sys.stderr, width: int = 28):
        self.stream, self.width = stream, width
        self.total = 1
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.test_acc = math.nan
        self.tty = stream.isatty()

    def __call__(self, e) -> None:
        if e.kind == "started":
            self.total = max(e.total_steps, 1)
            self.epochs = e.config["epochs"]
            print(f"bnviz: training on {e.device}, {e.data}; {e.n_params:,} parameters",
                  file=self.stream)
        elif e.kind == "eval":
            self.test_acc = e.test_acc
        elif e.kind == "step":
            now = time.perf_counter()
            if now - self.last < (0.2 if self.tty else 5.0) and e.iteration < self.total:
                return
            self.last = now
            frac = e.iteration / self.total
            rate = e.iteration / max(now - self.t0, 1e-9)
            eta = (self.total - e.iteration) / max(rate, 1e-9)
            bar = "#" * int(frac * self.width)
            line = (f"epoch {min(int(e.epoch) + 1, self.epochs)}/{self.epochs} "
                    f"[{bar:<{self.width}}] {frac:4.0%} loss {e.loss:.3f} "
                    f"test acc {self.test_acc:.3f} ETA {eta:4.0f}s")
            print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
                  file=self.stream, flush=True)
        elif e.kind == "ended" and self.tty:
            print(file=self.stream)


class RunFiles:
    """Writes config.json, metrics.csv and summary.json into `out`."""

    def __init__(self, out: Path, cfg: Config):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {**cfg.to_dict(), "config_id": cfg.config_id()}, indent=2))
        self.f = open(out / "metrics.csv", "w", newline="")
        self.w = csv.DictWriter(self.f, METRIC_COLUMNS, extrasaction="ignore")
        self.w.writeheader()

    def __call__(self, e) -> None:
        if e.kind == "step":
            self.w.writerow(dict(kind="step", iteration=e.iteration, epoch=f"{e.epoch:.4f}",
                                 loss=e.loss, acc=e.acc))
        elif e.kind == "eval":
            row = {k: getattr(e, k) for k in METRIC_COLUMNS[5:11]}
            row.update({f"acc_{m}": v for m, v in e.by_mode.items()})
            self.w.writerow(dict(kind="eval", iteration=e.iteration, epoch=f"{e.epoch:.4f}",
                                 **row))
        elif e.kind == "ended":
            self.f.close()
            (self.out / "summary.json").write_text(json.dumps(e.summary, indent=2,
                                                              default=str))


def summary_line(s: dict) -> str:
    base = (f"{s['status']}: train loss {s['train_loss']:.3f}, train acc {s['train_acc']:.3f}, "
            f"test acc {s['test_acc']:.3f}, {s['examples_per_sec']:,.0f} examples/s, "
            f"{s.get('wall_time', 0):.1f} s on {s.get('device', '?')} "
            f"[{s.get('data_source', '?')} data]")
    fused = str(s.get("fused", ""))
    if s.get("device") == "cpu" and fused.startswith("off ("):
        base += f"; fused CPU kernels {fused}"  # why this run was slower than it could be
    return base + (f" — {s['reason']}" if s.get("reason") else "")


def cmd_train(args: argparse.Namespace) -> int:
    from .trainer import Trainer  # torch import only when training
    cfg = config_or_none(args)
    if cfg is None:
        return 2
    from .jobs import new_run_id
    from .record import RunRecord
    from .store import RunStore, StoreError
    record = RunRecord(new_run_id(), cfg, session="cli")
    listeners = [record] + ([] if args.quiet else [ProgressBar()])
    if args.out:
        listeners.append(RunFiles(Path(args.out), cfg))
    s = Trainer(cfg, listeners).run()
    if not args.no_store:
        try:
            store = RunStore()
            store.save(record.view())
            print(f"bnviz: stored as run {record.run_id} in {store.path}", file=sys.stderr)
        except StoreError as e:
            print(f"bnviz: {e}; the run was not stored", file=sys.stderr)
    print(summary_line(s))
    return 0 if s["status"] == "finished" else 1


def cmd_grid(args: argparse.Namespace) -> int:
    from .experiments import GRIDS
    from .grid_runner import run_grid
    from .store import RunStore, StoreError
    base = config_or_none(args)
    if base is None:
        return 2
    try:
        store = None if args.no_store else RunStore()
    except StoreError as e:
        print(f"bnviz: {e}; results are not stored", file=sys.stderr)
        store = None
    kw = {}
    if args.values:
        vals = [float(v) if args.grid == "lr" else int(v) for v in args.values.split(",")]
        kw[{"batch_size": "sizes", "lr": "lrs", "devices": "ks", "bias": "seeds"}[args.grid]] = vals
    if args.norms:
        kw["norms"] = args.norms.split(",")
    points = GRIDS[args.grid](base, **kw)
    table = run_grid(points, store, reuse=not args.again, jobs=args.jobs,
                     out=Path(args.out) if args.out else None)
    print(table.drop(columns=["run_id"]).to_string(index=False, float_format="%.3f"))
    return 0


def cmd_inside(args: argparse.Namespace) -> int:
    """What one BN layer computes on one real batch: shapes, axes, counts, statistics."""
    from .inside import layer_io
    cfg = config_or_none(args)
    if cfg is None:
        return 2
    if cfg.norm not in ("bn", "bn_scratch"):
        cfg = cfg.replace(norm="bn")
    for site in args.sites.split(","):
        try:
            io = layer_io(cfg, cfg.batch_size, site.strip(), cfg.seed)
        except ValueError as e:
            print(f"bnviz: {e}", file=sys.stderr)
            return 2
        print(f"{io.site}: input {io.input_shape}, mean/var over axes {io.axes} "
              f"({io.count:,} values per mean), statistics shape {io.stats_shape}, "
              f"gamma/beta shape {io.gamma_shape}")
        for c in range(min(len(io.mean), args.channels)):
            print(f"  channel {c:3d}: mean {io.mean[c]:+.4f}  var {io.var[c]:.4f}  ->  "
                  f"output mean {io.out_mean[c]:+.4f}  std {io.out_std[c]:.4f}")
    return 0


def cmd_presets(_args) -> int:
    for name, values in PRESETS.items():
        changes = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
        print(f"{name:22s} {PRESET_HELP[name]}  ({changes})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        print("bnviz: --epochs must be at least 1", file=sys.stderr)
        return 2
    from .bench import main as bench_main  # torch import only when benchmarking
    return bench_main(tiny=args.tiny, out=args.out, epochs=args.epochs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bnviz",
                                description="Train LeNet on Fashion-MNIST and watch BatchNorm.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one config")
    add_knob_flags(t)
    t.add_argument("--out", help="folder for config.json, metrics.csv, summary.json")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-store", action="store_true", help="do not keep the run in the store")
    t.set_defaults(func=cmd_train)
    sub.add_parser("presets", help="list presets").set_defaults(func=cmd_presets)
    i = sub.add_parser("inside", help="one real batch through BN layers: shapes, axes, counts")
    add_knob_flags(i)
    i.add_argument("--sites", default="conv1,fc1", help="comma-separated: conv1,conv2,fc1,fc2")
    i.add_argument("--channels", type=int, default=6, help="channels to print per layer")
    i.set_defaults(func=cmd_inside)
    from .experiments import GRIDS
    for name, grid_help in (("ablation", "d2l's BN ablation grid (10 runs)"),
                            ("sweep", "a sweep: ablation, batch_size, lr, devices or bias")):
        g = sub.add_parser(name, help=grid_help)
        if name == "sweep":
            g.add_argument("grid", choices=sorted(GRIDS))
        else:
            g.set_defaults(grid="ablation")
        add_knob_flags(g)
        g.add_argument("--out", help="folder for results.csv")
        if name == "sweep":
            g.add_argument("--values", help="comma-separated values to sweep (batch sizes, "
                                            "lrs, device counts or seeds)")
            g.add_argument("--norms", help="comma-separated norm kinds (batch_size, lr)")
        else:
            g.set_defaults(values=None, norms=None)
        g.add_argument("--again", action="store_true", help="retrain runs already stored")
        g.add_argument("--jobs", type=int, default=1,
                       help="train this many runs at once in separate processes")
        g.add_argument("--no-store", action="store_true", help="do not use the run store")
        g.set_defaults(func=cmd_grid)
    b = sub.add_parser("bench", help="training throughput: bnviz vs a d2l-style loop vs a "
                       "plain tensor loop (d2l LeNet-BN preset)")
    b.add_argument("--tiny", action="store_true",
                   help="bundled subset, 1024 images, no DataLoader workers: seconds, for CI")
    b.add_argument("--out", help="write every number as JSON to this file")
    b.add_argument("--epochs", type=int, default=1,
                   help="timed epochs per loop, interleaved; the median is reported")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads = os.environ.get("BNVIZ_TORCH_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        # One thread per process is far safer when several trainings share few cores:
        # OpenMP threads spinning against each other slow every process down 10x or more.
        import torch
        torch.set_num_threads(int(threads))
    return args.func(args)
