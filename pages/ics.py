"""Internal covariate shift, measured (Santurkar et al. 2018, §2.2 and fig. 2)."""
import streamlit as st

from bnviz import ics, readings
from bnviz.dashboard import charts, ui
from bnviz.dashboard import ics_charts
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import ics_grid
from bnviz.i18n import _
from bnviz.runs.results import summarize

via_app()  # first request after a server start: rerun through app.py

st.title(_("Internal covariate shift, measured"))
st.markdown(_(
    "Ioffe and Szegedy introduced BatchNorm to reduce *internal covariate shift* (ICS): as "
    "the earlier layers learn, the distribution of each layer's input keeps moving, and the "
    "layer has to keep re-adapting. Santurkar, Tsipras, Ilyas and Madry (2018, *How Does "
    "Batch Normalization Help Optimization?*, §2) test that explanation two ways, and this "
    "page repeats both on LeNet and Fashion-MNIST, with and without BN, on paired seeds."))
st.markdown(_(
    "**1. ICS by the gradient** (their definition 2.1). At an evaluation, on the step's "
    "training batch, take the gradient G of the loss with respect to one layer's weights; "
    "then let only the layers *before* it take their SGD step on the same batch, and take "
    "that layer's gradient again, G′. ‖G − G′‖ and cos(G, G′) say how much the layer's own "
    "update had to change because its input moved. If BN reduced ICS, cos(G, G′) would be "
    "closer to 1 with BN. The paper finds it is not (in deep networks BN can even increase "
    "it). The run itself is untouched: the earlier layers are put back bit for bit, every BN "
    "buffer too."))
st.markdown(_(
    "**2. Noisy BN** (their fig. 2). BN followed by random noise whose mean and variance per "
    "activation are redrawn at every step (here: mean from U(−noise_mean, noise_mean), "
    "standard deviation from U(0, noise_std), and independent noise for every example; no "
    "noise in eval mode), so every later layer's input shifts far more than without BN, ICS "
    "put back on purpose. If stable input distributions were what made BN work, noisy BN "
    "would train badly. The paper finds it trains about as well as BN. The distributions "
    "below are those of one unit of each layer's input (channel 0 of a conv map, feature 0 "
    "of an FC layer), as in the paper's figure, on a fixed batch of 256 training images in "
    "train mode at every evaluation; *input shift* is how far its median moves from one "
    "evaluation to the next."))

base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr", "activation",
                                "noise_mean", "noise_std", "eval_every"), "ics")
if not problems:
    points = seeded(ics_grid(base), "ics")
    run_buttons(points, base, page="ics")
    t = grid_panel(points, "ics")
    if finished_all(t):
        mgr = ui.manager()
        labels = list(dict.fromkeys(t.run))
        groups = {g: [mgr.get(r) for r in t[t.run == g].run_id] for g in labels}
        r = readings.ics(summarize(t))
        st.markdown(readings.ics_text(r))
        layer = st.radio(_("Layer (its weight gradient)"), ics.ICS_LAYERS, horizontal=True,
                         index=1, key="ics_layer",
                         help=_("conv1 has no layer before it, so G′ = G there"))
        st.plotly_chart(charts.band_figure(ics_charts.curves(groups, f"ics_cos_{layer}"),
                                           _("cos(G, G′) of {layer} over training (mean, 95% "
                                             "CI over seeds)").format(layer=layer),
                                           "cos(G, G′)"), key="ics_cos")
        st.plotly_chart(charts.band_figure(ics_charts.curves(groups, f"ics_l2_{layer}"),
                                           _("‖G − G′‖ of {layer} over training")
                                           .format(layer=layer), "‖G − G′‖"),
                        key="ics_l2")
        site = st.radio(_("Input of layer"), ics.SITES, horizontal=True, index=1, key="ics_site",
                        help=_("unit 0 of what the layer takes in: the output of the block "
                               "before it (norm, activation and, for conv maps, pooling)"))
        first = {g: next((v for v in vs if v is not None), None) for g, vs in groups.items()}
        st.plotly_chart(ics_charts.distribution_figure(
            {g: ics_charts.input_percentiles(v, site) for g, v in first.items() if v is not None},
            _("Unit 0 of {site}'s input over training (seed {seed}): median, 25–75% "
              "and 5–95% of its values on the probe batch").format(site=site, seed=base.seed)),
            key="ics_dist")
        st.plotly_chart(charts.band_figure(ics_charts.curves(groups, "test_acc"),
                                           _("Test accuracy over training (mean, 95% CI)"),
                                           _("test accuracy")), key="ics_acc")
        for c in r.comparisons:
            st.write(c.text())
st.markdown(_(
    "**What LeNet cannot show.** The paper's networks are deep (VGG, a 25-layer linear "
    "network): there an earlier layer's step can turn a late layer's gradient almost "
    "completely, and BN's layers were seen to make it worse. LeNet has four layers before "
    "its output, so the earlier layers' step moves a layer's input only a little and "
    "cos(G, G′) stays near 1 with or without BN; what this page can show is whether BN "
    "*reduces* that change, not how it grows with depth. Its noisy BN is bnviz's reading of "
    "the paper's description (the paper gives the idea, not these noise scales)."))
