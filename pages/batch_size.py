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

via_app()  # first request after a server start: rerun through app.py

PAGE = "batch-size"
SGD = NORM_BATCH_SGD

st.title("Batch size")
st.info(ui.BATCH_HELP)
st.markdown("Two different batches hide behind \"batch size\": the **SGD batch** (the examples "
            "one step's gradient averages over) and the **normalisation batch** (the examples "
            "one BN layer takes its mean and variance over — per GPU when BN is not synced). "
            "With one device they are the same number; this page separates them.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr"), PAGE)
# GroupNorm with 2 groups, one device: what every statement below assumes, whatever the link.
base = base.replace(groups=2, devices=1)
n_seeds = page_seeds(PAGE)


def _configs_ok(points: list[GridPoint]) -> list[str]:
    """Why any of these configurations cannot be trained (one line per distinct reason)."""
    return list(dict.fromkeys(f"{p.label}: {e}" for p in points for e in validate(p.config)))


METRIC_NAMES = readings.NORM_BATCH_METRICS


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def norm_batch_figure(table, m_of: dict, refs: list[str], revision: str = "",
                      y: str = "test_acc_running") -> go.Figure:
    """BN's (and Batch Renorm's) test accuracy against examples per BN (mean, 95% CI, seeds
    as dots), with each
    batch-independent norm as a horizontal reference: its mean (dashed) and 95% CI band.
    `m_of` maps BN's arm ids to m, `refs` are the references' arm ids."""
    bn = table[table.arm.isin(list(m_of))].assign(
        per_bn=lambda d: d.arm.map(m_of),
        series=lambda d: d.arm.map(lambda a: norm_kinds.LABELS[a.split("@")[0]]))
    fig = charts.sweep_figure(bn, "per_bn", "series", log_x=True, revision=revision, y=y,
                              ytitle={"test_acc_running": "test acc, running stats",
                                      "test_acc_precise": "test acc, PreciseBN"}[y],
                              title=f"{sentence(METRIC_NAMES[y])} vs examples per BN, "
                                    f"SGD batch {SGD}")
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
                        name=f"{label} (mean{', 95% CI band' if ci else ''}; n = {e.n})",
                        line=dict(color=color, dash=dash, width=2),
                        hovertemplate=f"{label}: {e.mean:.3f}{ci}<extra></extra>")
    fig.update_xaxes(title=f"examples per BN (m) — log scale; SGD batch fixed at {SGD}",
                     tickvals=ms, ticktext=[str(m) for m in ms])
    return fig


def warn_chance(summary, arms: tuple[str, ...], what: str, lr_text: str) -> None:
    """Name the configurations whose mean accuracy is at chance (a reading's `at_chance`):
    comparing with them says little, whatever the intervals say."""
    flat = [str(row_of(summary, a)["run"]) for a in arms]
    if flat:
        st.warning(f"At chance level (about 0.1 for 10 classes) in {what}: {'; '.join(flat)}. "
                   f"A comparison with a run at chance says little about batch size: it may "
                   f"not have trained at {lr_text} in this number of steps (more epochs or a "
                   f"larger training set give it more), or, for BN with running statistics, "
                   f"its test-time statistics may not fit its weights (compare PreciseBN in "
                   f"the table).")


# -- 1. The normalisation batch --------------------------------------------------------------
st.header(f"Examples per BN (the normalisation batch) at SGD batch {SGD}")
st.markdown(
    f"Wu & He (*Group Normalization*, 2018) ask what the **normalisation** batch does: "
    f"ResNet-50's ImageNet error with BN rises from 23.6 % at 32 images per GPU to 34.7 % at 2, "
    f"while GroupNorm stays near 24.1 %. Here every run steps with **{SGD} examples** (the SGD "
    f"batch, and so the number and size of the steps, never changes) and BN takes its "
    f"statistics over **m** of them: the {SGD} are cut into {SGD}/m slices that are "
    f"normalised separately, exactly what plain BN does on {SGD}/m GPUs (ghost batch norm). "
    f"Each conv BN then averages over m·H·W values per channel, each FC BN over m.")
