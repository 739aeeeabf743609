"""Bias before BN: the mean subtraction cancels it, so it can go."""
import streamlit as st

from bnviz import charts, compare, ui
from bnviz.experiments import bias_grid
from bnviz.model import build_lenet, count_params
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, grid_panel, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("Bias before BN")
st.markdown("BN subtracts the batch mean, so a constant bias added by the layer before it is "
            "cancelled exactly; beta takes over its job. Dropping it saves parameters and "
            "should change nothing beyond run-to-run noise.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "batch_size", "lr", "norm"),
                               "bias")
with_b, without = (count_params(build_lenet(base.replace(bias=b))) for b in (True, False))
st.metric("Parameters with / without the bias", f"{with_b:,} / {without:,}",
          f"{without - with_b:,}")
points = bias_grid(base)
if not problems:
    run_buttons(points, base)
    t = grid_panel(points, "bias")
    done = t[t.status == "finished"]
    if len(done) == len(t):
        g = done.groupby("bias").test_acc.agg(["mean", "std"])
        st.success(f"Test accuracy with bias {g.loc[True, 'mean']:.3f} ± "
                   f"{g.loc[True, 'std']:.3f}, without {g.loc[False, 'mean']:.3f} ± "
                   f"{g.loc[False, 'std']:.3f} over {len(done) // 2} seeds: a difference of "
                   f"{g.loc[False, 'mean'] - g.loc[True, 'mean']:+.3f}.")
        views = [ui.manager().get(r) for r in done.run_id]
        st.plotly_chart(charts.band_figure(compare.curves(views, "test_acc", True),
                                           "Test accuracy, seeds as a band", "test accuracy"),
                        key="bias_curves")
