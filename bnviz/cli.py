"""The `bnviz` command (also `python -m bnviz`): train one config, run grids, list presets.
Flags come from the knob registry."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from bnviz.config import KNOBS, PRESET_HELP, PRESETS, ConfigError, Config, make_config, validate

STEP_FIELDS = ("kind", "iteration", "epoch", "loss", "acc")


def metric_columns() -> tuple[str, ...]:
    """metrics.csv's columns: a step's fields, then every metric an evaluation carries (the
    Evaluation event's metric fields in their order, accuracy per eval mode, then the
    registry's probe metrics)."""
    from dataclasses import fields

    from bnviz.events import Evaluation
    from bnviz.metrics import EVAL_MODES, METRICS, probes
    evals = tuple(f.name for f in fields(Evaluation) if f.name in METRICS)
    return (STEP_FIELDS + evals + tuple(f"acc_{m}" for m in EVAL_MODES)
            + tuple(m.id for m in probes()))


SNAPSHOT_COLUMNS = ("iteration", "epoch", "layer", "stat", "channel", "value")


def add_knob_flags(p: argparse.ArgumentParser) -> None:
    """One flag per registry knob; None means 'not given', so presets can fill it in."""
    for k in KNOBS:
        # integers whole ("[0..2147483647]", not :g's "2.14748e+09"); floats short
        bound = (lambda v: str(int(v))) if k.type is int else (lambda v: f"{v:g}")
        rng = f" [{', '.join(map(str, k.choices))}]" if k.choices else (
            f" [{bound(k.lo)}..{bound(k.hi)}]" if k.lo is not None else "")
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
    """A one-line terminal progress bar; a listener like any other.

    The ETA comes from the steps timed after the first WARM_UP_STEPS (data loading, the first
    forward passes and the kernels' first calls would make it many times too long); until
    then it shows "—". `clock` is for tests."""

    WARM_UP_STEPS = 5

    def __init__(self, stream=sys.stderr, width: int = 28, clock=time.perf_counter):
        self.stream, self.width, self.clock = stream, width, clock
        self.total = 1
        self.epochs = 1
        self.last = -math.inf
        self.mark = None  # (iteration, time) at the end of the warm-up steps
        self.test_acc = math.nan
        self.tty = stream.isatty()

    def eta(self, iteration: int, now: float) -> float:
        """Seconds left at the rate measured since the warm-up, NaN before there is one."""
        if self.mark is None or iteration <= self.mark[0] or now <= self.mark[1]:
            return math.nan
        rate = (iteration - self.mark[0]) / (now - self.mark[1])
        return (self.total - iteration) / rate

    def __call__(self, e) -> None:
        if e.kind == "started":
            self.total = max(e.total_steps, 1)
            self.epochs = e.config["epochs"]
            self.last, self.mark = -math.inf, None
            print(f"bnviz: training on {e.device}, {e.data}; {e.n_params:,} parameters",
                  file=self.stream)
        elif e.kind == "eval":
            self.test_acc = e.test_acc
        elif e.kind == "step":
            now = self.clock()
            if self.mark is None and e.iteration >= self.WARM_UP_STEPS:
                self.mark = (e.iteration, now)
            if now - self.last < (0.2 if self.tty else 5.0) and e.iteration < self.total:
                return
            self.last = now
            frac = e.iteration / self.total
            eta = self.eta(e.iteration, now)
            bar = "#" * int(frac * self.width)
            line = (f"epoch {min(int(e.epoch) + 1, self.epochs)}/{self.epochs} "
                    f"[{bar:<{self.width}}] {frac:4.0%} loss {e.loss:.3f} "
                    f"test acc {'—' if math.isnan(self.test_acc) else f'{self.test_acc:.3f}'}"
                    f" ETA {'    —' if math.isnan(eta) else f'{eta:4.0f}s'}")
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
        self.columns = metric_columns()
        self.w = csv.DictWriter(self.f, self.columns, extrasaction="ignore")
        self.w.writeheader()
        self.sf = open(out / "snapshots.csv", "w", newline="")
        self.sw = csv.writer(self.sf)
        self.sw.writerow(SNAPSHOT_COLUMNS)

    def __call__(self, e) -> None:
        if e.kind == "snapshot":
            for layer, stats in e.layers.items():
                for stat, values in stats.items():
                    self.sw.writerows((e.iteration, f"{e.epoch:.4f}", layer, stat, c, repr(float(v)))
                                      for c, v in enumerate(values))
        elif e.kind == "step":
            self.w.writerow(dict(kind="step", iteration=e.iteration, epoch=f"{e.epoch:.4f}",
                                 loss=e.loss, acc=e.acc))
        elif e.kind == "eval":
            row = {k: getattr(e, k) for k in self.columns[len(STEP_FIELDS):] if hasattr(e, k)}
            row.update({f"acc_{m}": v for m, v in e.by_mode.items()})
            row.update(e.metrics)
            self.w.writerow(dict(kind="eval", iteration=e.iteration, epoch=f"{e.epoch:.4f}",
                                 **row))
        elif e.kind == "ended":
            self.f.close()
            self.sf.close()
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
    cfg = config_or_none(args)
    if cfg is None:
        return 2
    from bnviz.runs.store import RunStore, StoreError
    from bnviz.runs.training import train_record  # torch import only when training
    listeners = [] if args.quiet else [ProgressBar()]
    if args.out:
        listeners.append(RunFiles(Path(args.out), cfg))
    record = train_record(cfg, session="cli", listeners=listeners)
    s = record.summary
    if not args.no_store:
        try:
            store = RunStore()
            store.save(record.view())
            print(f"bnviz: stored as run {record.run_id} in {store.path}", file=sys.stderr)
        except StoreError as e:
            print(f"bnviz: {e}; the run was not stored", file=sys.stderr)
    print(summary_line(s))
    return 0 if s["status"] == "finished" else 1


GRID_VALUES = {"batch_size": "sizes", "lr": "lrs", "devices": "ks", "norm_batch": "per_bn"}


def cmd_grid(args: argparse.Namespace) -> int:
    from bnviz.experiments import GRIDS, with_seeds
    from bnviz.runs.grid_runner import run_grid
    from bnviz.runs.results import (BIAS_HEADING, bias_lines, summarize, summary_text,
                                    write_loss_difference)
    from bnviz.runs.store import RunStore, StoreError
    base = config_or_none(args)
    if base is None:
        return 2
    try:
        store = None if args.no_store else RunStore()
    except StoreError as e:
        print(f"bnviz: {e}; results are not stored", file=sys.stderr)
        store = None
    if args.seeds < 1:
        print("bnviz: --seeds must be at least 1", file=sys.stderr)
        return 2
    kw = {}
    if args.values:
        if args.grid not in GRID_VALUES:
            print(f"bnviz: --values does not apply to the {args.grid} grid", file=sys.stderr)
            return 2
        try:
            vals = [float(v) if args.grid == "lr" else int(v) for v in args.values.split(",")]
        except ValueError:
            print(f"bnviz: --values must be comma-separated numbers, got {args.values!r}",
                  file=sys.stderr)
            return 2
        kw[GRID_VALUES[args.grid]] = vals
    if args.norms:
        kw["norms"] = args.norms.split(",")
    if args.norms and args.grid not in ("batch_size", "lr", "norm_batch"):
        print(f"bnviz: --norms does not apply to the {args.grid} grid", file=sys.stderr)
        return 2
    try:
        points = with_seeds(GRIDS[args.grid](base, **kw), args.seeds)
    except ValueError as e:
        print(f"bnviz: {e}", file=sys.stderr)
        return 2
    bad = sorted({m for p in points for m in validate(p.config)})
    if bad:
        print("bnviz: this grid would train configs that are not valid: " + "; ".join(bad),
              file=sys.stderr)
        return 2
    table = run_grid(points, store, reuse=not args.again, jobs=args.jobs,
                     out=Path(args.out) if args.out else None)
    print(summary_text(summarize(table)))
    if args.grid == "bias":
        lines = bias_lines(table, table.attrs.get("views", {}))
        print("\n".join([BIAS_HEADING] + [f"  {line}" for line in lines]))
        if args.out:
            write_loss_difference(Path(args.out), lines)
    if args.grid == "landscape":
        write_landscape(table, args.out)
    if args.grid == "ics":
        write_ics(table, args.out)
    if args.grid == "finetune":
        write_finetune(table, args.out)
    if args.grid == "weight_decay":
        from bnviz import readings
        _reading(lambda: readings.weight_decay_text(readings.weight_decay(summarize(table))))
    if args.grid in ("lite", "placement", "train_only"):  # readings; distributions in evals.csv
        from bnviz import readings
        for c in getattr(readings, args.grid)(summarize(table)).comparisons:
            print(f"  {c.text()}")
    return 0


def _reading(text) -> None:
    """Print a sweep's reading; a grid trimmed by flags lacks an arm: the CSVs still tell."""
    try:
        print(text())
    except KeyError as e:
        print(f"bnviz: no reading ({e})", file=sys.stderr)


def _write_csvs(table, out: str | None, files) -> None:
    """With --out, each (file name, columns, rows(runs)) of `files` over the grid's finished
    runs, as (arm, label, RunView)."""
    if not out:
        return
    views = table.attrs.get("views", {})
    runs = [(r.arm, r.run, views[r.run_id]) for r in table.itertuples()
            if views.get(r.run_id) is not None]
    for name, cols, rows in files:
        with open(Path(out) / name, "w", newline="") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(rows(runs))


def write_landscape(table, out: str | None) -> None:
    """The landscape sweep's reading, and with --out its probes over training
    (landscape.csv: one row per run and evaluation; bnviz.landscape)."""
    from bnviz import landscape, readings
    from bnviz.runs.results import summarize
    _reading(lambda: readings.landscape_text(readings.landscape(summarize(table))))
    _write_csvs(table, out, [("landscape.csv", landscape.CSV_COLUMNS, landscape.csv_rows)])


def write_ics(table, out: str | None) -> None:
    """The ICS sweep's reading, and with --out ics.csv: ICS per layer and the layers' input
    percentiles at every evaluation of every run (bnviz.ics)."""
    from bnviz import ics, readings
    from bnviz.runs.results import summarize
    _reading(lambda: readings.ics_text(readings.ics(summarize(table))))
    _write_csvs(table, out, [("ics.csv", ics.CSV_COLUMNS, ics.csv_rows)])


def write_finetune(table, out: str | None) -> None:
    """The fine-tuning sweep's reading, and with --out finetune_drift.csv (the running-mean
    drift per layer at every snapshot) and finetune_accuracy.csv (accuracy on part A and
    part B at every evaluation) of every run (bnviz.drift)."""
    from bnviz import drift, readings
    from bnviz.runs.results import summarize

    def text() -> str:
        r = readings.finetune(summarize(table))
        return "\n".join([readings.finetune_text(r)] + [c.text() for c in r.comparisons])
    _reading(text)
    _write_csvs(table, out, [
        ("finetune_drift.csv", drift.DRIFT_COLUMNS, drift.drift_csv_rows),
        ("finetune_accuracy.csv", drift.ACCURACY_COLUMNS, drift.accuracy_csv_rows)])


def cmd_inside(args: argparse.Namespace) -> int:
    """What one BN layer computes on one real batch: shapes, axes, counts, statistics."""
    from bnviz.inside import layer_io, shown_norm
    cfg = config_or_none(args)
    if cfg is None:
        return 2
    cfg = cfg.replace(norm=shown_norm(cfg.norm))  # the Inside page's rule
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnviz",
                                description="Train LeNet on Fashion-MNIST and watch BatchNorm.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one config")
    add_knob_flags(t)
    t.add_argument("--out", help="folder for config.json, metrics.csv, snapshots.csv (gamma, "
                                 "beta and running statistics per channel over training) and "
                                 "summary.json")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-store", action="store_true", help="do not keep the run in the store")
    t.set_defaults(func=cmd_train)
    sub.add_parser("presets", help="list presets").set_defaults(func=cmd_presets)
    i = sub.add_parser("inside", help="one real batch through BN layers: shapes, axes, counts")
    add_knob_flags(i)
    i.add_argument("--sites", default="conv1,fc1", help="comma-separated: conv1,conv2,fc1,fc2")
    i.add_argument("--channels", type=int, default=6, help="channels to print per layer")
    i.set_defaults(func=cmd_inside)
    from bnviz.experiments import DEFAULT_SEEDS, GRIDS
    for name, grid_help in (("ablation", "d2l's BN ablation grid (10 runs)"),
                            ("sweep", "a sweep: " + ", ".join(sorted(GRIDS)))):
        g = sub.add_parser(name, help=grid_help)
        if name == "sweep":
            g.add_argument("grid", choices=sorted(GRIDS))
        else:
            g.set_defaults(grid="ablation")
        add_knob_flags(g)
        g.add_argument("--out", help="folder for results.csv (one row per run) and "
                                     "summary.csv (mean, 95%% CI and n per configuration)")
        g.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                       help="runs per configuration, seeds SEED, SEED+1, ... paired across "
                            f"configurations (default {DEFAULT_SEEDS})")
        if name == "sweep":
            g.add_argument("--values", help="comma-separated values to sweep (batch sizes, "
                                            "lrs, device counts, or examples per BN for "
                                            "norm_batch)")
            g.add_argument("--norms", help="comma-separated norm kinds (batch_size, lr, "
                                           "norm_batch)")
        else:
            g.set_defaults(values=None, norms=None)
        g.add_argument("--again", action="store_true", help="retrain runs already stored")
        g.add_argument("--jobs", type=int, default=1,
                       help="train this many runs at once in separate processes")
        g.add_argument("--no-store", action="store_true", help="do not use the run store")
        g.set_defaults(func=cmd_grid)
    from bnviz.library.command import add_library_command
    add_library_command(sub)
    from bnviz.check_bn import add_check_bn_command
    add_check_bn_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads = os.environ.get("BNVIZ_TORCH_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        # One thread per process is far safer when several trainings share few cores:
        # OpenMP threads spinning against each other slow every process down 10x or more.
        import torch
        torch.set_num_threads(int(threads))
    try:
        return args.func(args)
    except BrokenPipeError:  # `bnviz train ... | head -1`: the reader left, nothing is wrong
        # Python's recipe: point stdout at devnull so the flush at exit cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
