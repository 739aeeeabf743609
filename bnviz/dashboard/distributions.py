"""Charts of what the activations see over training (bnviz/activations.py): one run's
percentile bands per arm, and a per-channel statistic over seeds (mean and 95% CI)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bnviz import activations
from bnviz.dashboard import charts
from bnviz.dashboard import compare
from bnviz.i18n import N_, _

# bnviz/activations.py's SIDE_LABEL and STAT_LABEL, marked for the catalogue here, where they are
# shown (its percentiles' labels, "5th percentile" ..., are one template: stat_label).
_MARKED = (N_("activation input"), N_("activation output"), N_("mean of channel means"),
           N_("sd of channel means"), N_("mean channel variance"), N_("fraction saturated"))


def side_label(side: str) -> str:
    return _(activations.SIDE_LABEL[side])


def stat_label(stat: str) -> str:
    """A statistic's label in the session's language (activations.STAT_LABEL's words)."""
    if stat[:1] == "p" and stat[1:].isdigit():
        return _("{q}th percentile").format(q=stat[1:])
    return _(activations.STAT_LABEL[stat])


def frame(view, site: str, side: str):
    """One run's statistics at one site and side over training: a DataFrame with iteration,
    epoch and one column per statistic (empty when the run did not record them)."""
    ev = view.evals_frame() if callable(getattr(view, "evals_frame", None)) else pd.DataFrame()
    cols = {activations.metric_id(site, side, s): s for s in activations.stats_of(side)}
    have = [c for c in cols if c in ev]
    if ev.empty or not have:
        return pd.DataFrame(columns=["iteration", "epoch", *cols.values()])
    return ev[["iteration", "epoch", *have]].rename(columns=cols)


def views_by_arm(table: pd.DataFrame, get) -> dict[str, list]:
    """{arm label: [RunView of each finished seed]} from a grid's runs table; `get` maps a
    run id to its view (ui.manager().get)."""
    out: dict[str, list] = {}
    for row in table.itertuples():
        v = get(row.run_id) if row.run_id else None
        if v is not None and v.status == "finished":
            out.setdefault(row.run, []).append(v)
    return out


def arm_curves(by_arm: dict[str, list], column: str) -> pd.DataFrame:
    """(group, epoch, mean, lo, hi, n) of an eval column over training, one group per arm
    (named by its label): the mean over its seeds and the 95% CI (compare.curves)."""
    parts = []
    for label, views in by_arm.items():
        c = compare.curves(views, column, True)
        if not c.empty:
            parts.append(c.assign(group=label))
    return pd.concat(parts) if parts else pd.DataFrame(
        columns=["group", "epoch", "mean", "lo", "hi", "n"])


def stat_curves(by_arm: dict[str, list], site: str, side: str, stat: str) -> pd.DataFrame:
    return arm_curves(by_arm, activations.metric_id(site, side, stat))


def stat_figure(by_arm, site: str, side: str, stat: str, revision: str = "") -> go.Figure:
    title = _("{site}, {side}: {stat} over training (mean and 95% CI of the seeds)").format(
        site=site, side=side_label(side), stat=stat_label(stat))
    return charts.band_figure(stat_curves(by_arm, site, side, stat), title, stat_label(stat),
                              revision)


def percentile_figure(runs: dict[str, object], site: str, side: str,
                      revision: str = "") -> go.Figure:
    """One panel per arm (one run each): the median of every value at this activation over
    training, with its 25–75 % and 5–95 % bands."""
    labels = list(runs)
    fig = make_subplots(rows=1, cols=max(1, len(labels)), shared_yaxes=True,
                        subplot_titles=[_(str(label)) for label in labels] or None)
    for j, label in enumerate(labels, start=1):
        f = frame(runs[label], site, side)
        if f.empty:
            continue
        c = charts.PALETTE[(j - 1) % len(charts.PALETTE)]
        shown = _(str(label))
        for lo, hi, alpha in (("p5", "p95", 0.15), ("p25", "p75", 0.35)):
            fig.add_scatter(x=f.epoch, y=f[hi], mode="lines", line=dict(width=0),
                            showlegend=False, hoverinfo="skip", row=1, col=j)
            fig.add_scatter(x=f.epoch, y=f[lo], mode="lines", line=dict(width=0),
                            fill="tonexty", fillcolor=charts._rgba(c, alpha),
                            name=f"{lo[1:]}–{hi[1:]} %", legendgroup=f"{lo}{hi}",
                            showlegend=j == 1, row=1, col=j,
                            hovertemplate=f"{lo}–{hi}: %{{y:.3f}}<extra>{shown}</extra>")
        fig.add_scatter(x=f.epoch, y=f.p50, mode="lines", line=dict(color=c, width=2),
                        name=_("median"), legendgroup="median", showlegend=j == 1, row=1,
                        col=j, hovertemplate=_("median %{y:.3f} at epoch %{x:.2f}")
                        + f"<extra>{shown}</extra>")
        fig.update_xaxes(title=_("epoch"), row=1, col=j)
    fig.update_yaxes(title=_("value at the {side}").format(side=side_label(side)), row=1, col=1)
    title = _("{site}: every value at the {side} over training (median, 25–75 % and 5–95 %; "
              "one seed)").format(site=site, side=side_label(side))
    return charts._layout(fig, title, revision, empty=not labels)
