"""Grid results as tables: one row per run, and one row per configuration with mean, 95% CI
and n over seeds. Shared by the CLI (results.csv, summary.csv), the pages and the findings."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bnviz.experiments import METRICS, GridPoint, result_row, varying_knobs
from bnviz.stats import Estimate, mean_ci


def runs_table(points: list[GridPoint], views: list) -> pd.DataFrame:
    """One row per run: its label, a column for every knob the grid varies (seed included),
    status and metrics. `views[i]` is the RunView of `points[i]` or None."""
    varying = varying_knobs(points)
    rows = []
    for p, v in zip(points, views):
        row = result_row(p.label, v)
        row.update({k: getattr(p.config, k) for k in varying})
        row.setdefault("seed", p.config.seed)
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration label (in first-seen order): n finished seeds, how many runs
    ended badly (diverged/failed), and per metric its mean and 95% CI half-width (`<m>_ci`,
    Student t over seeds; NaN with one seed). Columns that are the same within a label (the
    knobs the grid varies, other than seed) are carried over."""
    rows = []
    knob_cols = [c for c in table.columns if c not in METRICS
                 and not c.startswith(("fluct", "final_"))
                 and c not in ("run", "status", "run_id", "seed")]
    for label, d in table.groupby("run", sort=False):
        ok = d[d.status == "finished"]
        row = {"run": label}
        for c in knob_cols:
            if d[c].nunique(dropna=False) == 1:
                row[c] = d[c].iloc[0]
        row.update(n=len(ok), runs=len(d),
                   ended_badly=int(d.status.isin(["diverged", "failed"]).sum()))
        for m in METRICS + tuple(c for c in table.columns if c.startswith(("fluct_", "final_"))):
            e = mean_ci(ok[m]) if m in ok else Estimate(math.nan, math.nan, 0)
            row[m], row[f"{m}_ci"] = e.mean, e.half
        rows.append(row)
    return pd.DataFrame(rows)


def estimate(summary: pd.DataFrame, label: str, metric: str = "test_acc") -> Estimate:
    r = summary[summary.run == label]
    if r.empty:
        return Estimate(math.nan, math.nan, 0)
    r = r.iloc[0]
    return Estimate(float(r[metric]), float(r[f"{metric}_ci"]), int(r["n"]))


def summary_text(summary: pd.DataFrame) -> str:
    """The per-configuration table as text: mean ± 95% CI half-width and n for each metric."""
    def cell(r, m):
        if r["n"] == 0 or r[m] != r[m]:
            return "–"
        return f"{r[m]:.3f}" + ("" if r[f"{m}_ci"] != r[f"{m}_ci"] else f" ± {r[f'{m}_ci']:.3f}")
    cols = ("train_loss", "train_acc", "test_acc_running", "test_acc_precise")
    head = ["configuration", "n", "train loss", "train acc", "test acc (running)",
            "test acc (PreciseBN)"]
    rows = [[r["run"], f"{r['n']}/{r['runs']}"] + [cell(r, m) for m in cols]
            for _, r in summary.iterrows()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [head, *rows]]
    return "\n".join(lines + ["(mean ± 95% CI half-width over seeds, Student t; n = finished "
                               "runs / runs)"])


BIAS_HEADING = "largest |training loss with bias − without| (float32), per seed:"


def bias_lines(table: pd.DataFrame, views: dict) -> list[str]:
    """Per seed of a bias grid: how far apart the two arms' training losses ever were.
    `views` maps run ids to RunViews."""
    from bnviz.bias import loss_difference
    lines = []
    for seed in sorted(set(table.seed)):
        on = table[(table.seed == seed) & table.bias]
        off = table[(table.seed == seed) & ~table.bias]
        if len(on) and len(off):
            a, b = views[on.run_id.iloc[0]], views[off.run_id.iloc[0]]
            lines.append(f"seed {seed}: {loss_difference(a, b, 20):.1e} over the first 20 "
                         f"steps, {loss_difference(a, b):.1e} over the whole run")
    return lines


def write_loss_difference(out: Path, lines: list[str]) -> None:
    """out/loss_difference.txt, which scripts/findings.py quotes in the README."""
    (out / "loss_difference.txt").write_text(", ".join(lines) + "\n")
