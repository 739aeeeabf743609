"""Plotly figures built from a run's frames. No streamlit here: the CLI and exports reuse them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bnviz.i18n import N_, _
from bnviz.metrics import EVAL_MODES

MAX_POINTS = 1500  # per trace: a long run stays cheap to send every second
COLORS = {"train": "#1f77b4", "test": "#d62728", "gap": "rgba(214,39,40,0.12)",
          "running": "#d62728", "precise": "#2ca02c", "batch": "#9467bd"}
LAYER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
# Every figure's font (set once, in _layout): plotly.js's default stack, then CJK fonts, so the
# Chinese titles, legends and hover texts find a font with their glyphs on any system.
FONT_FAMILY = ('"Open Sans", verdana, arial, "Noto Sans CJK SC", "Noto Sans SC", '
               '"Source Han Sans SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", '
               'sans-serif')


def thin(df: pd.DataFrame, n: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row (keeping the last) so that at most about n remain."""
    if len(df) <= n:
        return df
    idx = np.unique(np.r_[np.linspace(0, len(df) - 1, n).astype(int), len(df) - 1])
    return df.iloc[idx]


def ema(values: pd.Series, smoothing: float) -> pd.Series:
    """TensorBoard-style smoothing: 0 = raw, 0.99 = very smooth, bias-corrected at the start."""
    if smoothing <= 0 or values.empty:
        return values
    return values.ewm(alpha=1 - smoothing, adjust=True).mean()


def _layout(fig: go.Figure, title: str, revision: str, height: int = 340,
            empty: bool = False) -> go.Figure:
    if empty:
        fig.add_annotation(text=_("waiting for data…"), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(color="grey"))
    fig.update_layout(title=dict(text=title, x=0.01, font_size=15), height=height,
                      font=dict(family=FONT_FAMILY),
                      margin=dict(l=50, r=20, t=45, b=40), uirevision=revision,
                      legend=dict(orientation="h", y=-0.22, x=0), hovermode="x unified")
    return fig


BACKGROUND = "rgba(120,120,120,0.35)"


_MISSING = object()
_BACKGROUND_XY: dict[tuple, tuple | None] = {}  # (run, curve, length, smoothing) -> (x, y)


def _background(fig: go.Figure, runs: list, y, name: str, dash: str | None = None,
                key: tuple = ()) -> None:
    """Faded curves of other runs (the results library's seeds of this configuration), drawn
    first so the live run's are on top; `y(run)` gives (x, y) or None. The curves are
    computed once per run and `key` (the live chart is rebuilt every second while training;
    the finished runs behind it do not change)."""
    first = True
    for r in runs:
        k = (r.run_id, len(r.steps), len(r.evals), *key)
        xy = _BACKGROUND_XY.get(k, _MISSING)  # one lookup: safe beside other sessions
        if xy is _MISSING:
            xy = y(r)
            if len(_BACKGROUND_XY) > 256:
                _BACKGROUND_XY.clear()
            _BACKGROUND_XY[k] = xy
        if xy is None:
            continue
        fig.add_scatter(x=xy[0], y=xy[1], mode="lines", name=name, legendgroup="background",
                        showlegend=first, hoverinfo="skip",
                        line=dict(color=BACKGROUND, width=1.5, dash=dash))
        first = False


