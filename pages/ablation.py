"""d2l's exercise: is BN needed in every layer? One button runs the whole grid."""
import streamlit as st

from bnviz import ui
from bnviz.experiments import ablation_grid
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_panel, submit_grid

via_app()  # first request after a server start: rerun through app.py

st.title("Which BN layers matter?")
st.markdown("Trains LeNet-BN ten ways on the same seed and data: all four BN layers, none, "
            "each one removed, two pairs, only the conv BNs, and dropout(0.5) in place of the "
            "FC-layer BNs. Identical runs already in the store are reused, so a shared link "
            "shows its results at once.")
warnings = ui.load_url_once("ablation")
if warnings:
    st.warning("Some link parameters were ignored:\n\n- " + "\n- ".join(warnings))
with st.sidebar:
    st.subheader("Base configuration")
    for name in ("dataset", "train_size", "epochs", "seed", "batch_size", "lr", "norm",
                 "activation"):
        ui.knob_widget(name)
base, problems = ui.controls_from_state()
for p in problems:
    st.error(p)
ui.sync_url(base, None)
points = ablation_grid(base)
c1, c2, c3 = st.columns([1, 1, 3])
if c1.button("▶ Run the grid", type="primary", disabled=bool(problems)):
    submit_grid(points)
if c2.button("↻ Run again"):
    submit_grid(points, rerun=True)
c3.text_input("Share link", ui.share_link(base, None), help="Opens this grid and its results")
table = grid_panel(points, key="ablation")
if (table.status == "finished").all():
    best = table.loc[table.test_acc.idxmax()]
    st.success(f"Best test accuracy: **{best.run}** ({best.test_acc:.3f}). Compare how much "
               "each removed layer costs against 'all four BN layers'.")
