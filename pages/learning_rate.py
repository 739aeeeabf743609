"""Learning rate: how high can it go with and without BN?"""
import streamlit as st

from bnviz.dashboard import charts
from bnviz.experiments import lr_grid
from bnviz.library.catalog import LRS
from bnviz import readings
from bnviz.runs.results import summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py

st.title(_("Learning rate"))
st.markdown(_("d2l trains LeNet with lr 0.9 and LeNet-BN with lr 1.0. This sweep finds where "
              "each stops training: a run whose loss becomes NaN or explodes far above chance is "
              "marked diverged (✕). Every lr runs on the same paired seeds."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size"), "learning-rate")
lrs = st.multiselect(_("Learning rates"), [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                     list(LRS), key="lrs")
points = seeded(lr_grid(base, sorted(lrs)), "learning-rate")
if points and not problems:
    run_buttons(points, base, page="learning-rate")
    t = grid_panel(points, "lr", chart=lambda t, revision: charts.sweep_figure(
        t, "lr", "norm", title=_("Final test accuracy vs learning rate"), revision=revision))
    if finished_all(t):
        for limit in readings.lr(summarize(t)).facts["limits"]:
            st.write(readings.lr_text(limit))
