"""The ICS page's frames and chart: ICS and accuracy curves over seeds, and percentiles of a
layer's input over training, one panel per arm (from the runs' evaluations, bnviz.ics)."""
from __future__ import annotations

import pandas as pd
from plotly.subplots import make_subplots

from bnviz import ics
from bnviz.dashboard.charts import LAYER_COLORS, _layout, _rgba
from bnviz.i18n import _
from bnviz.stats import mean_ci


def distribution_figure(frames: dict[str, pd.DataFrame], title: str,
                        revision: str = "") -> "object":
    """One panel per arm (label → frame with epoch, p5, p25, p50, p75, p95): the 5–95% and
    25–75% bands and the median over training, on a shared y axis, so a distribution that
    shifts (noisy BN) and one that stays put can be seen side by side."""
    names = list(frames) or [""]
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True,
                        subplot_titles=[_(str(n)) for n in names])
    empty = True
    for j, name in enumerate(names, start=1):
        d = frames.get(name)
        if d is None or d.empty:
            continue
        empty = False
        c = LAYER_COLORS[(j - 1) % len(LAYER_COLORS)]
        for lo, hi, alpha in (("p5", "p95", 0.15), ("p25", "p75", 0.35)):
            fig.add_scatter(x=d["epoch"], y=d[hi], mode="lines", line=dict(width=0),
                            showlegend=False, hoverinfo="skip", row=1, col=j)
            fig.add_scatter(x=d["epoch"], y=d[lo], mode="lines", line=dict(width=0),
                            fill="tonexty", fillcolor=_rgba(c, alpha),
                            name=f"{lo[1:]}–{hi[1:]}%", showlegend=j == 1, row=1, col=j)
        fig.add_scatter(x=d["epoch"], y=d["p50"], mode="lines+markers", line=dict(color=c),
                        name=_("median"), showlegend=j == 1, row=1, col=j)
        fig.update_xaxes(title=_("epoch"), row=1, col=j)
    fig.update_yaxes(title=_("value"), row=1, col=1)
    return _layout(fig, _(title), revision, empty=empty)


def curves(groups: dict, column: str):
    """Long frame (group, epoch, mean, lo, hi, n): per group of runs (label → RunViews, one
    per seed) the mean of `column` at each evaluation and its 95% Student-t interval, as
    bnviz.dashboard.charts.band_figure draws it."""
    rows = []
    for group, views in groups.items():
        by_epoch: dict[float, list[float]] = {}
        for v in views:
            if v is None:
                continue
            for epoch, x in ics.series(v, column):
                by_epoch.setdefault(epoch, []).append(x)
        for epoch in sorted(by_epoch):
            e = mean_ci(by_epoch[epoch])
            half = 0.0 if e.half != e.half else e.half
            rows.append(dict(group=group, epoch=epoch, mean=e.mean, lo=e.mean - half,
                             hi=e.mean + half, n=e.n))
    return pd.DataFrame(rows, columns=["group", "epoch", "mean", "lo", "hi", "n"])


def input_percentiles(view, site: str):
    """Frame (epoch, p5, p25, p50, p75, p95) of the input that `site`'s activation passes to
    the next layer, at every evaluation of one run (empty without activation statistics)."""
    rows = []
    for e in view.evals:
        m = e.get("metrics") or {}
        ps = [m.get(ics.input_metric(site, p)) for p in ics.PERCENTILES]
        if all(p is not None and p == p for p in ps):
            rows.append(dict(epoch=round(float(e["epoch"]), 4),
                             **dict(zip(ics.PERCENTILES, ps))))
    return pd.DataFrame(rows, columns=["epoch", *ics.PERCENTILES])
