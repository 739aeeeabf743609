"""Learning rate: how high can it go with and without BN?"""
import streamlit as st

from bnviz import charts
from bnviz.experiments import lr_grid
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, grid_panel, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("Learning rate")
st.markdown("d2l trains LeNet with lr 0.9 and LeNet-BN with lr 1.0. This sweep finds where "
            "each stops training: a run whose loss becomes NaN or explodes far above chance is "
            "marked diverged (✕).")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size"), "lr")
lrs = st.multiselect("Learning rates", [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                     [0.01, 0.1, 1.0, 3.0, 10.0, 30.0], key="lrs")
points = lr_grid(base, sorted(lrs))
if points and not problems:
    run_buttons(points, base)
    t = grid_panel(points, "lr", chart=lambda t, revision: charts.sweep_figure(
        t, "lr", "norm", title="Final test accuracy vs learning rate", revision=revision))
    done = t[~t.status.isin(["queued", "running", "not run"])]
    if len(done) == len(t):
        for norm, d in t.groupby("norm"):
            ok = d[(d.status == "finished") & (d.test_acc > 0.5)]
            best = ok.lr.max() if not ok.empty else None
            st.write(f"**{norm}**: largest lr that still trains (test acc > 0.5): "
                     f"{best:g}" if best else f"**{norm}**: no lr trained")
