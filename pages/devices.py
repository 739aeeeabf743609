"""Several devices: per-device BN statistics vs SyncBatchNorm, simulated exactly on one CPU."""
import numpy as np
import streamlit as st
import torch

from bnviz import charts
from bnviz.experiments import devices_grid
from bnviz.inside import per_device_stats
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, grid_panel, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("BN on several GPUs")
st.markdown("Under DataParallel/DDP each GPU's BN normalises only its own slice of the batch: "
            "with a global batch of 256 on 8 GPUs, BN averages over 32 examples. bnviz "
            "simulates k devices by taking the statistics on k equal slices (ghost batch norm) "
            "— exact for the forward statistics. SyncBatchNorm would use the whole batch.")
n_gpu = torch.cuda.device_count()
st.caption(f"This server has {n_gpu} CUDA GPU(s). SyncBatchNorm needs GPUs (it raises on the "
           "CPU), so here the whole-batch statistics below stand in for it."
           if n_gpu < 2 else f"This server has {n_gpu} GPUs; the simulation above is what "
           "plain BN computes on them.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr"),
                               "devices")
k = st.select_slider("Devices for the statistics view", [1, 2, 4, 8], 4)
site = st.selectbox("Layer", ["conv1", "conv2", "fc1", "fc2"], 1)
if k <= base.batch_size:
    means, vars_, wm, wv = per_device_stats(base, base.batch_size, k, site, base.seed)
    st.plotly_chart(charts.channel_stats_figure(means, vars_, wm, wv), key="devstats")
    spread = float(np.abs(means - wm).mean())
    st.caption(f"{base.batch_size // k} examples per device: the device means differ from the "
               f"whole-batch mean by {spread:.3f} on average. Fewer examples per device → "
               "noisier statistics → a train/test mismatch.")
points = devices_grid(base)
if not problems:
    run_buttons(points, base)
    grid_panel(points, "devices", chart=lambda t, revision: charts.sweep_figure(
        t.assign(per_device=base.batch_size / t.get("devices", 1)), "per_device", "",
        title="Test accuracy vs examples per device", revision=revision))
