"""Several devices: why a hand-written BN gets worse under DataParallel, and what per-device
statistics do — both simulated exactly on one CPU."""
import numpy as np
import pandas as pd
import streamlit as st
import torch

from bnviz.dashboard import charts
from bnviz.experiments import dataparallel_grid
from bnviz.inside import moving_stats_after_steps, per_device_stats
from bnviz import readings
from bnviz.runs.results import summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py

st.title(_("BN on several GPUs"))
st.markdown(_("""A learner trained the book's hand-written BatchNorm on several GPUs and it got
worse. The usual guess: *each GPU averages over a small slice of the batch*. There is a second,
likelier cause in the book's module itself. It keeps `moving_mean` and `moving_var` as plain
attributes and **reassigns** them in `forward`. `nn.DataParallel` (with two or more GPUs)
runs every step on shallow *replicas* of the model (`torch.nn.parallel.replicate`, through
`Module._replicate_for_data_parallel`), so the reassignment lands on a replica that is thrown
away: the moving averages stay at 0 and 1 for the whole run. Training looks fine (it uses
batch statistics); eval mode normalises with mean 0 and variance 1 and collapses. `nn.BatchNorm`
does not suffer from this: its statistics are registered buffers updated **in place**, and the
replica on the first GPU shares their storage with the real model."""))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr"),
                               "devices")
n_gpu = torch.cuda.device_count()
st.caption(_("This server has {n_gpu} CUDA GPU(s); bnviz simulates k devices on any machine: "
             "the book's module runs each slice of the batch on a replica made the way "
             "DataParallel makes them, and buffer-based BN takes its statistics per slice with "
             "the first slice's updates kept — what DataParallel computes.").format(n_gpu=n_gpu))

if not problems:
    st.subheader(_("1. The book's BN under DataParallel: the moving statistics are lost"))
    rows = []
    grid = {p.arm: p for p in dataparallel_grid(base)}
    for p in (grid["book_1"], grid["book_2"], grid["scratch_2"]):
        if base.batch_size % p.config.devices == 0 and base.batch_size // p.config.devices >= 2:
            stats = moving_stats_after_steps(p.config, seed=base.seed)
            rows.append({_("model"): _(p.label), **{
                _("{site}: max |moving mean|, mean moving var").format(site=s):
                f"{m:.3f}, {v:.3f}" for s, (m, v) in stats.items()}})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(_("After three training-mode forward passes of 64 real images each. 0.000, 1.000 "
                 "is where the moving statistics started: nothing was kept."))
    points = seeded(list(grid.values()), "devices")
    run_buttons(points, base, page="devices")
    t = grid_panel(points, "devices")
    if finished_all(t):
        reading = readings.devices(summarize(t))
        lost, train, *slices = reading.comparisons
        st.markdown(_("- Lost moving statistics: {reading}").format(reading=lost.text()))
        st.markdown(_("- Training itself: {reading}").format(reading=train.text()))
        if slices:
            per = next(p for p in points if p.arm == "bn_8").config
            st.markdown(_("- Per-device statistics ({per_device} per device): {reading}")
                        .format(per_device=per.batch_size // per.devices,
                                reading=slices[0].text()))
        if reading.verdict == "lost statistics":
            f = reading.facts
            st.success(_("**What explains the complaint:** the lost moving statistics. The "
                         "book's BN loses {drop_book:.3f} test accuracy on 2 devices while "
                         "its training is unchanged; smaller per-device batches change test "
                         "accuracy by {change:+.3f}. The fix: register the "
                         "statistics as buffers and update them in place (as `nn.BatchNorm` and "
                         "bnviz's from-scratch BN do), or use `nn.BatchNorm`/`SyncBatchNorm`.")
                       .format(drop_book=f['drop_book'], change=-f['drop_slices']))
        else:
            st.info(_("With these settings and seeds the two effects cannot be told apart: see "
                      "the intervals above."))

    st.subheader(_("2. Per-device statistics: what each device normalises with"))
    st.markdown(_("Under DataParallel/DDP each GPU's BN normalises only its own slice: with a "
                  "global batch of 256 on 8 GPUs, BN averages over 32 examples. SyncBatchNorm "
                  "would use the whole batch."))
    # keyed: the choice survives a switch of language (the label changes)
    k = st.select_slider(_("Devices for the statistics view"), [1, 2, 4, 8], 4, key="devices_k")
    site = st.selectbox(_("Layer"), ["conv1", "conv2", "fc1", "fc2"], 1, key="devices_site")
    if base.batch_size % k == 0:
        means, vars_, wm, wv = per_device_stats(base, base.batch_size, k, site, base.seed)
        st.plotly_chart(charts.channel_stats_figure(means, vars_, wm, wv), key="devstats")
        spread = float(np.abs(means - wm).mean())
        st.caption(_("{per_device} examples per device: the device means differ from "
                     "the whole-batch mean by {spread:.3f} on average, one real batch, seed "
                     "{seed}.").format(per_device=base.batch_size // k, spread=spread,
                                       seed=base.seed))
    else:
        st.warning(_("{k} devices do not divide the batch size {batch_size}.")
                   .format(k=k, batch_size=base.batch_size))
