import pandas as pd
import streamlit as st

from bnviz.config import PRESET_LABELS
from bnviz.dashboard import charts, compare
from bnviz.dashboard.nav import via_app
from bnviz.library import data_text, open_library
from bnviz.library.catalog import PAGES, QUESTION, answers_text

via_app()  # first request after a server start: rerun through app.py

st.title("bnviz — Batch Normalization, live")
st.markdown("""
bnviz trains LeNet on Fashion-MNIST — the model of the BatchNorm chapter of
*Dive into Deep Learning* — while you watch. Every question the chapter leaves open becomes an
experiment you can run, look at and share as a link.
""")
# The table is the menu's list of pages (bnviz/library/catalog.py), so it cannot fall behind
# it (the README's list of pages is rendered from the same entries).
st.markdown("| page | what it answers |\n|---|---|\n" + "\n".join(
    f"| **{p.title}** | {answers_text(p)} |" for p in PAGES if p.answers))
st.markdown("""
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
