"""Batch size: the normalisation batch (Wu & He's question) at a fixed SGD batch, the SGD batch
as a separate question, and what batch size 1 (and 2) does to BN at training and test time."""
import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from bnviz.dashboard import charts

from bnviz.dashboard import ui
from bnviz import norm_kinds
from bnviz.config import validate
from bnviz.experiments import NORM_BATCH_SGD, GridPoint, batch_size_grid, per_bn_choices
from bnviz.library.catalog import (PER_BN, SGD_NORMS, SGD_SIZES, batch1_config, batch1_points,
                                   norm_batch_points, sgd_batch_points)
from bnviz import readings
from bnviz.runs.results import row_of, summarize
from bnviz.stats import mean_ci
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, page_seeds, run_buttons, seeded
from bnviz.dashboard import cached
from bnviz.dashboard.nav import via_app
from bnviz.i18n import N_, _

via_app()  # first request after a server start: rerun through app.py

PAGE = "batch-size"
SGD = NORM_BATCH_SGD

st.title(_("Batch size"))
st.info(_(ui.BATCH_HELP))
st.markdown(_("Two different batches hide behind \"batch size\": the **SGD batch** (the "
              "examples one step's gradient averages over) and the **normalisation batch** (the "
              "examples one BN layer takes its mean and variance over — per GPU when BN is not "
              "synced). With one device they are the same number; this page separates them."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr"), PAGE)
# GroupNorm with 2 groups, one device: what every statement below assumes, whatever the link.
base = base.replace(groups=2, devices=1)
n_seeds = page_seeds(PAGE)


def _configs_ok(points: list[GridPoint]) -> list[str]:
    """Why any of these configurations cannot be trained (one line per distinct reason)."""
    return list(dict.fromkeys(f"{p.label}: {e}" for p in points for e in validate(p.config)))


METRIC_NAMES = readings.NORM_BATCH_METRICS
Y_TITLES = {"test_acc_running": N_("test acc, running stats"),
            "test_acc_precise": N_("test acc, PreciseBN")}


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def epochs_text(n: int) -> str:
    """"1 epoch", "3 epochs" (Chinese has one form): a count inside a page's sentence."""
    return (_("{n} epoch") if n == 1 else _("{n} epochs")).format(n=n)


def norm_batch_figure(table, m_of: dict, refs: list[str], revision: str = "",
                      y: str = "test_acc_running") -> go.Figure:
    """BN's (and Batch Renorm's) test accuracy against examples per BN (mean, 95% CI, seeds
    as dots), with each
    batch-independent norm as a horizontal reference: its mean (dashed) and 95% CI band.
    `m_of` maps BN's arm ids to m, `refs` are the references' arm ids."""
    bn = table[table.arm.isin(list(m_of))].assign(
        per_bn=lambda d: d.arm.map(m_of),
        series=lambda d: d.arm.map(lambda a: _(norm_kinds.LABELS[a.split("@")[0]])))
    fig = charts.sweep_figure(bn, "per_bn", "series", log_x=True, revision=revision, y=y,
                              ytitle=_(Y_TITLES[y]),
                              title=_("{metric} vs examples per BN, SGD batch {sgd}").format(
                                  metric=sentence(_(METRIC_NAMES[y])), sgd=SGD))
    ms = sorted(set(m_of.values())) or [SGD]
    lo_x, hi_x = ms[0] / 1.3, ms[-1] * 1.3
    styles = (("#2ca02c", "dash"), ("#9467bd", "dot"), ("#8c564b", "dashdot"))
    for i, arm in enumerate(refs):
        ok = table[(table.arm == arm) & (table.status == "finished")]
        if ok.empty:
            continue
        label = ok.run.iloc[0]
        e = mean_ci(ok[y])
        color, dash = styles[i % len(styles)]
        if e.n > 1 and not math.isnan(e.half):
            fig.add_scatter(x=[lo_x, hi_x, hi_x, lo_x], y=[e.lo, e.lo, e.hi, e.hi], fill="toself",
                            mode="lines", line=dict(width=0), hoverinfo="skip",
                            fillcolor=charts._rgba(color, 0.15), legendgroup=label,
                            showlegend=False)
        ci = f" ± {e.half:.3f}" if e.n > 1 else ""
        fig.add_scatter(x=[lo_x, hi_x], y=[e.mean, e.mean], mode="lines", legendgroup=label,
                        name=(_("{label} (mean, 95% CI band; n = {n})") if ci else
                              _("{label} (mean; n = {n})")).format(label=label, n=e.n),
                        line=dict(color=color, dash=dash, width=2),
                        hovertemplate=f"{label}: {e.mean:.3f}{ci}<extra></extra>")
    fig.update_xaxes(title=_("examples per BN (m) — log scale; SGD batch fixed at {sgd}").format(
        sgd=SGD),
                     tickvals=ms, ticktext=[str(m) for m in ms])
    return fig


def warn_chance(summary, arms: tuple[str, ...], what: str, lr_text: str) -> None:
    """Name the configurations whose mean accuracy is at chance (a reading's `at_chance`):
    comparing with them says little, whatever the intervals say."""
    flat = [str(row_of(summary, a)["run"]) for a in arms]
    if flat:
        st.warning(_("At chance level (about 0.1 for 10 classes) in {what}: {runs}. A "
                     "comparison with a run at chance says little about batch size: it may not "
                     "have trained at {lr} in this number of steps (more epochs or a larger "
                     "training set give it more), or, for BN with running statistics, its "
                     "test-time statistics may not fit its weights (compare PreciseBN in the "
                     "table).").format(what=what, runs="; ".join(flat), lr=lr_text))


# -- 1. The normalisation batch --------------------------------------------------------------
st.header(_("Examples per BN (the normalisation batch) at SGD batch {sgd}").format(sgd=SGD))
st.markdown(_(
    "Wu & He (*Group Normalization*, 2018) ask what the **normalisation** batch does: "
    "ResNet-50's ImageNet error with BN rises from 23.6 % at 32 images per GPU to 34.7 % at 2, "
    "while GroupNorm stays near 24.1 %. Here every run steps with **{sgd} examples** (the SGD "
    "batch, and so the number and size of the steps, never changes) and BN takes its "
    "statistics over **m** of them: the {sgd} are cut into {sgd}/m slices that are "
    "normalised separately, exactly what plain BN does on {sgd}/m GPUs (ghost batch norm). "
    "Each conv BN then averages over m·H·W values per channel, each FC BN over m.").format(
        sgd=SGD))
choices = per_bn_choices(SGD)
per_bn = st.multiselect(_("Examples per BN (m)"), list(choices),
                        [m for m in PER_BN if m in choices], key="bs_per_bn")
if 2 not in choices:
    st.caption(_("m = 2 would need {devices} simulated devices; the devices knob goes up to "
                 "{most}, so the smallest m here is {smallest}.").format(
        devices=SGD // 2, most=SGD // min(choices), smallest=min(choices)))
points = norm_batch_points(base, per_bn)
refs = [p.arm for p in points if p.arm.endswith("@ref")]
m_of = {p.arm: SGD // p.config.devices for p in points if p.arm not in refs}
st.markdown(_(
    "**Held fixed** in every run of this chart: the SGD batch ({sgd}), the learning rate "
    "(**{lr:g} for every normalisation** — the base lr, BN's; it is not tuned for "
    "GroupNorm or LayerNorm), **{epochs}**, the "
    "training set and the paired seeds ({seeds} per configuration). **What changes:** only m, "
    "for BN and Batch Renorm. Eval mode uses their running statistics, which each step "
    "updates from one slice "
    "of m examples (as device 0 does under DataParallel).\n\n"
    "**GroupNorm** here has **2 groups** — the only group counts other than 1 that divide 6, "
    "16, 120 and 84, LeNet's widths — and **LayerNorm** is GroupNorm with **1 group** "
    "(nn.LayerNorm at the FC layers). Both normalise each example over its own channels "
    "and positions and never look across the batch, so their training is identical for "
    "every m: each is trained **once**, at batch {sgd} on one device, and drawn as a "
    "horizontal line with its 95% CI band.").format(
        sgd=SGD, lr=base.lr, epochs=epochs_text(base.epochs), seeds=n_seeds))
steps = -(-60000 // SGD) * base.epochs if not base.train_size else None
# The parenthesis after "over the first N steps": the paper's name for it, and how many
# steps these runs take when the page knows (the full training set).
warmup_note = (_("the paper's warm-up; these {epochs}-epoch runs take about {steps} steps")
               .format(epochs=base.epochs, steps=steps) if steps else _("the paper's warm-up"))
st.markdown(_(
    "**Batch Renorm** (Ioffe 2017, *Batch Renormalization*) is the fix proposed for small "
    "normalisation batches: it normalises with the batch statistics, then corrects the "
    "result by r = σ_B/σ and d = (μ_B − μ)/σ against the running averages, clipped to "
    "[1/r_max, r_max] and [−d_max, d_max] and treated as constants in the backward pass, so "
    "training sees roughly what eval mode will. It starts as BN and relaxes r_max from 1 to "
    "{rmax:g} and d_max from 0 to {dmax:g} over the first {warmup} steps ({note}). It is "
    "drawn beside BN at the same m, on the same paired seeds.").format(
        rmax=base.renorm_rmax, dmax=base.renorm_dmax, warmup=base.renorm_warmup,
        note=warmup_note))
bad = _configs_ok(points)
for b in bad:
    st.error(b)
if bad:
    st.caption(_("The train-set size must be at least the SGD batch ({sgd}), or 0 for "
                 "all.").format(sgd=SGD))
grid1 = seeded(points, PAGE)
metric = st.radio(_("Chart"), list(METRIC_NAMES),
                  format_func=lambda m: sentence(_(METRIC_NAMES[m])),
                  horizontal=True, key="bs_metric")
if per_bn and not problems and not bad:
    run_buttons(grid1, base, _("▶ Run the normalisation-batch sweep"), page=PAGE)
    t1 = grid_panel(grid1, "normbatch", chart=lambda t, revision: norm_batch_figure(
        t, m_of, refs, revision, y=metric))
    if finished_all(t1):
        s1 = summarize(t1)
        st.subheader(_("What these runs show"))
        for m in METRIC_NAMES:
            st.markdown(f"**{sentence(_(METRIC_NAMES[m]))}**")
            reading = readings.norm_batch(s1, m)
            for c in reading.comparisons:
                st.write("- " + c.text())
            warn_chance(s1, reading.at_chance, _(METRIC_NAMES[m]),
                        _("lr {lr:g}").format(lr=base.lr))
        st.caption(_("A difference is claimed only where the two 95% confidence intervals over "
                     "seeds do not overlap. Running statistics lag the weights when the lr is "
                     "high, so that accuracy swings from run to run; PreciseBN recomputes BN's "
                     "statistics for the final weights (GroupNorm and LayerNorm have none: both "
                     "columns are the same for them). Wu & He's numbers are for ResNet-50 on "
                     "ImageNet; LeNet on Fashion-MNIST can differ in size and even in "
                     "direction."))
    else:
        st.caption(_("The readings appear here once every run of this chart has finished."))

# -- 2. The SGD batch ------------------------------------------------------------------------
st.header(_("SGD batch size (examples per step), at a fixed number of examples seen"))
st.markdown(_(
    "A **different question**: how the SGD batch itself matters. Every run sees the same "
    "number of examples ({epochs} × the "
    "train-set size), so a small batch takes many more, noisier steps. Here BN's "
    "normalisation batch **is** the SGD batch (one device), so it shrinks with it: two "
    "things change at once, which the chart above keeps apart. Every normalisation uses the "
    "same lr; GroupNorm has 2 groups, LayerNorm 1.").format(epochs=epochs_text(base.epochs)))
c1, c2 = st.columns(2)
sizes = c1.multiselect(_("SGD batch sizes"), [2, 4, 8, 16, 32, 64, 128, 256, 512],
                       list(SGD_SIZES), key="bs_sizes")
norms = c2.multiselect(_("Normalisations"), list(norm_kinds.IDS), list(SGD_NORMS),
                       key="bs_norms", format_func=lambda n: _(norm_kinds.option(n)))
scale = st.toggle(_("Scale the learning rate with the batch size (lr × batch / {sgd})").format(
                      sgd=SGD), True, key="bs_scale_lr",  # a key: a language switch keeps it
                  help=_("Without it, small batches take many more steps at the same lr."))
st.caption((_("lr: {lr:g} × batch / {sgd} (the linear scaling rule), the same for every "
              "normalisation.") if scale else _("lr: {lr:g} at every batch size, for every "
                                                 "normalisation.")).format(lr=base.lr, sgd=SGD))
too_big = [p for p in batch_size_grid(base, sorted(sizes), norms, scale_lr=scale)
           if validate(p.config)]
if too_big:
    st.warning(_("Left out (the train-set size must be at least the batch size): "
                 "{runs}").format(runs=", ".join(dict.fromkeys(p.label for p in too_big))))
sweep = sgd_batch_points(base, sizes, norms, scale_lr=scale)
grid2 = seeded(sweep, PAGE)
if sweep and not problems:
    run_buttons(grid2, base, _("▶ Run the SGD-batch sweep"), page=PAGE)
    t2 = grid_panel(grid2, "sgdbatch", chart=lambda t, revision: charts.sweep_figure(
        t, "batch_size", "norm", title=_("Test accuracy vs SGD batch size (examples per step), "
                                         "same examples seen"), revision=revision))
    if finished_all(t2):
        s2 = summarize(t2)
        reading = readings.sgd_batch(s2)
        if reading.comparisons:
            for c in reading.comparisons:
                norm = c.a.split("@")[0]
                st.write(f"- **{_(norm_kinds.option(norm))}**: " + c.text())
            warn_chance(s2, reading.at_chance, _("test accuracy"), _("the lr of each run"))
            st.caption(_("A difference is claimed only where the 95% confidence intervals over "
                         "seeds do not overlap."))
    else:
        st.caption(_("The readings appear here once every run of this chart has finished."))

# -- 3. Batch size 1 (and 2) -----------------------------------------------------------------
st.header(_("Batch size 1: what BN learns, and what it meets at test time"))
st.markdown(_(
    "With one example, the batch mean *is* the example: after subtracting it every "
    "fully-connected unit is exactly 0. `nn.BatchNorm1d` refuses to train; d2l's "
    "from-scratch BN trains but its FC layers pass on nothing. With BN on the **conv layers "
    "only**, each conv BN normalises one image over its own H×W positions, per channel — "
    "during training that is exactly **InstanceNorm**. At test time eval mode normalises with "
    "the **running statistics** instead: averages over many images, not the image's own "
    "mean and variance — not what the network was trained with. The conv-only run below is "
    "evaluated both ways: with running statistics, and with batch statistics at batch 1 "
    "(each test image normalised by itself, as in training)."))
one = batch1_config(base)
batch1 = seeded(batch1_points(base), PAGE)
conv_points = [p for p in batch1 if p.arm == "conv_only_batch1"]
st.caption(_("Kept small so it finishes in well under a minute a run on a 2-core CPU: the "
             "bundled subset, the first {images} training images, 1 epoch at batch 1 "
             "({images} steps), lr {lr:g}, ReLU; the 1,000 test images. The "
             "three runs use the page's {seeds}.").format(
    images=one.train_size, lr=one.lr,
    seeds=(_("{n} seed") if n_seeds == 1 else _("{n} seeds")).format(n=n_seeds)))
run_buttons(batch1, base, _("▶ Run the batch-1 runs"), page=PAGE)
t3 = grid_panel(batch1, "batch1")
for _i, row in t3[t3.status == "failed"].iterrows():
    v = ui.manager().get(row.run_id)
    if v is not None:
        st.error(f"{row.run}: {v.reason}")
mgr = ui.manager()
rows = []
for p in conv_points:
    v = mgr.find(p.config)
    if v is None or v.status != "finished":
        continue
    s = v.summary or {}
    by_mode = (v.evals[-1].get("by_mode") or {}) if v.evals else {}
    rows.append({_("seed"): p.config.seed,
                 _("train acc (per-image statistics)"): s.get("train_acc"),
                 _("test acc, running statistics"): s.get("test_acc_running"),
                 _("test acc, PreciseBN"): s.get("test_acc_precise"),
                 _("test acc, batch statistics (each image by itself)"): by_mode.get("batch"),
                 _("seconds"): round(s.get("wall_time", math.nan), 1)})
if rows:
    st.subheader(_("Conv-only BN at batch 1: test accuracy with each kind of statistics"))
    st.dataframe(rows, hide_index=True)
    reading = readings.batch1(summarize(t3))
    st.write(sentence(reading.comparisons[0].text()))
    if reading.verdict == "mismatch":
        st.write(_("Normalising each test image by itself, as training did, gives "
                   "{gain:.3f} more test accuracy than eval mode's running "
                   "statistics: that gap is the train/test mismatch of a network trained with "
                   "per-image (InstanceNorm-like) statistics and tested with population "
                   "ones.").format(gain=reading.facts['gain']))
    elif reading.verdict == "running better":
        st.write(_("Here the running statistics do better than per-image statistics."))
    else:
        st.write(_("With these seeds the two evaluations cannot be told apart, so this run "
                   "does not show a mismatch; more seeds or a larger training set may."))
elif not t3.empty:
    st.caption(_("The table of the conv-only run's evaluations appears when a run has "
                 "finished."))

st.subheader(_("Batch size 2: one bit per fully-connected unit"))
two, io, conv = cached.batch_one(base.dataset, base.seed)
absx = np.abs(two.xhat)
near = int((np.abs(absx - 1) < 1e-3).sum())
c = two.xhat.shape[1]
st.markdown(_(
    "With N = 2 an FC BN's mean is (x₁ + x₂)/2 and its variance ((x₁ − x₂)/2)², so "
    "x̂ = ±(x₁ − x₂)/2 ÷ √(((x₁ − x₂)/2)² + ε): **±1 up to ε**, the sign saying which image "
    "had the larger value. After γ and β each unit is γ·(±1) + β — it carries one bit."))
st.plotly_chart(charts.histogram_figure(
    two.xhat, _("fc1's normalised values x̂ (before γ, β) for one real batch of 2 images "
                "(untrained LeNet-BN, seed {seed})").format(seed=base.seed), "x̂"), key="hist2")
small = two.diff[np.abs(absx[0] - 1) >= 1e-3]
st.caption((_(
    "Measured: x̂₁ = −x̂₂ for all {units} units (largest |x̂₁ + x̂₂|: "
    "{sum:.1e}); {near} of the {values} values are within 0.001 of "
    "±1 (largest |x̂| {largest:.5f}); the other {other} belong to the {small} units whose two "
    "inputs differ by at most {gap:.3f}, where ε = {eps:g} is not negligible: "
    "|x̂| = 1/√(1 + 4ε/(x₁ − x₂)²) (smallest here {smallest:.3f}).") if len(small) else _(
    "Measured: x̂₁ = −x̂₂ for all {units} units (largest |x̂₁ + x̂₂|: "
    "{sum:.1e}); {near} of the {values} values are within 0.001 of "
    "±1 (largest |x̂| {largest:.5f}).")).format(
        units=c, sum=np.abs(two.xhat.sum(0)).max(), near=near, values=2 * c,
        largest=absx.max(), other=2 * c - near, small=len(small),
        gap=small.max() if len(small) else 0.0, eps=two.eps, smallest=absx.min()))

st.subheader(_("Batch size 1, inside one layer"))
st.plotly_chart(charts.histogram_figure(
    io.output, _("fc1 after BN, one real image: every value is {value:g}").format(
        value=abs(io.output).max()),
    _("normalised activation")), key="hist1")
st.caption(_("conv1 at N = 1 averages over {count} values per channel (1×24×24): the "
             "image's own positions, per channel — InstanceNorm — so its normalised outputs "
             "still vary (std {std:.2f}).").format(count=conv.count, std=conv.out_std.mean()))
