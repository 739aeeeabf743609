"""Inside a BN layer: shapes, reduced axes, counts, per-channel statistics, gamma and beta."""
import pandas as pd
import streamlit as st

from bnviz.dashboard import charts

from bnviz.dashboard import ui
from bnviz.inside import layer_io, shown_norm
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

via_app()  # first request after a server start: rerun through app.py

st.title(_("Inside a BN layer"))
st.markdown(_(r"""
The book writes BN for a fully-connected layer as
$\hat{\mu}_B = \frac{1}{|B|}\sum_{x\in B} x$, $\hat{\sigma}^2_B = \frac{1}{|B|}\sum (x-\hat{\mu}_B)^2 + \epsilon$,
$\mathrm{BN}(x) = \gamma \odot \frac{x-\hat{\mu}_B}{\hat{\sigma}_B} + \beta$ — one mean per
feature, over the N examples. For a conv layer the mean is taken **per channel over N, H and W**
(`X.mean(dim=(0, 2, 3), keepdim=True)`): one number per channel, averaged over N·H·W values.
"""))
ui.load_url_once("inside")
with st.sidebar:
    for name in ("dataset", "seed", "norm"):
        ui.knob_widget(name)
base, _problems = ui.controls_from_state()
if shown_norm(base.norm) != base.norm:
    base = base.replace(norm=shown_norm(base.norm))
    st.caption(_("Shown with BatchNorm (the page is about BN)."))
n = st.select_slider(_("N, the batch size"), [1, 2, 4, 8, 16, 32, 64, 128, 256], 8,
                     key="inside_n")  # a key: switching the language keeps N
for site in ("conv1", "fc1"):
    io = layer_io(base, n, site, base.seed)
    st.subheader(_("{site}: input {shape}").format(site=site, shape=io.input_shape))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(_("axes reduced"), str(io.axes).replace(",)", ")"))
    c2.metric(_("values per mean"), f"{io.count:,}",
              help=_("N·H·W for a conv layer, N for a fully-connected one"))
    c3.metric(_("mean/var shape"), str(io.stats_shape))
    c4.metric(_("gamma, beta shape"), str(io.gamma_shape),
              help=_("one scale and one shift per channel/feature, not the shape of x "
                     "(d2l's from-scratch version stores them as (1, C, 1, 1) to broadcast)"))
    shown = min(len(io.mean), 16)
    st.dataframe(pd.DataFrame({_("channel"): range(shown), _("mean"): io.mean[:shown],
                               _("variance"): io.var[:shown],
                               _("output mean (≈ beta = 0)"): io.out_mean[:shown],
                               _("output std (≈ gamma = 1)"): io.out_std[:shown]}),
                 hide_index=True)
    st.plotly_chart(charts.histogram_figure(io.output,
                                            _("{site} after BN, all channels").format(site=site),
                                            _("normalised value")), key=f"h_{site}")
st.caption(_("Weights are the model's initial (seeded) weights; the statistics come from a "
             "real batch of Fashion-MNIST training images."))