def loss_figure(steps: pd.DataFrame, smoothing: float = 0.9, revision: str = "",
                background: list | None = None) -> go.Figure:
    """`background`: RunViews drawn faded behind (their smoothed loss)."""
    fig = go.Figure()

    def bg_loss(r):
        d = r.steps_frame()
        if d.empty:
            return None
        d = thin(d.assign(smooth=ema(d["loss"], smoothing)))
        return d["epoch"], d["smooth"]
    _background(fig, background or [], bg_loss, _bg_name(background), key=("loss", smoothing))
    if not steps.empty:
        s = steps.assign(smooth=ema(steps["loss"], smoothing))
        s = thin(s)
        fig.add_scatter(x=s["epoch"], y=s["loss"], name=_("loss per iteration"), mode="lines",
                        line=dict(color="rgba(31,119,180,0.3)", width=1))
        fig.add_scatter(x=s["epoch"], y=s["smooth"],
                        name=_("smoothed ({smoothing:g})").format(smoothing=smoothing),
                        mode="lines", line=dict(color=COLORS["train"], width=2))
    if not steps.empty:  # a plain trace: plotly shapes cost more to build on every refresh
        fig.add_scatter(x=[steps["epoch"].iloc[0], steps["epoch"].iloc[-1]],
                        y=[np.log(10)] * 2, mode="lines", name=_("chance (ln 10)"),
                        line=dict(dash="dot", color="grey", width=1), hoverinfo="skip")
    fig.update_xaxes(title=_("epoch"))
    fig.update_yaxes(title=_("cross-entropy"), rangemode="tozero")
    return _layout(fig, _("Training loss"), revision)


def _bg_name(runs: list | None) -> str:
    n = len(runs or [])
    if n == 1:
        return _("results library, {n} seed").format(n=n)
    return _("results library, {n} seeds").format(n=n)


def accuracy_figure(steps: pd.DataFrame, evals: pd.DataFrame, smoothing: float = 0.9,
                    revision: str = "", background: list | None = None) -> go.Figure:
    """`background`: RunViews whose test accuracy per evaluation is drawn faded behind."""
    fig = go.Figure()

    def bg_test(r):
        e = r.evals_frame()
        return None if e.empty else (e["epoch"], e["test_acc"])
    _background(fig, background or [], bg_test,
                _("{name}: test acc").format(name=_bg_name(background)), key=("test_acc",))
    if not steps.empty:
        s = thin(steps.assign(smooth=ema(steps["acc"], smoothing)))
        fig.add_scatter(x=s["epoch"], y=s["smooth"], name=_("train batch acc (smoothed)"),
                        mode="lines", line=dict(color=COLORS["train"], width=1, dash="dot"))
    if not evals.empty:
        fig.add_scatter(x=evals["epoch"], y=evals["train_acc"],
                        name=_("train acc (epoch so far)"),
                        mode="lines+markers", line=dict(color=COLORS["train"], width=2))
        fig.add_scatter(x=evals["epoch"], y=evals["test_acc"], name=_("test acc"),
                        mode="lines+markers", line=dict(color=COLORS["test"], width=2),
                        fill="tonexty", fillcolor=COLORS["gap"])
        last = evals.iloc[-1]
        gap = last["train_acc"] - last["test_acc"]
        fig.add_annotation(x=last["epoch"], y=last["test_acc"],
                           text=_("gap {gap:+.3f}").format(gap=gap),
                           showarrow=True, ax=-40, ay=30)
    fig.update_xaxes(title=_("epoch"))
    fig.update_yaxes(title=_("accuracy"), range=[0, 1])
    return _layout(fig, _("Train vs test accuracy (shaded: the train–test gap)"), revision)


# The fluctuation chart's curve of each eval mode (bnviz.metrics.EVAL_MODES).
MODE_CURVES = {"running": N_("test acc, running stats"), "precise": N_("test acc, precise stats"),
               "batch": N_("test acc, batch stats")}


