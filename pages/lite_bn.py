"""d2l's exercise 4 (English edition): a "lite" BN that only removes the mean, or only the
variance. How does it behave?"""
import streamlit as st

from bnviz import readings
from bnviz.activations import SITES
from bnviz.dashboard import charts, distributions, ui
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import lite_grid
from bnviz.i18n import _
from bnviz.runs.results import summarize

via_app()  # first request after a server start: rerun through app.py

PAGE = "lite-bn"
st.title(_("Lite BN: only the mean, or only the variance"))
st.markdown(_(
    "*Dive into Deep Learning* (English edition, batch normalization, exercise 4) asks: "
    "\"implement a lite version of batch normalization that only removes the mean, or "
    "alternatively one that only removes the variance. How does it behave?\" Here are both, "
    "as norm kinds like any other, each with its own learnable γ and β and running "
    "statistics:\n"
    "- **mean only**: y = γ·(x − μ_B) + β — centred, but each channel keeps its own scale;\n"
    "- **variance only**: y = γ·x / √(σ²_B + ε) + β — unit variance, but the mean stays "
    "(divided by σ_B);\n"
    "- beside **full BN** and **no norm**, at the same four sites, on the same paired seeds "
    "(seed s of every arm starts from the same weights)."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr",
                                "activation", "eval_every"), PAGE)
points = seeded(lite_grid(base), PAGE)
if not problems:
    run_buttons(points, base, page=PAGE)
    t = grid_panel(points, "lite")
    if finished_all(t):
        reading = readings.lite(summarize(t))
        st.subheader(_("What these runs show"))
        by_name: dict[str, list] = {}
        for c in reading.comparisons:
            by_name.setdefault(c.name_a, []).append(c)
        for name, comps in by_name.items():
            shown = _(name)
            heading = _("**{name}** against full BN:").format(name=shown[:1].upper() + shown[1:])
            st.markdown(heading + "\n" + "\n".join(f"- {c.text()}" for c in comps))
        if reading.at_chance:
            st.warning(_("At chance level (about 0.1): {arms} — it did not train at these "
                         "settings.").format(arms=", ".join(reading.at_chance)))
        st.caption(_("A difference is claimed only where the two 95% confidence intervals over "
                     "seeds do not overlap. The swing is the standard deviation of the test "
                     "accuracy over the last five evaluations of each run."))
        by_arm = distributions.views_by_arm(t, ui.manager().get)
        st.plotly_chart(charts.band_figure(
            distributions.arm_curves(by_arm, "test_acc"),
            _("Test accuracy over training (mean and 95% CI of the seeds)"), _("test accuracy")),
            key="lite_acc")
        st.subheader(_("What each does to the activation's input"))
        st.markdown(_(
            "With the norm before the activation, the activation's input *is* the norm's "
            "output. Full BN makes every channel's mean β and its variance about γ²; "
            "mean-only BN removes the mean but keeps each channel's own variance, whatever "
            "size the layer's weights give it; variance-only BN fixes the scale but leaves "
            "each channel's mean wherever the weights put it. Measured at every evaluation on "
            "that step's training batch, in training mode."))
        site = st.radio(_("Layer"), SITES, index=2, horizontal=True, key="lite_site")
        c1, c2 = st.columns(2)
        c1.plotly_chart(distributions.stat_figure(by_arm, site, "act_in", "chvar"),
                        key="lite_var")
        c2.plotly_chart(distributions.stat_figure(by_arm, site, "act_in", "chmean_sd"),
                        key="lite_mean")
        st.caption(_("Left: each channel's variance, averaged over the channels. Right: how far "
                     "the channels' means are spread (their standard deviation across the "
                     "channels; 0 when every channel is centred on the same value)."))
        first = {label: vs[0] for label, vs in by_arm.items()}
        st.plotly_chart(distributions.percentile_figure(first, site, "act_in"),
                        key="lite_pct")
    else:
        st.caption(_("The readings and the distribution charts appear here once every run has "
                     "finished."))
