"""d2l's exercise: is BN needed in every layer? One button runs the whole grid over seeds."""
import streamlit as st

from bnviz import readings
from bnviz.experiments import ablation_grid
from bnviz.runs.results import summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, page_seeds, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py

st.title(_("Which BN layers matter?"))
st.markdown(_("Trains LeNet-BN ten ways: all four BN layers, none, each one removed, two pairs, "
              "only the conv BNs, and dropout(0.5) in place of the FC-layer BNs — each on the "
              "same paired seeds, so seed s of every arm starts from the same weights wherever "
              "the arms share layers. Identical runs already in the store are reused, so a "
              "shared link shows its results at once."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr",
                                "norm", "activation"), "ablation")
grid = ablation_grid(base)
points = seeded(grid, "ablation")
st.caption(_("{runs} runs: {configs} configurations × {seeds} seeds, {epochs} epochs "
             "each.").format(runs=len(points), configs=len(grid), seeds=page_seeds('ablation'),
                             epochs=base.epochs))
if not problems:
    run_buttons(points, base, _("▶ Run the grid"), page="ablation")
    table = grid_panel(points, key="ablation")
    if finished_all(table):
        reading = readings.ablation(summarize(table))
        st.markdown(_("**Against all four BN layers** (test accuracy with PreciseBN statistics, "
                      "whose seed-to-seed spread is far smaller than with running statistics):"))
        st.markdown("\n".join(f"- **{_(c.name_a)}**: {c.text()}" for c in reading.comparisons))
