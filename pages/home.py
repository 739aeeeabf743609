import pandas as pd
import streamlit as st

from bnviz.config import PRESET_LABELS
from bnviz.dashboard import charts, compare
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _
from bnviz.library import data_text, open_library
from bnviz.library.catalog import PAGES, QUESTION, answers_text

via_app()  # first request after a server start: rerun through app.py

st.title(_("bnviz — Batch Normalization, live"))
st.markdown(_("""
bnviz trains LeNet on Fashion-MNIST — the model of the BatchNorm chapter of
*Dive into Deep Learning* — while you watch. Every question the chapter leaves open becomes an
experiment you can run, look at and share as a link.
"""))
# The table is the menu's list of pages (bnviz/library/catalog.py), so it cannot fall behind
# it (the README's list of pages is rendered from the same entries).
st.markdown("| " + _("page") + " | " + _("what it answers") + " |\n|---|---|\n" + "\n".join(
    f"| **{_(p.title)}** | {answers_text(p)} |" for p in PAGES if p.answers))
st.markdown(_("""
Every comparison runs each configuration on several paired seeds (a *Seeds* control on each
question page) and shows the mean with its 95% confidence interval and every seed as a dot; a
page says two settings differ only when their intervals do not overlap.

Start with the **Live lab**: press a preset (d2l LeNet-BN), then **Train**.
The address bar is always a share link of what you see.
"""))

LAB_PAGE = "pages/lab.py"  # a file path, not text: only the label is translated
st.page_link(LAB_PAGE, label=_("Open the Live lab"), icon=":material/science:")

# The chapter's headline, measured: the results library's runs of both editions' presets.
# (bnviz.library needs no torch: this page stays quick on a fresh server.)
lib = open_library()
presets = [(_(PRESET_LABELS.get(p.label, p.label)), lib.seeds_of(p.config))
           for p in QUESTION["presets"].make(QUESTION["presets"].base())] if lib else []
presets = [(name, seeds) for name, seeds in presets if seeds]
if presets:
    first = presets[0][1][0]
    st.subheader(_("The chapter's result, measured"))
    st.plotly_chart(charts.band_figure(
        pd.concat([compare.curves(seeds, "test_acc").assign(group=name)
                   for name, seeds in presets], ignore_index=True),
        _("Test accuracy of the presets of both editions of d2l, mean and 95% CI over seeds"),
        _("test accuracy (eval mode)")), key="home_presets")
    st.caption(_("From the results library: {seeds} seeds each, {epochs} epochs, {data}, "
                 "measured with bnviz {version}. BN's test accuracy swings from epoch to epoch: "
                 "see *Fluctuating test accuracy*.").format(
        seeds=min(len(s) for _name, s in presets), epochs=first.config.epochs,
        data=data_text(first.info), version=first.info.get('bnviz_version', '?')))
