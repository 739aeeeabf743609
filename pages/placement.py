"""BN before or after the activation, with the book's sigmoid and with ReLU: accuracy, and
what the activation sees in each case."""
import streamlit as st

from bnviz import readings
from bnviz.activations import SITES
from bnviz.dashboard import charts, distributions, ui
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import placement_grid
from bnviz.i18n import _
from bnviz.runs.results import summarize

via_app()  # first request after a server start: rerun through app.py

PAGE = "placement"
st.title(_("BN before or after the activation"))
st.markdown(_(
    "The book puts BN **between** the conv or linear layer and the activation, as Ioffe and "
    "Szegedy (2015) did: the activation then always sees inputs with a mean of β and a "
    "spread of about γ per channel. Many networks since put it **after** the activation; the "
    "chapter says only that the placement is a choice. Here are both, with the book's sigmoid "
    "and with ReLU, on the same paired seeds (both placements of a seed start from the same "
    "weights). After the activation, BN normalises what the activation gives, and the "
    "activation itself gets the layer's raw output: watch what that does to a sigmoid."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "batch_size", "lr",
                                "eval_every"), PAGE)
points = seeded(placement_grid(base), PAGE)
if not problems:
    run_buttons(points, base, page=PAGE)
    t = grid_panel(points, "placement")
    if finished_all(t):
        reading = readings.placement(summarize(t))
        st.subheader(_("What these runs show"))
        st.markdown("\n".join(f"- {c.text()}" for c in reading.comparisons))
        if reading.at_chance:
            st.warning(_("At chance level (about 0.1): {arms} — it did not train at these "
                         "settings.").format(arms=", ".join(reading.at_chance)))
        st.caption(_("A difference is claimed only where the two 95% confidence intervals over "
                     "seeds do not overlap."))
        by_arm = distributions.views_by_arm(t, ui.manager().get)
        st.plotly_chart(charts.band_figure(
            distributions.arm_curves(by_arm, "test_acc"),
            _("Test accuracy over training (mean and 95% CI of the seeds)"), _("test accuracy")),
            key="placement_acc")
        st.subheader(_("What the activation sees"))
        site = st.radio(_("Layer"), SITES, index=2, horizontal=True, key="placement_site")
        side = st.radio(_("Where"), ("act_in", "act_out"), horizontal=True, key="placement_side",
                        format_func=lambda s: {"act_in": _("activation's input"),
                                               "act_out": _("activation's output")}[s])
        first = {label: vs[0] for label, vs in by_arm.items()}
        st.plotly_chart(distributions.percentile_figure(first, site, side),
                        key="placement_pct")
        st.plotly_chart(distributions.stat_figure(by_arm, site, "act_out", "sat"),
                        key="placement_sat")
        st.caption(_("Saturated: a sigmoid output within 0.01 of 0 or 1 (its input beyond ±4.6, "
                     "where its slope is below 0.01 and almost no gradient passes), or a ReLU "
                     "output of exactly 0 (no gradient passes at all). Measured at every "
                     "evaluation on that step's training batch, in training mode."))
    else:
        st.caption(_("The readings and the distribution charts appear here once every run has "
                     "finished."))
