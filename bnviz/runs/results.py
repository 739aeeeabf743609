"""Grid results as tables: one row per run, and one row per configuration with mean, 95% CI
and n over seeds. Shared by the CLI (results.csv, summary.csv), the pages and the findings."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bnviz.experiments import GridPoint, result_row, varying_knobs
from bnviz.metrics import format_estimate, grid_metrics, metric
from bnviz.readings import UnknownArm, estimate, row_of  # noqa: F401 - tables' lookups
from bnviz.stats import Estimate, mean_ci


def runs_table(points: list[GridPoint], views: list) -> pd.DataFrame:
    """One row per run: its label, a column for every knob the grid varies (seed included),
    status and metrics. `views[i]` is the RunView of `points[i]` or None."""
    varying = varying_knobs(points)
    rows = []
    for p, v in zip(points, views):
        row = result_row(p.label, v, p.arm)
        row.update({k: getattr(p.config, k) for k in varying})
        row.setdefault("seed", p.config.seed)
        row.setdefault("epochs", p.config.epochs)  # what a findings heading says
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration label (in first-seen order): n finished seeds, how many runs
    ended badly (diverged/failed), and per metric its mean and 95% CI half-width (`<m>_ci`,
    Student t over seeds; NaN with one seed). Columns that are the same within a label (the
    knobs the grid varies, other than seed) are carried over."""
    rows = []
    metrics = grid_metrics()
    knob_cols = [c for c in table.columns if c not in metrics
                 and not c.startswith(("fluct_", "final_"))
                 and c not in ("run", "arm", "status", "run_id", "seed")]
    for label, d in table.groupby("run", sort=False):
        ok = d[d.status == "finished"]
        row = {"run": label, "arm": d["arm"].iloc[0] if "arm" in d else ""}
        for c in knob_cols:
            if d[c].nunique(dropna=False) == 1:
                row[c] = d[c].iloc[0]
        row.update(n=len(ok), runs=len(d),
                   ended_badly=int(d.status.isin(["diverged", "failed"]).sum()))
        for m in metrics + tuple(c for c in table.columns if c.startswith(("fluct_", "final_"))):
            e = mean_ci(ok[m]) if m in ok else Estimate(math.nan, math.nan, 0)
            row[m], row[f"{m}_ci"] = e.mean, e.half
        rows.append(row)
    return pd.DataFrame(rows)


# The columns of the CLI's summary table (every metric is in summary.csv).
TEXT_METRICS = ("train_loss", "train_acc", "test_acc_running", "test_acc_precise")


def summary_text(summary: pd.DataFrame) -> str:
    """The per-configuration table as text: mean ± 95% CI half-width and n for each metric."""
    def cell(r, m):
        return "–" if r["n"] == 0 else format_estimate(r[m], r[f"{m}_ci"], metric(m).digits)
    cols = TEXT_METRICS
    head = ["configuration", "n"] + [metric(m).label for m in cols]
    rows = [[r["run"], f"{r['n']}/{r['runs']}"] + [cell(r, m) for m in cols]
            for _, r in summary.iterrows()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [head, *rows]]
    return "\n".join(lines + ["(mean ± 95% CI half-width over seeds, Student t; n = finished "
                               "runs / runs)"])


BIAS_HEADING = "largest |training loss with bias − without| (float32), per seed:"


def bias_rows(table: pd.DataFrame, views: dict) -> list[tuple[int, float, float]]:
    """Per seed of a bias grid: (seed, largest |loss with bias − without| over the first 20
    steps, over the whole run). `views` maps run ids to RunViews."""
    from bnviz.bias import loss_difference
    rows = []
    for seed in sorted(set(table.seed)):
        on = table[(table.seed == seed) & (table.arm == "bias_on")]
        off = table[(table.seed == seed) & (table.arm == "bias_off")]
        if len(on) and len(off):
            a, b = views[on.run_id.iloc[0]], views[off.run_id.iloc[0]]
            if a is not None and b is not None:
                rows.append((int(seed), loss_difference(a, b, 20), loss_difference(a, b)))
    return rows


def bias_lines(table: pd.DataFrame, views: dict) -> list[str]:
    """bias_rows as the CLI prints them (and the README quotes them)."""
    return [f"seed {seed}: {first:.1e} over the first 20 steps, {whole:.1e} over the whole run"
            for seed, first, whole in bias_rows(table, views)]


def write_loss_difference(out: Path, lines: list[str]) -> None:
    """out/loss_difference.txt, which scripts/findings.py quotes in the README."""
    (out / "loss_difference.txt").write_text(", ".join(lines) + "\n")
