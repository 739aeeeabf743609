"""Frames for comparing runs: labels from config differences, final metrics, seed bands."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnviz.config import differing_knobs as config_differing_knobs
from bnviz.i18n import _
from bnviz.metrics import grid_metrics, metric
from bnviz.stats import mean_ci

IGNORED = ("seed", "device")  # differences that do not make another experiment


def differing_knobs(views) -> list[str]:
    return config_differing_knobs(v.config for v in views)


def label(view, knobs: list[str]) -> str:
    parts = [f"{k}={getattr(view.config, k)}" for k in knobs if k not in IGNORED]
    return ", ".join(parts) or _("same config")


def metrics_table(views) -> pd.DataFrame:
    knobs = differing_knobs(views)
    rows = []
    for v in views:
        row = {"run_id": v.run_id, "status": v.status}
        row.update({k: getattr(v.config, k) for k in knobs})
        row.update({m: metric(m).value(v) for m in grid_metrics()})  # the registry's metrics
        row["data"] = (v.summary or {}).get("data_source", "")
        rows.append(row)
    return pd.DataFrame(rows)


def curves(views, column: str = "test_acc", aggregate: bool = True) -> pd.DataFrame:
    """Long frame (group, epoch, mean, lo, hi, n) of an eval column ("gap" = train − test
    accuracy of each run). With `aggregate`, runs of the same config (any seed) form one group:
    their mean and its 95% Student-t confidence interval (lo, hi; the mean alone for one run)."""
    knobs = [k for k in differing_knobs(views) if k not in IGNORED]
    parts = []
    for v in views:
        e = v.evals_frame()
        if not e.empty and column == "gap":
            e = e.assign(gap=e["train_acc"] - e["test_acc"])
        if e.empty or column not in e:
            continue
        group = label(v, knobs) if aggregate else f"{label(v, knobs)} · {v.run_id[:6]}"
        if not aggregate and "seed" in differing_knobs(views):
            group = _("{group} · seed {seed}").format(group=group, seed=v.config.seed)
        parts.append(pd.DataFrame({"group": group, "epoch": e["epoch"].round(4),
                                   "value": e[column]}))
    if not parts:
        return pd.DataFrame(columns=["group", "epoch", "mean", "lo", "hi", "n"])
    long = pd.concat(parts)
    rows = []
    for (group, epoch), d in long.groupby(["group", "epoch"], sort=False)["value"]:
        e = mean_ci(d)
        half = 0.0 if e.half != e.half else e.half
        rows.append(dict(group=group, epoch=epoch, mean=e.mean, lo=e.mean - half,
                         hi=e.mean + half, n=e.n))
    return pd.DataFrame(rows).sort_values(["group", "epoch"], kind="stable",
                                          key=lambda c: c if c.name == "epoch" else
                                          c.map({g: i for i, g in enumerate(
                                              dict.fromkeys(long["group"]))}))


def loss_curves(views, smoothing: float = 0.9, points: int = 400) -> pd.DataFrame:
    knobs = [k for k in differing_knobs(views) if k not in IGNORED]
    parts = []
    for v in views:
        s = v.steps_frame()
        if s.empty:
            continue
        smooth = s["loss"].ewm(alpha=1 - smoothing).mean() if smoothing > 0 else s["loss"]
        idx = np.unique(np.linspace(0, len(s) - 1, min(points, len(s))).astype(int))
        parts.append(pd.DataFrame({"run": f"{label(v, knobs)} · {v.run_id[:6]}",
                                   "epoch": s["epoch"].iloc[idx].values,
                                   "loss": smooth.iloc[idx].values}))
    return pd.concat(parts) if parts else pd.DataFrame(columns=["run", "epoch", "loss"])


def affine_means(views, stat: str = "gamma") -> pd.DataFrame:
    knobs = [k for k in differing_knobs(views) if k not in IGNORED]
    parts = []
    for v in views:
        f = v.snapshots_frame(stat)
        if f.empty:
            continue
        m = f.groupby(["layer", "epoch"])["value"].mean().reset_index()
        m["run"] = f"{label(v, knobs)} · {v.run_id[:6]}"
        parts.append(m)
    return pd.concat(parts) if parts else pd.DataFrame(columns=["layer", "epoch", "value", "run"])
