"""Why test accuracy jumps around with BN: running stats vs PreciseBN vs batch stats."""
import streamlit as st

from bnviz import reading, ui
from bnviz.experiments import GridPoint
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("Fluctuating test accuracy")
st.markdown("In eval mode BN normalises with *running* statistics: an exponential moving "
            "average of past batches, computed with past weights. When the weights move fast "
            "(lr 1.0) that average lags, and test accuracy swings. **PreciseBN** recomputes the "
            "statistics for the current weights on a few thousand training images; **batch "
            "statistics** normalise each test batch by itself. The run below evaluates all "
            "three at every point.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr", "momentum",
                                "eval_every", "precise_samples"), "fluct")
cfg = base.replace(compare_eval=True)
point = GridPoint("fluctuation run", cfg)
if not problems:
    run_buttons([point], cfg)
    v = ui.manager().find(cfg)
    if v is None:
        st.info("Press Run to train once and evaluate three ways.")
    else:
        ui.live_run(v.run_id, key="fl")
        ev = v.evals_frame()
        if not v.active and len(ev) >= 3:
            last = max(3, len(ev) // 2)
            rows = {m: reading.fluctuation(list(ev[f"acc_{m}"]), last)
                    for m in ("running", "precise", "batch") if f"acc_{m}" in ev}
            st.dataframe({"statistics": list(rows), f"std of test acc, last {last} evals":
                          list(rows.values()), "final test acc":
                          [ev[f"acc_{m}"].iloc[-1] for m in rows]}, hide_index=True)
            steadiest = min(rows, key=rows.get)
            st.success(f"Steadiest: **{steadiest}** statistics (std {rows[steadiest]:.4f} vs "
                       f"{rows['running']:.4f} for running statistics).")
