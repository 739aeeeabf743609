"""Learning rate: how high can it go with and without BN?"""
import streamlit as st

from bnviz.dashboard import charts
from bnviz.experiments import lr_grid
from bnviz.library.catalog import LRS
from bnviz.runs.results import summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app

via_app()  # first request after a server start: rerun through app.py

st.title("Learning rate")
st.markdown("d2l trains LeNet with lr 0.9 and LeNet-BN with lr 1.0. This sweep finds where "
            "each stops training: a run whose loss becomes NaN or explodes far above chance is "
            "marked diverged (✕). Every lr runs on the same paired seeds.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size"), "lr")
lrs = st.multiselect("Learning rates", [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                     list(LRS), key="lrs")
points = seeded(lr_grid(base, sorted(lrs)), "lr")
if points and not problems:
    run_buttons(points, base, page="lr")
    t = grid_panel(points, "lr", chart=lambda t, revision: charts.sweep_figure(
        t, "lr", "norm", title="Final test accuracy vs learning rate", revision=revision))
    if finished_all(t):
        s = summarize(t)
        for norm in dict.fromkeys(t.norm):
            rows = s[s.norm == norm]
            # "trains" = every seed finished and the lower end of the 95% CI is above 0.5
            ok = rows[(rows.n == rows.runs) & (rows.test_acc - rows.test_acc_ci.fillna(0) > 0.5)]
            bad = rows[rows.ended_badly > 0]
            msg = (f"largest lr at which every seed trained (95% CI of test accuracy above "
                   f"0.5): **{ok.lr.max():g}**" if not ok.empty else "no lr trained on every seed")
            if not bad.empty:
                msg += f"; diverged or failed on some seed from lr {bad.lr.min():g}"
            st.write(f"**{norm}**: {msg} ({int(rows.runs.max())} seeds per lr).")
