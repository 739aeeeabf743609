"""Why test accuracy jumps around with BN: running stats vs PreciseBN vs batch stats."""
import pandas as pd
import streamlit as st

from bnviz import readings
from bnviz.dashboard import ui
from bnviz.experiments import fluctuation_grid
from bnviz.metrics import EVAL_MODE_LABELS, EVAL_MODES
from bnviz.runs.results import summarize
from bnviz.stats import Estimate
from bnviz.dashboard.grid import grid_controls, grid_table, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.i18n import _

PAGE = "fluctuation"

via_app()  # first request after a server start: rerun through app.py

st.title(_("Fluctuating test accuracy"))
st.markdown(_("In eval mode BN normalises with *running* statistics: an exponential moving "
              "average of past batches, computed with past weights. When the weights move fast "
              "(lr 1.0) that average lags, and test accuracy swings. **PreciseBN** recomputes the "
              "statistics for the current weights on a few thousand training images; **batch "
              "statistics** normalise each test batch by itself. Each run below evaluates all "
              "three at every point, so the three are measured on the same weights."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr", "momentum",
                                "eval_every", "precise_samples"), PAGE)
points = seeded(fluctuation_grid(base), PAGE)
cfg = points[0].config
if not problems:
    run_buttons(points, base, page=PAGE)
    table = grid_table(points)
    first = ui.manager().find(cfg)
    if table.attrs.get("library_note"):
        st.caption(table.attrs["library_note"])
    if first is None:
        st.info(_("Press Run to train {n} seed(s) and evaluate each three ways.").format(
            n=len(points)))
    else:
        st.subheader((_("Seed {seed}, from the results library") if first.info.get(
            "source") == "library" else _("Seed {seed}, live")).format(seed=cfg.seed))
        ui.live_run(first.run_id, key="fl")
    summary = summarize(table)
    n = int(summary.n.iloc[0]) if len(summary) else 0
    if n and "fluct_running" in summary:
        reading = readings.fluctuation(summary)
        row = summary.iloc[0]
        st.dataframe(pd.DataFrame({
            _("statistics"): [_(EVAL_MODE_LABELS[m]) for m in EVAL_MODES],
            _("std of test acc over the last 5 evaluations"): [
                Estimate(row[f"fluct_{m}"], row[f"fluct_{m}_ci"], n).text(4) for m in EVAL_MODES],
            _("final test acc"): [Estimate(row[f"final_acc_{m}"], row[f"final_acc_{m}_ci"], n).text(3)
                               for m in EVAL_MODES]}), hide_index=True)
        st.caption(_("Mean ± 95% CI over {n} of {total} seeds (Student t).").format(
            n=n, total=len(points)))
        for c in reading.comparisons[:2]:
            st.write(c.text())