def fluctuation_figure(evals: pd.DataFrame, window: int = 5, revision: str = "") -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if not evals.empty:
        for mode in EVAL_MODES:
            col = f"acc_{mode}"
            if col in evals and evals[col].notna().any():
                fig.add_scatter(x=evals["epoch"], y=evals[col], mode="lines+markers",
                                name=_(MODE_CURVES[mode]) if mode in MODE_CURVES else
                                _("test acc, {mode} stats").format(mode=mode),
                                line=dict(color=COLORS[mode], width=2))
        if not any(f"acc_{m}" in evals for m in EVAL_MODES):
            fig.add_scatter(x=evals["epoch"], y=evals["test_acc"], mode="lines+markers",
                            name=_("test acc"), line=dict(color=COLORS["test"], width=2))
        fig.add_scatter(x=evals["epoch"], y=evals["eval_batch_acc"], mode="markers",
                        name=_("one test batch, eval mode (running stats)"),
                        marker=dict(symbol="circle-open", color="black"))
        fig.add_scatter(x=evals["epoch"], y=evals["train_mode_batch_acc"], mode="markers",
                        name=_("same batch, train mode (its own stats)"),
                        marker=dict(symbol="x", color="#8c564b"))
        std = evals["test_acc"].rolling(window, min_periods=2).std()
        fig.add_scatter(x=evals["epoch"], y=std, mode="lines",
                        name=_("rolling std ({window})").format(window=window),
                        line=dict(color="grey", dash="dash"), secondary_y=True)
    fig.update_xaxes(title=_("epoch"))
    fig.update_yaxes(title=_("test accuracy"), secondary_y=False)
    fig.update_yaxes(title=_("rolling std"), secondary_y=True, rangemode="tozero",
                     showgrid=False, tickformat=".2f")
    return _layout(fig, _("Test-accuracy fluctuation"), revision, empty=evals.empty)


def affine_figure(snapshots: pd.DataFrame, stat: str = "gamma", revision: str = "",
                  other: pd.DataFrame | None = None, other_name: str = "") -> go.Figure:
    """One panel per layer: the spread of `stat` over channels, across training (fan chart:
    min–max and 10–90% bands, mean line). `other` overlays a second run's means."""
    layers = list(dict.fromkeys(snapshots["layer"])) if not snapshots.empty else []
    fig = make_subplots(rows=1, cols=max(len(layers), 1), shared_yaxes=True,
                        subplot_titles=[_("{layer} ({n} channels)").format(
                            layer=l, n=snapshots[snapshots.layer == l].channel.nunique())
                            for l in layers] or [
                            _("no snapshot yet, or no layer with this statistic")])
    for j, layer in enumerate(layers, start=1):
        g = snapshots[snapshots.layer == layer].groupby("epoch")["value"]
        q = g.quantile([0.0, 0.1, 0.9, 1.0]).unstack()
        x, color = q.index, LAYER_COLORS[(j - 1) % 4]
        for lo, hi, alpha, name in ((0.0, 1.0, 0.12, N_("min–max")),
                                    (0.1, 0.9, 0.28, "10–90%")):
            fig.add_scatter(x=x, y=q[hi], mode="lines", line=dict(width=0), showlegend=False,
                            hoverinfo="skip", row=1, col=j)
            fig.add_scatter(x=x, y=q[lo], mode="lines", line=dict(width=0), fill="tonexty",
                            fillcolor=f"rgba(100,100,100,{alpha})", name=_(name),
                            showlegend=j == 1, legendgroup=name, row=1, col=j)
        fig.add_scatter(x=x, y=g.mean(), mode="lines", line=dict(color=color, width=2),
                        name=_("mean"), showlegend=j == 1, legendgroup="mean", row=1, col=j)
        if other is not None and not other.empty:
            o = other[other.layer == layer].groupby("epoch")["value"].mean()
            fig.add_scatter(x=o.index, y=o.values, mode="lines",
                            name=_("mean, {name}").format(name=_(other_name)),
                            line=dict(color="black", dash="dash"), showlegend=j == 1,
                            legendgroup="other", row=1, col=j)
        fig.update_xaxes(title=_("epoch"), row=1, col=j)
    fig.update_yaxes(title=stat, row=1, col=1)
    return _layout(fig, _("{stat} per channel over training, one panel per layer").format(
        stat=stat), revision, height=320)


