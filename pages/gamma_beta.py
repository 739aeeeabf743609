"""gamma and beta over training, and what freezing them changes."""
import streamlit as st

from bnviz import charts, ui
from bnviz.experiments import GridPoint
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, grid_panel, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("gamma and beta")
st.markdown("Each BN layer learns one scale (gamma) and one shift (beta) per channel. Watch "
            "their spread per layer over training, and compare with a run where they are "
            "frozen at gamma = 1, beta = 0 (d2l's exercise).")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr",
                                "snapshot_every"), "gamma")
pair = [GridPoint("gamma/beta learned", base.replace(freeze_affine=False)),
        GridPoint("gamma/beta frozen", base.replace(freeze_affine=True))]
if not problems:
    run_buttons(pair, base)
    t = grid_panel(pair, "gamma")
    learned = ui.manager().find(pair[0].config)
    frozen = ui.manager().find(pair[1].config)
    if learned is not None:
        stat = st.radio("Statistic", ["gamma", "beta"], horizontal=True)
        other = frozen.snapshots_frame(stat) if frozen is not None else None
        st.plotly_chart(charts.affine_figure(learned.snapshots_frame(stat), stat, "gb",
                                             other, "frozen run"), key="gb_fan")
        snaps = learned.snapshots_frame(stat)
        if not snaps.empty:
            last = snaps[snaps.epoch == snaps.epoch.max()].groupby("layer").value
            st.caption("Last snapshot, mean per layer: " + ", ".join(
                f"{k} {m:.2f}" for k, m in last.mean().items()))
