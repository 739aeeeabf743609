"""Scale invariance and weight decay: with BN after a layer, ‖w‖ only sets the step size."""
import streamlit as st

from bnviz import readings
from bnviz.dashboard import charts, ui
from bnviz.dashboard import weights as wcharts
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import weight_decay_grid
from bnviz.i18n import _
from bnviz.runs.results import summarize
from bnviz.weights import LAYERS

via_app()  # first request after a server start: rerun through app.py

st.title(_("Scale invariance and weight decay"))
st.markdown(_(
    "BatchNorm right after a conv or linear layer divides that layer's output by its own "
    "batch standard deviation, so multiplying the layer's weights by any c > 0 changes "
    "nothing the network computes: the loss is the same function of w and of c·w. Two "
    "consequences follow (van Laarhoven 2017, *L2 Regularization versus Batch and Weight "
    "Normalization*; Li & Arora 2019, *An Exponential Learning Rate Schedule for Deep "
    "Learning*): the gradient is orthogonal to w (moving along w does not change the "
    "loss), and since the gradient also shrinks as 1/‖w‖, an SGD step changes the layer's "
    "*direction* by about η/‖w‖². The weight norm is nothing but a step size. Without "
    "weight decay every step lengthens w (a step orthogonal to w adds η²‖g‖² to ‖w‖²), so "
    "the effective step falls by itself; weight decay shrinks w and keeps it up. Weight "
    "decay on a BN-followed layer is therefore no regulariser of the function at all: it "
    "is a learning-rate schedule."))
st.markdown(_(
    "Where the layer keeps its bias (bnviz's default), the invariance holds for w and b "
    "scaled together; with BatchNorm directly after the layer the bias does not matter "
    "anyway (its mean subtraction cancels it, see *Bias before BN*), so w alone can be "
    "scaled too. BN's ε is the one thing that sees the scale: it normalises by "
    "√(var + ε), and var grows by c² while ε does not, so the loss moves by about ε/var "
    "(10⁻⁶ at the default ε = 10⁻⁵). fc3, the output layer, has no norm after it and is not "
    "scale invariant; neither is a layer whose norm comes after the activation."))

base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr",
                                "weight_decay", "eval_every"), "weight-decay")
if not problems:
    st.subheader(_("The exact result, on one batch"))
    try:
        with st.spinner(_("One batch of 128 training images through both networks "
                          "(float64)…")):
            tables = wcharts.invariance_tables(base)
    except Exception as e:  # noqa: BLE001 - no data here: the page still explains and runs
        st.warning(_("Could not load a training batch here ({error}).").format(error=e))
        tables = {}
    for name, table in tables.items():
        st.markdown(_("**{name}**, at initialisation (seed {seed}), train mode:")
                    .format(name=_(name), seed=base.seed))
        st.dataframe(table, hide_index=True)
    if tables:
        st.caption(_("Each layer's weight and bias multiplied by 10, everything else unchanged. "
                     "With BN the loss moves by ε/var only and the gradient is orthogonal to "
                     "(w, b) to the same precision; without BN, or at fc3, it is not."))

    points = seeded(weight_decay_grid(base), "weight-decay")
    run_buttons(points, base, page="weight-decay")
    t = grid_panel(points, "weight_decay")
    if finished_all(t):
        mgr = ui.manager()
        labels = list(dict.fromkeys(t.run))
        groups = {g: [mgr.get(r) for r in t[t.run == g].run_id] for g in labels}
        layer = st.radio(_("Layer"), LAYERS, horizontal=True, index=2, key="wd_layer",
                         help=_("conv1 to fc2 are followed by BN in the BN arms; fc3 never is"))
        st.plotly_chart(charts.band_figure(wcharts.norm_curves(groups, layer, "norm"),
                                           _("‖w‖ of {layer} over training (mean, 95% CI)")
                                           .format(layer=layer),
                                           "‖w‖"), key="wd_norm")
        st.plotly_chart(charts.band_figure(wcharts.norm_curves(groups, layer, "step"),
                                           _("Effective step η/‖w‖² of {layer}")
                                           .format(layer=layer), "η/‖w‖²"),
                        key="wd_step")
        st.dataframe(wcharts.final_norms_table(groups, LAYERS), hide_index=True)
        st.caption(_("‖w‖ of each layer's weight (bias apart), from the runs' evaluations; "
                     "η/‖w‖² means a step size only where a norm follows the layer."))
        r = readings.weight_decay(summarize(t))
        st.markdown(readings.weight_decay_text(r))
        for c in r.comparisons:
            st.write(c.text())
st.markdown(_(
    "**What LeNet cannot show.** Li & Arora's point is about long training: with BN and "
    "weight decay, the effective learning rate settles where the shrinking by decay and "
    "the growth by the steps balance, and a ResNet trained for hundreds of epochs behaves "
    "as if on an exponentially growing learning rate schedule. A few epochs of a five-layer "
    "LeNet show the mechanism — ‖w‖ growing without decay, held down with it, η/‖w‖² "
    "following — not the equilibrium, nor the deep networks where a step size that decays "
    "too early costs accuracy."))