def distribution_figure(snapshots: pd.DataFrame, stat: str = "gamma", last: int = 8,
                        revision: str = "") -> go.Figure:
    """Violins of `stat` across channels for the last few snapshots of each layer."""
    fig = go.Figure()
    if not snapshots.empty:
        epochs = sorted(snapshots["epoch"].unique())[-last:]
        sub = snapshots[snapshots.epoch.isin(epochs)]
        for j, layer in enumerate(dict.fromkeys(sub["layer"])):
            d = sub[sub.layer == layer]
            fig.add_violin(x=d["epoch"].round(2).astype(str), y=d["value"], name=layer,
                           line_color=LAYER_COLORS[j % 4], points=False, scalemode="width",
                           width=0.8)
        fig.update_layout(violinmode="group")
    fig.update_xaxes(title=_("epoch of snapshot"), type="category")
    fig.update_yaxes(title=stat)
    return _layout(fig, _("{stat} across channels, latest snapshots").format(stat=stat),
                   revision, height=320, empty=snapshots.empty)


def steps_to_csv(steps: pd.DataFrame, evals: pd.DataFrame) -> str:
    """One table for export: step rows and eval rows, tagged by kind."""
    both = pd.concat([steps.assign(kind="step"), evals.assign(kind="eval")], ignore_index=True)
    return both.sort_values(["iteration", "kind"], kind="stable").to_csv(index=False)


# (column, legend name, colour); a page's own `bars` mark their names with N_ (shown with _()).
GRID_BARS = (("train_acc", N_("train acc"), COLORS["train"]),
             ("test_acc_running", N_("test acc, running stats"), COLORS["running"]),
             ("test_acc_precise", N_("test acc, PreciseBN"), COLORS["precise"]))


def _ci(values: pd.Series) -> tuple[float, float, int]:
    from bnviz.stats import mean_ci
    e = mean_ci(values)
    return e.mean, (0.0 if e.half != e.half else e.half), e.n


def grid_bar_figure(table: pd.DataFrame, revision: str = "",
                    bars=GRID_BARS) -> go.Figure:
    """Per configuration (the table's `run` label; one row per run, seeds as rows): the mean
    over seeds as a bar with its 95% Student-t confidence interval, and each seed as a dot."""
    done = table[table.status == "finished"]
    labels = list(dict.fromkeys(done["run"]))
    fig = go.Figure()
    k = len(bars)
    for j, (col, name, color) in enumerate(bars):
        if col not in done or done[col].isna().all():
            continue
        name = _(name)
        stats = [_ci(done.loc[done.run == lab, col]) for lab in labels]
        # bars at 0..n-1 (labelled by tick text) so the seed dots can sit on their own bar
        fig.add_bar(x=list(range(len(labels))), y=[m for m, _, _ in stats],
                    name=_("{name} (mean, 95% CI)").format(name=name),
                    marker_color=color, offsetgroup=str(j), opacity=0.75,
                    error_y=dict(type="data", array=[h for _, h, _ in stats], visible=True,
                                 color="black", thickness=1.5),
                    customdata=[[n, h] for _, h, n in stats],
                    hovertemplate="%{x}: %{y:.3f} ± %{customdata[1]:.3f} (n = %{customdata[0]})"
                                  "<extra>" + name + "</extra>")
        # seeds as dots, offset onto their bar: category index + bar offset within the group
        xs = []
        for lab in done["run"]:
            xs.append(labels.index(lab) + (j - (k - 1) / 2) * 0.8 / k)
        fig.add_scatter(x=xs, y=done[col], mode="markers",
                        name=_("{name}, one seed each").format(name=name),
                        marker=dict(color="black", size=5, symbol="circle-open"),
                        legendgroup=f"dots{j}", showlegend=j == 0,
                        text=[_("seed {seed}").format(seed=s)
                              for s in done.get("seed", [""] * len(done))],
                        hovertemplate="%{text}: %{y:.3f}<extra></extra>")
    fig.update_layout(barmode="group", bargap=0.2, bargroupgap=0.0)
    fig.update_xaxes(tickvals=list(range(len(labels))), ticktext=[_(lab) for lab in labels],
                     type="linear",
                     range=[-0.6, len(labels) - 0.4])
    lo = min([0.0] + [float(done[c].min()) for c, _, _ in bars if c in done and done[c].notna().any()])
    fig.update_yaxes(title=_("accuracy"), range=[min(lo, 0.0), 1])
    return _layout(fig, _("Final accuracy per configuration: bar = mean over seeds, whisker = "
                          "95% CI, ○ = one seed"), revision, height=440, empty=done.empty)


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[:2], 16)},{int(h[2:4], 16)},{int(h[4:], 16)},{alpha})"


