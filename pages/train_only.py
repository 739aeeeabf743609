"""Train only gamma and beta (Frankle, Schwab & Morcos 2021) on LeNet."""
import streamlit as st

from bnviz import readings
from bnviz.dashboard import charts, ui
from bnviz.dashboard import weights as wcharts
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import train_only_grid
from bnviz.i18n import _
from bnviz.optim import trained_count
from bnviz.runs.results import summarize
from bnviz.weights import GAMMA_OFF

via_app()  # first request after a server start: rerun through app.py

st.title(_("Train only gamma and beta"))
st.markdown(_(
    "Frankle, Schwab and Morcos (2021, *Training BatchNorm and Only BatchNorm: On the "
    "Expressive Power of Random Features in CNNs*) freeze every weight of a network at its "
    "random initialisation and train only BatchNorm's per-channel scale γ and shift β. "
    "Sufficiently deep ResNets then still reach about 82% on CIFAR-10 (and 32% top-5 on "
    "ImageNet), far above training as many randomly chosen weights elsewhere, and γ learns "
    "to switch off about a third of the random features. Here the same three runs on LeNet: "
    "everything trained; only γ and β; and as many randomly chosen weights outside the "
    "norms (a seeded mask; γ and β stay at 1 and 0, BN still normalises)."))
st.markdown(_(
    "**The output layer is frozen too.** fc3 (84 → 10) keeps its random weights, so the "
    "class scores are a fixed random read-out of the 84 features that the last BN scales "
    "and shifts: every bit of learning is in γ and β, as in the paper's setting of all "
    "weights but BatchNorm's at their initialisation. Training fc3 as well would add 850 "
    "parameters, nearly twice BN's 452, and the run would measure a trained linear "
    "classifier on random features instead."))
st.markdown(_(
    "**Switched off** here means |γ| < {threshold:g}: a tenth of the initial γ = 1, so the "
    "channel's normalised feature reaches the activation at under a tenth of its scale. "
    "With the book's sigmoid such a channel is nearly the constant sigmoid(β) and carries "
    "no information about the image (with ReLU and β < 0 it is 0). The table below gives "
    "the fractions at other thresholds too.").format(threshold=GAMMA_OFF))

base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr", "activation",
                                "snapshot_every"), "train-only")
if not problems:
    grid = train_only_grid(base)
    counts = {p.arm: trained_count(p.config) for p in grid}
    c1, c2 = st.columns(2)
    c1.metric(_("Parameters trained: everything"), f"{counts['all']:,}")
    c2.metric(_("Only gamma and beta / random weights"),
              f"{counts['bn_only']:,} / {counts['random']:,}")
    points = seeded(grid, "train-only")
    run_buttons(points, base, page="train-only")
    t = grid_panel(points, "train_only")
    if finished_all(t):
        mgr = ui.manager()
        by_arm = {arm: [mgr.get(r) for r in t[t.arm == arm].run_id]
                  for arm in dict.fromkeys(t.arm)}
        names = dict(zip(t.arm, t.run))
        r = readings.train_only(summarize(t))
        st.markdown(readings.train_only_text(r))
        for c in r.comparisons:
            st.write(c.text())
        st.dataframe(wcharts.gamma_off_table({names[a]: v for a, v in by_arm.items()}),
                     hide_index=True)
        for arm in ("bn_only", "all"):
            g = wcharts.pooled_gammas(by_arm.get(arm, []))
            if g.size:
                st.plotly_chart(charts.histogram_figure(
                    g, _("Final γ, {name} (every channel of every BN layer, all seeds)")
                    .format(name=_(names[arm])), "γ"), key=f"hist_{arm}")
        st.dataframe(wcharts.gamma_off_by_layer(by_arm.get("bn_only", []), GAMMA_OFF),
                     hide_index=True)
        st.caption(_("Per BN layer of the γ-and-β-only runs, seeds pooled."))
st.markdown(_(
    "**What LeNet cannot show.** The paper's numbers come from sufficiently deep ResNets: "
    "accuracy with only BatchNorm trained grows with depth (a CIFAR-10 ResNet-110 has "
    "about 110 BN layers and 8,000 γ and β, each rescaling a random feature that the layers "
    "after it recombine many times). LeNet has four BN layers and 452 γ and β, and "
    "its random features pass through two conv layers only: the numbers above are what "
    "such a shallow network reaches, not a test of the paper's claim at depth."))
