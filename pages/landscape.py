"""The loss landscape along the gradient, with and without BN (Santurkar et al. 2018, §3.1)."""
import pandas as pd
import streamlit as st

from bnviz import readings
from bnviz.dashboard import charts, ui
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import LANDSCAPE_RELU_LR, landscape_grid
from bnviz.i18n import _
from bnviz.landscape import STEP_FACTORS, band_curves, curves
from bnviz.runs.results import summarize

via_app()  # first request after a server start: rerun through app.py

st.title(_("The loss landscape"))
st.markdown(_("""The book says BN "is thought to make the optimization landscape smoother" and
cites **Santurkar, Tsipras, Ilyas and Madry (2018), "How Does Batch Normalization Help
Optimization?"** (NeurIPS; §3.1, figures 4 and 5). Their measurement, on your own LeNet: at
every evaluation, on the training batch of that step and in training mode (BN with the batch's
statistics, the loss SGD minimises), take the gradient g at the current weights w and look a
step s along it, for s = lr × {factors}:

- **loss band**: the range of L(w − s·g) over those steps (figure 4a): how much the loss
  changes when you move along the gradient;
- **gradient change** ‖∇L(w) − ∇L(w − s·g)‖ (figure 4b, *gradient predictiveness*): small
  means the gradient here still describes the loss a step away;
- **effective β-smoothness**: the largest ‖∇L(w) − ∇L(w − s·g)‖ / ‖s·g‖ (figure 4c), a local
  Lipschitz constant of the gradient.

The probe runs on a copy of the model: the run trains exactly as it would without it (same
losses, weights and BN statistics, bit for bit). The paper found a much narrower band, a more
predictive gradient and a smaller β with BN. Each pair below (BN / no BN) shares its learning
rate, so its probe steps are the same: the book's sigmoid at the lr control, ReLU at lr
{relu_lr:g} (without BN a ReLU LeNet dies at lr 0.3 and above).""").format(
    factors=", ".join(f"{f:g}" for f in STEP_FACTORS), relu_lr=LANDSCAPE_RELU_LR))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr",
                                "eval_every"), "landscape")
if base.eval_every:
    st.caption(_("A probe at every evaluation: every {eval_every} steps and at each epoch end. "
                 "Each costs 6 forward and backward passes of one training batch (the server's "
                 "cost estimate counts them).").format(eval_every=base.eval_every))
else:
    st.caption(_("A probe at every evaluation: once per epoch (eval_every 0). Each costs 6 "
                 "forward and backward passes of one training batch (the server's cost "
                 "estimate counts them)."))

if not problems:
    points = seeded(landscape_grid(base), "landscape")
    run_buttons(points, base, page="landscape")
    t = grid_panel(points, "landscape")
    mgr = ui.manager()
    runs = [(r.run, v) for r in t.itertuples() if r.run_id and (v := mgr.get(r.run_id))]
    if finished_all(t):
        reading = readings.landscape(summarize(t))
        st.markdown(_("**What these runs show.** {reading}")
                    .format(reading=readings.landscape_text(reading)))
    if runs:
        st.plotly_chart(charts.band_figure(
            pd.DataFrame(band_curves(runs)), _("The loss band over training (figure 4a): line "
                                               "L(w), shaded min–max of L(w − s·g) over s, means "
                                               "over seeds"), _("training-batch loss"),
            "lsband"), key="landscape_band_chart")
        for mid, title, ytitle in (
                ("landscape_band", _("Loss band width max − min over s, mean and 95% CI over "
                                     "seeds"), _("loss band width")),
                ("landscape_gradpred_max", _("Gradient change: largest ‖∇L(w) − ∇L(w − s·g)‖ "
                                             "over s (figure 4b), mean and 95% CI over seeds"),
                 _("‖Δ gradient‖")),
                ("landscape_beta", _("Effective β-smoothness (figure 4c), mean and 95% CI over "
                                     "seeds"), "β")):
            fig = charts.band_figure(pd.DataFrame(curves(runs, mid)), title, ytitle, mid)
            fig.update_yaxes(type="log")
            st.plotly_chart(fig, key=f"chart_{mid}")
        st.caption(_("Each run's values are also in its CSV (`bnviz sweep landscape --out DIR` "
                     "writes landscape.csv; the lab and Compare show them as eval metrics)."))

st.subheader(_("What LeNet on Fashion-MNIST cannot show"))
st.markdown(_("""The paper measures VGG and deep linear networks on CIFAR-10, trained for
thousands of steps at learning rates where the network without BN trains too, and its band is
widest early in training. LeNet is shallow (four normalised layers): the effects that grow with
depth, where a small change in an early layer is amplified by every later one, are small here.
The sigmoid LeNet without BN also spends its first epochs on a plateau at chance accuracy,
where every step changes the loss very little: its band is narrow there because it is not
learning, not because its landscape is smoother. Three epochs on one data set, 5 seeds, show
what *this* network does; they cannot test the paper's claim about deep networks, nor its
theory (which bounds the smoothness of the loss with BN relative to the same network without
it, step by step, not only along the gradient)."""))
