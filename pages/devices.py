"""Several devices: why a hand-written BN gets worse under DataParallel, and what per-device
statistics do — both simulated exactly on one CPU."""
import numpy as np
import pandas as pd
import streamlit as st
import torch

from bnviz.dashboard import charts
from bnviz.experiments import dataparallel_grid
from bnviz.inside import moving_stats_after_steps, per_device_stats
from bnviz.runs.results import estimate, summarize
from bnviz.stats import compare_text, separated
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app

via_app()  # first request after a server start: rerun through app.py

st.title("BN on several GPUs")
st.markdown("""A learner trained the book's hand-written BatchNorm on several GPUs and it got
worse. The usual guess: *each GPU averages over a small slice of the batch*. There is a second,
likelier cause in the book's module itself. It keeps `moving_mean` and `moving_var` as plain
attributes and **reassigns** them in `forward`. `nn.DataParallel` (with two or more GPUs)
runs every step on shallow *replicas* of the model (`torch.nn.parallel.replicate`, through
`Module._replicate_for_data_parallel`), so the reassignment lands on a replica that is thrown
away: the moving averages stay at 0 and 1 for the whole run. Training looks fine (it uses
batch statistics); eval mode normalises with mean 0 and variance 1 and collapses. `nn.BatchNorm`
does not suffer from this: its statistics are registered buffers updated **in place**, and the
replica on the first GPU shares their storage with the real model.""")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr"),
                               "devices")
n_gpu = torch.cuda.device_count()
st.caption(f"This server has {n_gpu} CUDA GPU(s); bnviz simulates k devices on any machine: "
           "the book's module runs each slice of the batch on a replica made the way "
           "DataParallel makes them, and buffer-based BN takes its statistics per slice with "
           "the first slice's updates kept — what DataParallel computes.")

if not problems:
    st.subheader("1. The book's BN under DataParallel: the moving statistics are lost")
    rows = []
    for label, norm, k in (("book BN, 1 device", "bn_d2l", 1),
                           ("book BN, 2 devices (DataParallel)", "bn_d2l", 2),
                           ("fixed: buffers updated in place, 2 devices", "bn_scratch", 2)):
        if base.batch_size % k == 0 and base.batch_size // k >= 2:
            stats = moving_stats_after_steps(base.replace(norm=norm, devices=k), seed=base.seed)
            rows.append({"model": label, **{f"{s}: max |moving mean|, mean moving var":
                                            f"{m:.3f}, {v:.3f}" for s, (m, v) in stats.items()}})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("After three training-mode forward passes of 64 real images each. 0.000, 1.000 "
               "is where the moving statistics started: nothing was kept.")
    points = seeded(dataparallel_grid(base), "devices")
    run_buttons(points, base, page="devices")
    t = grid_panel(points, "devices")
    if finished_all(t):
        s = summarize(t)
        book2, book1 = (estimate(s, lab, "test_acc_running") for lab in
                        ("book BN, 2 devices (DataParallel)", "book BN, 1 device"))
        eight = next((r for r in s.run if r.startswith("nn.BatchNorm, 8 devices")), None)
        bn8 = estimate(s, eight, "test_acc_running") if eight else None
        bn1 = estimate(s, "nn.BatchNorm, 1 device", "test_acc_running")
        tr2, tr1 = (estimate(s, lab, "train_acc") for lab in
                    ("book BN, 2 devices (DataParallel)", "book BN, 1 device"))
        st.markdown("- Lost moving statistics: " + compare_text(
            "book BN on 2 devices", book2, "book BN on 1 device", book1, "test accuracy (eval mode)"))
        st.markdown("- Training itself: " + compare_text(
            "book BN on 2 devices", tr2, "book BN on 1 device", tr1, "train accuracy"))
        if bn8 is not None:
            st.markdown(f"- Per-device statistics ({eight.split('(')[-1].rstrip(')')}): "
                        + compare_text("nn.BatchNorm on 8 devices", bn8, "nn.BatchNorm on 1 device", bn1,
                                       "test accuracy (eval mode)"))
        drop_book = book1.mean - book2.mean
        drop_slices = (bn1.mean - bn8.mean) if bn8 is not None else float("nan")
        if separated(book2, book1) and book2.mean < book1.mean and not (
                bn8 is not None and separated(bn8, bn1) and drop_slices >= drop_book):
            st.success(f"**What explains the complaint:** the lost moving statistics. The "
                       f"book's BN loses {drop_book:.3f} test accuracy on 2 devices while its "
                       f"training is unchanged; smaller per-device batches change test "
                       f"accuracy by {-drop_slices:+.3f}. The fix: register the statistics as "
                       "buffers and update them in place (as `nn.BatchNorm` and bnviz's "
                       "from-scratch BN do), or use `nn.BatchNorm`/`SyncBatchNorm`.")
        else:
            st.info("With these settings and seeds the two effects cannot be told apart: see "
                    "the intervals above.")

    st.subheader("2. Per-device statistics: what each device normalises with")
    st.markdown("Under DataParallel/DDP each GPU's BN normalises only its own slice: with a "
                "global batch of 256 on 8 GPUs, BN averages over 32 examples. SyncBatchNorm "
                "would use the whole batch.")
    k = st.select_slider("Devices for the statistics view", [1, 2, 4, 8], 4)
    site = st.selectbox("Layer", ["conv1", "conv2", "fc1", "fc2"], 1)
    if base.batch_size % k == 0:
        means, vars_, wm, wv = per_device_stats(base, base.batch_size, k, site, base.seed)
        st.plotly_chart(charts.channel_stats_figure(means, vars_, wm, wv), key="devstats")
        spread = float(np.abs(means - wm).mean())
        st.caption(f"{base.batch_size // k} examples per device: the device means differ from "
                   f"the whole-batch mean by {spread:.3f} on average, one real batch, seed "
                   f"{base.seed}.")
    else:
        st.warning(f"{k} devices do not divide the batch size {base.batch_size}.")
