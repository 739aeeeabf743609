"""gamma and beta over training, and what freezing them changes."""
import streamlit as st

from bnviz.dashboard import charts

from bnviz.dashboard import ui
from bnviz.library.catalog import gamma_points
from bnviz import readings
from bnviz.runs.results import summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py

st.title(_("gamma and beta"))
st.markdown(_("Each BN layer learns one scale (gamma) and one shift (beta) per channel. Watch "
              "their spread per layer over training, and compare with runs where they are "
              "frozen at gamma = 1, beta = 0 (d2l's exercise), on the same paired seeds."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr",
                                "snapshot_every"), "gamma-beta")
pair = gamma_points(base)
points = seeded(pair, "gamma-beta")
if not problems:
    run_buttons(points, base, page="gamma-beta")
    t = grid_panel(points, "gamma")
    learned = ui.manager().find(pair[0].config)
    frozen = ui.manager().find(pair[1].config)
    if learned is not None:
        stat = st.radio(_("Statistic"), ["gamma", "beta"], horizontal=True,
                        key="gb_stat")  # a key: switching the language keeps the choice
        other = frozen.snapshots_frame(stat) if frozen is not None else None
        st.plotly_chart(charts.affine_figure(learned.snapshots_frame(stat), stat, "gb",
                                             other, _("frozen run")), key="gb_fan")
        snaps = learned.snapshots_frame(stat)
        if not snaps.empty:
            first = snaps[snaps.epoch == snaps.epoch.min()].groupby("layer").value
            last = snaps[snaps.epoch == snaps.epoch.max()].groupby("layer").value
            st.caption(_("Seed {seed}, mean {stat} per layer at the first snapshot (epoch "
                         "{first:.2f}) → the last (epoch {last:.2f}): {layers}").format(
                seed=base.seed, stat=stat, first=snaps.epoch.min(), last=snaps.epoch.max(),
                layers=", ".join(f"{k} {a:.2f} → {b:.2f}" for (k, a), b in
                                 zip(first.mean().items(), last.mean()))))
    if finished_all(t):
        for c in readings.gamma(summarize(t)).comparisons:
            st.write(c.text())
