import pandas as pd
import streamlit as st

from bnviz.config import PRESET_LABELS
from bnviz.dashboard import charts, compare
from bnviz.dashboard.nav import via_app
from bnviz.library import data_text, open_library
from bnviz.library.catalog import QUESTION

via_app()  # first request after a server start: rerun through app.py

st.title("bnviz — Batch Normalization, live")
st.markdown("""
bnviz trains LeNet on Fashion-MNIST — the model of the BatchNorm chapter of
*Dive into Deep Learning* — while you watch. Every question the chapter leaves open becomes an
experiment you can run, look at and share as a link.

| page | what it answers |
|---|---|
| **Live lab** | Train one model with any BN setup (batch size, which layers, before/after the activation, dropout instead of BN, from-scratch BN, simulated devices) and watch loss, train/test accuracy, test-accuracy fluctuation and the gamma/beta of every layer as it trains. |
| **Compare runs** | Overlay runs from this session, the run library or shared links; repeated seeds as a band; config differences highlighted. |
| **Batch size (and batch size 1)** | Test accuracy vs batch size for BN, GroupNorm, LayerNorm and no norm; why batch size 1 teaches BN nothing, live; minibatch vs batch size. |
| **Inside a BN layer** | One real batch through a conv and an FC BN layer: shapes, the axes averaged over (N, H, W), how many values go into each mean, gamma/beta shapes. |
| **Fluctuating test accuracy** | Why test accuracy jumps between epochs with BN: running statistics vs PreciseBN vs batch statistics on the same run. |
| **BN on several GPUs** | Why the book's hand-written BN gets worse under DataParallel (its moving statistics are updated on replicas and lost), beside what per-device statistics do — both simulated exactly on one CPU. |
| **Bias before BN** | Dropping the bias of the layers that BN directly follows: 226 parameters fewer, identical weights, the same loss curve to float precision. |
| **Learning rate** | How high lr can go with and without BN before training fails. |
| **Which BN layers matter?** | d2l's ablation: all four BN layers, none, each one removed, pairs, and dropout in place of the FC-layer BNs — one button, every configuration over paired seeds with 95% confidence intervals. |
| **gamma and beta** | How the learned scale and shift of every layer spread over training, and what freezing them changes. |

Every comparison runs each configuration on several paired seeds (a *Seeds* control on each
question page) and shows the mean with its 95% confidence interval and every seed as a dot; a
page says two settings differ only when their intervals do not overlap.

Start with the **Live lab**: press a preset (d2l LeNet-BN), then **Train**.
The address bar is always a share link of what you see.
""")

st.page_link("pages/lab.py", label="Open the Live lab", icon=":material/science:")

# The chapter's headline, measured: the results library's runs of d2l's three presets.
# (bnviz.library needs no torch: this page stays quick on a fresh server.)
lib = open_library()
presets = [(PRESET_LABELS.get(p.label, p.label), lib.seeds_of(p.config))
           for p in QUESTION["presets"].make(QUESTION["presets"].base())] if lib else []
presets = [(name, seeds) for name, seeds in presets if seeds]
if presets:
    first = presets[0][1][0]
    st.subheader("The chapter's result, measured")
    st.plotly_chart(charts.band_figure(
        pd.concat([compare.curves(seeds, "test_acc").assign(group=name)
                   for name, seeds in presets], ignore_index=True),
        "Test accuracy of d2l's three runs, mean and 95% CI over seeds",
        "test accuracy (eval mode)"), key="home_presets")
    st.caption(f"From the results library: {min(len(s) for _, s in presets)} seeds each, "
               f"{first.config.epochs} epochs, {data_text(first.info)}, measured with bnviz "
               f"{first.info.get('bnviz_version', '?')}. BN's test accuracy swings from epoch "
               "to epoch: see *Fluctuating test accuracy*.")