def band_figure(curves: pd.DataFrame, title: str, ytitle: str, revision: str = "") -> go.Figure:
    """One line per group (mean over seeds) with its band (lo–hi: the 95% CI in compare.curves)
    when it has several runs."""
    fig = go.Figure()
    if curves.empty:  # the runs have started but not measured anything yet
        return _layout(fig, _(title), revision, empty=True)
    for i, (group, d) in enumerate(curves.groupby("group", sort=False)):
        c = PALETTE[i % len(PALETTE)]
        if d["n"].max() > 1:
            fig.add_scatter(x=d["epoch"], y=d["hi"], mode="lines", line=dict(width=0),
                            showlegend=False, hoverinfo="skip")
            fig.add_scatter(x=d["epoch"], y=d["lo"], mode="lines", line=dict(width=0),
                            fill="tonexty", fillcolor=_rgba(c, 0.18), showlegend=False,
                            hoverinfo="skip")
        n = int(d["n"].max())
        fig.add_scatter(x=d["epoch"], y=d["mean"], mode="lines+markers", line=dict(color=c),
                        name=_("{group} (mean of {n})").format(group=_(group), n=n) if n > 1
                        else _(group))
    fig.update_xaxes(title=_("epoch"))
    fig.update_yaxes(title=_(ytitle))
    return _layout(fig, _(title), revision, empty=curves.empty)


def lines_figure(df: pd.DataFrame, x: str, y: str, by: str, title: str, ytitle: str,
                 revision: str = "", facet: str | None = None) -> go.Figure:
    facets = list(dict.fromkeys(df[facet])) if facet and not df.empty else [None]
    fig = make_subplots(rows=1, cols=len(facets), shared_yaxes=True,
                        subplot_titles=[_(str(f)) for f in facets] if facet else None)
    names = list(dict.fromkeys(df[by])) if not df.empty else []
    for j, f in enumerate(facets, start=1):
        d = df if f is None else df[df[facet] == f]
        for i, name in enumerate(names):
            dd = d[d[by] == name]
            fig.add_scatter(x=dd[x], y=dd[y], mode="lines", name=_(str(name)), legendgroup=name,
                            showlegend=j == 1, line=dict(color=PALETTE[i % len(PALETTE)]),
                            row=1, col=j)
        fig.update_xaxes(title=_(x), row=1, col=j)
    fig.update_yaxes(title=_(ytitle), row=1, col=1)
    return _layout(fig, _(title), revision, empty=df.empty)


# A run's status as a chart's hover text says it (bnviz.runs.record's statuses).
STATUS_TEXT = {"diverged": N_("diverged"), "failed": N_("failed")}


