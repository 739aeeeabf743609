"""Bias before BN: the mean subtraction cancels it, so it can go."""
import pandas as pd
import streamlit as st

from bnviz.dashboard import charts

from bnviz.dashboard import compare

from bnviz.dashboard import ui
from bnviz.experiments import bias_grid
from bnviz import readings
from bnviz.runs.results import bias_rows, summarize
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard import cached
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py


def cached_equivalence(cfg):
    with st.spinner(_("Training both arms for 20 steps in float64…")):
        return cached.equivalence(cfg)


st.title(_("Bias before BN"))
st.markdown(_("BN in training mode subtracts the batch mean of each channel, so a constant bias "
              "added by the layer just before it is removed again: the loss does not depend on "
              "it, its gradient is 0, and it never changes. beta does its job. This holds only "
              "where BatchNorm (or InstanceNorm at a conv layer) directly follows the layer, "
              "before the activation; with LayerNorm, GroupNorm or the norm after the "
              "activation nothing cancels a per-channel bias, so bnviz keeps it there."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr",
                                "norm", "norm_position"), "bias")
with_b, without_b = cached.counts(base)
st.metric(_("Parameters with / without the cancelled biases"), f"{with_b:,} / {without_b:,}",
          f"{without_b - with_b:,}")
if not problems:
    grads = cached.gradients(base)
    st.dataframe(pd.DataFrame({
        _("layer"): [g.site for g in grads],
        _("followed by BN before the activation"): [_("yes") if g.cancelled else _("no")
                                                    for g in grads],
        _("largest |∂loss/∂bias|"): [f"{g.bias_grad:.1e}" for g in grads],
        _("largest |∂loss/∂weight|"): [f"{g.weight_grad:.1e}" for g in grads]}),
        hide_index=True)
    st.caption(_("One real batch of 64 training images, train mode, seed {seed}: where BN "
                 "follows, the bias gradient is float rounding next to the weight gradient.")
               .format(seed=base.seed))
    if with_b == without_b:
        st.info(_("With these settings no bias is followed directly by BatchNorm (before the "
                  "activation), so nothing is cancelled and the two arms below are the same "
                  "model."))
    else:
        eq = cached_equivalence(base)
        st.markdown(_("**The exact result.** The two arms start from identical weights (the "
                      "biases come from a separate random stream). Trained side by side for "
                      "{steps} SGD steps on the same real batches in float64, their losses "
                      "differ by at most **{loss_diff:.1e}** and their weights by "
                      "{weight_diff:.1e} (loss {first_loss:.3f} → {last_loss:.3f}): "
                      "one function of the weights, {apart} parameters apart.").format(
                        steps=eq.steps, loss_diff=eq.loss_diff, weight_diff=eq.weight_diff,
                        first_loss=eq.first_loss, last_loss=eq.last_loss,
                        apart=with_b - without_b))
    st.markdown(_("The runs below train as usual, in float32, on the same paired seeds and batch "
                  "order. There `x + b − mean(x + b)` and `x − mean(x)` round differently in "
                  "the last bit; at lr 1.0 such differences grow over thousands of steps, so the "
                  "two loss curves drift apart slowly while the final numbers agree."))
    points = seeded(bias_grid(base), "bias")
    run_buttons(points, base, page="bias")
    t = grid_panel(points, "bias")
    if finished_all(t):
        mgr = ui.manager()
        diffs = bias_rows(t, {r: mgr.get(r) for r in t.run_id})
        if diffs:
            st.dataframe(pd.DataFrame({
                _("seed"): [d[0] for d in diffs],
                _("largest |Δ loss|, first 20 steps"): [f"{d[1]:.1e}" for d in diffs],
                _("largest |Δ loss|, whole run"): [f"{d[2]:.1e}" for d in diffs]}),
                hide_index=True)
            st.caption(_("Training loss with bias minus without, step by step (float32)."))
        for c in readings.bias(summarize(t)).comparisons:
            st.write(c.text())
        views = [mgr.get(r) for r in t.run_id]
        st.plotly_chart(charts.band_figure(compare.curves([v for v in views if v], "test_acc",
                                                          True),
                                           _("Test accuracy over training, mean and 95% CI of "
                                             "the seeds"), _("test accuracy")),
                        key="bias_curves")