choices = per_bn_choices(SGD)
per_bn = st.multiselect("Examples per BN (m)", list(choices),
                        [m for m in PER_BN if m in choices], key="bs_per_bn")
if 2 not in choices:
    st.caption(f"m = 2 would need {SGD // 2} simulated devices; the devices knob goes up to "
               f"{SGD // min(choices)}, so the smallest m here is {min(choices)}.")
points = norm_batch_points(base, per_bn)
refs = [p.arm for p in points if p.arm.endswith("@ref")]
m_of = {p.arm: SGD // p.config.devices for p in points if p.arm not in refs}
st.markdown(
    f"**Held fixed** in every run of this chart: the SGD batch ({SGD}), the learning rate "
    f"(**{base.lr:g} for every normalisation** — the base lr, BN's; it is not tuned for "
    f"GroupNorm or LayerNorm), **{base.epochs} epoch{'s' if base.epochs != 1 else ''}**, the "
    f"training set and the paired seeds ({n_seeds} per configuration). **What changes:** only m, "
    f"for BN and Batch Renorm. Eval mode uses their running statistics, which each step "
    f"updates from one slice "
    f"of m examples (as device 0 does under DataParallel).\n\n"
    f"**GroupNorm** here has **2 groups** — the only group counts other than 1 that divide 6, "
    f"16, 120 and 84, LeNet's widths — and **LayerNorm** is GroupNorm with **1 group** "
    f"(nn.LayerNorm at the FC layers). Both normalise each example over its own channels "
    f"and positions and never look across the batch, so their training is identical for "
    f"every m: each is trained **once**, at batch {SGD} on one device, and drawn as a "
    f"horizontal line with its 95% CI band.")
steps = -(-60000 // SGD) * base.epochs if not base.train_size else None
st.markdown(
    f"**Batch Renorm** (Ioffe 2017, *Batch Renormalization*) is the fix proposed for small "
    f"normalisation batches: it normalises with the batch statistics, then corrects the "
    f"result by r = σ_B/σ and d = (μ_B − μ)/σ against the running averages, clipped to "
    f"[1/r_max, r_max] and [−d_max, d_max] and treated as constants in the backward pass, so "
    f"training sees roughly what eval mode will. It starts as BN and relaxes r_max from 1 to "
    f"{base.renorm_rmax:g} and d_max from 0 to {base.renorm_dmax:g} over the first "
    f"{base.renorm_warmup} steps (the paper's warm-up"
    + (f"; these {base.epochs}-epoch runs take about {steps} steps)" if steps else ")")
    + ". It is drawn beside BN at the same m, on the same paired seeds.")
bad = _configs_ok(points)
for b in bad:
    st.error(b)
if bad:
    st.caption(f"The train-set size must be at least the SGD batch ({SGD}), or 0 for all.")
grid1 = seeded(points, PAGE)
metric = st.radio("Chart", list(METRIC_NAMES), format_func=lambda m: sentence(METRIC_NAMES[m]),
                  horizontal=True, key="bs_metric")
if per_bn and not problems and not bad:
    run_buttons(grid1, base, "▶ Run the normalisation-batch sweep", page=PAGE)
    t1 = grid_panel(grid1, "normbatch", chart=lambda t, revision: norm_batch_figure(
        t, m_of, refs, revision, y=metric))
    if finished_all(t1):
        s1 = summarize(t1)
        st.subheader("What these runs show")
        for m in METRIC_NAMES:
            st.markdown(f"**{sentence(METRIC_NAMES[m])}**")
            reading = readings.norm_batch(s1, m)
            for c in reading.comparisons:
                st.write("- " + c.text())
            warn_chance(s1, reading.at_chance, METRIC_NAMES[m], f"lr {base.lr:g}")
        st.caption("A difference is claimed only where the two 95% confidence intervals over "
                   "seeds do not overlap. Running statistics lag the weights when the lr is "
                   "high, so that accuracy swings from run to run; PreciseBN recomputes BN's "
                   "statistics for the final weights (GroupNorm and LayerNorm have none: both "
                   "columns are the same for them). Wu & He's numbers are for ResNet-50 on "
                   "ImageNet; LeNet on Fashion-MNIST can differ in size and even in direction.")
    else:
        st.caption("The readings appear here once every run of this chart has finished.")

# -- 2. The SGD batch ------------------------------------------------------------------------
st.header("SGD batch size (examples per step), at a fixed number of examples seen")
st.markdown(
    "A **different question**: how the SGD batch itself matters. Every run sees the same "
    f"number of examples ({base.epochs} epoch{'s' if base.epochs != 1 else ''} × the "
    "train-set size), so a small batch takes many more, noisier steps. Here BN's "
    "normalisation batch **is** the SGD batch (one device), so it shrinks with it: two "
    "things change at once, which the chart above keeps apart. Every normalisation uses the "
    "same lr; GroupNorm has 2 groups, LayerNorm 1.")
c1, c2 = st.columns(2)
sizes = c1.multiselect("SGD batch sizes", [2, 4, 8, 16, 32, 64, 128, 256, 512],
                       list(SGD_SIZES), key="bs_sizes")
norms = c2.multiselect("Normalisations", list(norm_kinds.IDS), list(SGD_NORMS), key="bs_norms",
                       format_func=norm_kinds.option)
scale = st.toggle(f"Scale the learning rate with the batch size (lr × batch / {SGD})", True,
                  help="Without it, small batches take many more steps at the same lr.")
st.caption(f"lr: {base.lr:g} × batch / {SGD} (the linear scaling rule), the same for every "
           f"normalisation." if scale else f"lr: {base.lr:g} at every batch size, for every "
           f"normalisation.")
too_big = [p for p in batch_size_grid(base, sorted(sizes), norms, scale_lr=scale)
           if validate(p.config)]
if too_big:
    st.warning("Left out (the train-set size must be at least the batch size): " +
               ", ".join(dict.fromkeys(p.label for p in too_big)))
sweep = sgd_batch_points(base, sizes, norms, scale_lr=scale)
grid2 = seeded(sweep, PAGE)
if sweep and not problems:
    run_buttons(grid2, base, "▶ Run the SGD-batch sweep", page=PAGE)
    t2 = grid_panel(grid2, "sgdbatch", chart=lambda t, revision: charts.sweep_figure(
        t, "batch_size", "norm", title="Test accuracy vs SGD batch size (examples per step), "
        "same examples seen", revision=revision))
    if finished_all(t2):
        s2 = summarize(t2)
        reading = readings.sgd_batch(s2)
        if reading.comparisons:
            for c in reading.comparisons:
                norm = c.a.split("@")[0]
                st.write(f"- **{norm_kinds.option(norm)}**: " + c.text())
            warn_chance(s2, reading.at_chance, "test accuracy", "the lr of each run")
            st.caption("A difference is claimed only where the 95% confidence intervals over "
                       "seeds do not overlap.")
    else:
        st.caption("The readings appear here once every run of this chart has finished.")

# -- 3. Batch size 1 (and 2) -----------------------------------------------------------------
st.header("Batch size 1: what BN learns, and what it meets at test time")
st.markdown(
    "With one example, the batch mean *is* the example: after subtracting it every "
    "fully-connected unit is exactly 0. `nn.BatchNorm1d` refuses to train; d2l's "
    "from-scratch BN trains but its FC layers pass on nothing. With BN on the **conv layers "
    "only**, each conv BN normalises one image over its own H×W positions, per channel — "
    "during training that is exactly **InstanceNorm**. At test time eval mode normalises with "
    "the **running statistics** instead: averages over many images, not the image's own "
    "mean and variance — not what the network was trained with. The conv-only run below is "
    "evaluated both ways: with running statistics, and with batch statistics at batch 1 "
    "(each test image normalised by itself, as in training).")
one = batch1_config(base)
batch1 = seeded(batch1_points(base), PAGE)
conv_points = [p for p in batch1 if p.arm == "conv_only_batch1"]
st.caption(f"Kept small so it finishes in well under a minute a run on a 2-core CPU: the "
           f"bundled subset, the first {one.train_size} training images, 1 epoch at batch 1 "
           f"({one.train_size} steps), lr {one.lr:g}, ReLU; the 1,000 test images. The "
           f"three runs use the page's {n_seeds} seed{'s' if n_seeds != 1 else ''}.")
run_buttons(batch1, base, "▶ Run the batch-1 runs", page=PAGE)
t3 = grid_panel(batch1, "batch1")
for _, row in t3[t3.status == "failed"].iterrows():
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
    rows.append({"seed": p.config.seed, "train acc (per-image statistics)": s.get("train_acc"),
                 "test acc, running statistics": s.get("test_acc_running"),
                 "test acc, PreciseBN": s.get("test_acc_precise"),
                 "test acc, batch statistics (each image by itself)": by_mode.get("batch"),
                 "seconds": round(s.get("wall_time", math.nan), 1)})
if rows:
    st.subheader("Conv-only BN at batch 1: test accuracy with each kind of statistics")
    st.dataframe(rows, hide_index=True)
    reading = readings.batch1(summarize(t3))
    st.write(sentence(reading.comparisons[0].text()))
    if reading.verdict == "mismatch":
        st.write(f"Normalising each test image by itself, as training did, gives "
                 f"{reading.facts['gain']:.3f} more test accuracy than eval mode's running "
                 f"statistics: that gap is the train/test mismatch of a network trained with "
                 f"per-image (InstanceNorm-like) statistics and tested with population ones.")
    elif reading.verdict == "running better":
        st.write("Here the running statistics do better than per-image statistics.")
    else:
        st.write("With these seeds the two evaluations cannot be told apart, so this run "
                 "does not show a mismatch; more seeds or a larger training set may.")
elif not t3.empty:
    st.caption("The table of the conv-only run's evaluations appears when a run has finished.")

st.subheader("Batch size 2: one bit per fully-connected unit")
two, io, conv = cached.batch_one(base.dataset, base.seed)
absx = np.abs(two.xhat)
near = int((np.abs(absx - 1) < 1e-3).sum())
c = two.xhat.shape[1]
st.markdown(
    "With N = 2 an FC BN's mean is (x₁ + x₂)/2 and its variance ((x₁ − x₂)/2)², so "
    "x̂ = ±(x₁ − x₂)/2 ÷ √(((x₁ − x₂)/2)² + ε): **±1 up to ε**, the sign saying which image "
    "had the larger value. After γ and β each unit is γ·(±1) + β — it carries one bit.")
st.plotly_chart(charts.histogram_figure(
    two.xhat, f"fc1's normalised values x̂ (before γ, β) for one real batch of 2 images "
    f"(untrained LeNet-BN, seed {base.seed})", "x̂"), key="hist2")
small = two.diff[np.abs(absx[0] - 1) >= 1e-3]
st.caption(
    f"Measured: x̂₁ = −x̂₂ for all {c} units (largest |x̂₁ + x̂₂|: "
    f"{np.abs(two.xhat.sum(0)).max():.1e}); {near} of the {2 * c} values are within 0.001 of "
    f"±1 (largest |x̂| {absx.max():.5f})" + (
        f"; the other {2 * c - near} belong to the {len(small)} units whose two inputs differ "
        f"by at most {small.max():.3f}, where ε = {two.eps:g} is not negligible: "
        f"|x̂| = 1/√(1 + 4ε/(x₁ − x₂)²) (smallest here {absx.min():.3f})."
        if len(small) else "."))

st.subheader("Batch size 1, inside one layer")
st.plotly_chart(charts.histogram_figure(
    io.output, f"fc1 after BN, one real image: every value is {abs(io.output).max():g}",
    "normalised activation"), key="hist1")
st.caption(f"conv1 at N = 1 averages over {conv.count} values per channel (1×24×24): the "
           f"image's own positions, per channel — InstanceNorm — so its normalised outputs "
           f"still vary (std {conv.out_std.mean():.2f}).")