def sweep_figure(table: pd.DataFrame, x: str, by: str = "norm", log_x: bool = True,
                 title: str = "", revision: str = "", y: str = "test_acc",
                 ytitle: str = N_("final test accuracy")) -> go.Figure:
    """A metric against a swept knob, one line per `by`: the mean over seeds with its 95%
    Student-t CI as a whisker, each seed as a dot; diverged/failed runs as ✕ at 0."""
    fig = go.Figure()
    groups = table.groupby(by, sort=False) if by and by in table else [("", table)]
    for i, (name, d) in enumerate(groups):
        c = PALETTE[i % len(PALETTE)]
        ok = d[d.status == "finished"]
        xs = sorted(ok[x].unique())
        stats = [_ci(ok.loc[ok[x] == v, y]) for v in xs]
        fig.add_scatter(x=xs, y=[m for m, _, _ in stats], mode="lines+markers",
                        name=_("{name} (mean, 95% CI)").format(name=_(str(name)))
                        if name != "" else _("mean, 95% CI"),
                        line=dict(color=c), legendgroup=str(name),
                        error_y=dict(type="data", array=[h for _, h, _ in stats], visible=True),
                        customdata=[[n, h] for _, h, n in stats],
                        hovertemplate="%{x}: %{y:.3f} ± %{customdata[1]:.3f} "
                                      "(n = %{customdata[0]})")
        if len(ok) > len(xs):  # several seeds: show each
            fig.add_scatter(x=ok[x], y=ok[y], mode="markers", showlegend=False,
                            legendgroup=str(name), marker=dict(color=c, size=5, opacity=0.5),
                            text=[_("seed {seed}").format(seed=s)
                                  for s in ok.get("seed", [""] * len(ok))],
                            hovertemplate="%{text}: %{y:.3f}<extra></extra>")
        bad = d[d.status.isin(["diverged", "failed"])]
        if not bad.empty:
            fig.add_scatter(x=bad[x], y=[0.0] * len(bad), mode="markers",
                            name=_("{name}: diverged/failed").format(name=_(str(name))),
                            marker=dict(symbol="x", size=12, color=c),
                            text=[_(STATUS_TEXT.get(s, s)) for s in bad["status"]],
                            hovertemplate="%{x}: %{text}")
    fig.update_xaxes(title=x, type="log" if log_x else "linear")
    if log_x and len(table) and x in table and not table[x].isna().all():
        # an empty log axis would span 0.1 to 1e6: frame the values to come
        v = table[x].astype(float)
        fig.update_xaxes(range=[np.log10(v.min()) - 0.15, np.log10(v.max()) + 0.15])
    fig.update_yaxes(title=_(ytitle), range=[-0.03, 1])
    title = _(title) if title else _("Test accuracy vs {x}").format(x=x)
    return _layout(fig, _("{title} (mean over seeds, whisker = 95% CI, dots = seeds)").format(
        title=title), revision, height=400, empty=table[table.status == "finished"].empty)


def channel_stats_figure(means, vars_, whole_mean, whole_var, revision: str = "") -> go.Figure:
    """Per-channel mean and variance on each device's slice vs the whole batch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("mean per channel"),
                                                        _("variance per channel")])
    ch = np.arange(means.shape[1])
    for d in range(means.shape[0]):
        c = PALETTE[d % len(PALETTE)]
        fig.add_bar(x=ch, y=means[d], name=_("device {d}").format(d=d), marker_color=c,
                    legendgroup=str(d), row=1, col=1)
        fig.add_bar(x=ch, y=vars_[d], name=_("device {d}").format(d=d), marker_color=c,
                    legendgroup=str(d),
                    showlegend=False, row=1, col=2)
    for col, v in ((1, whole_mean), (2, whole_var)):
        fig.add_scatter(x=ch, y=v, mode="markers", name=_("whole batch (SyncBatchNorm)"),
                        marker=dict(symbol="line-ew-open", size=22, color="black",
                                    line=dict(width=3)), showlegend=col == 1, row=1, col=col)
        fig.update_xaxes(title=_("channel"), row=1, col=col)
    fig.update_layout(barmode="group")
    return _layout(fig, _("What each device normalises with, for one real batch"), revision,
                   height=360)


def histogram_figure(values: np.ndarray, title: str, xtitle: str, revision: str = "") -> go.Figure:
    fig = go.Figure()
    fig.add_histogram(x=np.asarray(values).ravel(), nbinsx=60, marker_color=COLORS["train"])
    fig.update_xaxes(title=_(xtitle))
    fig.update_yaxes(title=_("count"))
    return _layout(fig, _(title), revision, height=300)
