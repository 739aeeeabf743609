"""Why test accuracy jumps around with BN: running stats vs PreciseBN vs batch stats."""
import pandas as pd
import streamlit as st

from bnviz.dashboard import reading

from bnviz.dashboard import ui
from bnviz.experiments import GridPoint
from bnviz.stats import compare_text, mean_ci
from bnviz.dashboard.grid import library_note, grid_controls, page_seeds, run_buttons, seeded
from bnviz.dashboard.nav import via_app

via_app()  # first request after a server start: rerun through app.py

st.title("Fluctuating test accuracy")
st.markdown("In eval mode BN normalises with *running* statistics: an exponential moving "
            "average of past batches, computed with past weights. When the weights move fast "
            "(lr 1.0) that average lags, and test accuracy swings. **PreciseBN** recomputes the "
            "statistics for the current weights on a few thousand training images; **batch "
            "statistics** normalise each test batch by itself. Each run below evaluates all "
            "three at every point, so the three are measured on the same weights.")
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr", "momentum",
                                "eval_every", "precise_samples"), "fluct")
cfg = base.replace(compare_eval=True)
points = seeded([GridPoint("fluctuation run", cfg)], "fluct")
MODES = ("running", "precise", "batch")
if not problems:
    run_buttons(points, cfg, page="fluct")
    views = [ui.manager().find(p.config) for p in points]
    note = library_note([v for v in views if v is not None])
    if note:
        st.caption(note)
    first = views[0]
    if first is None:
        st.info(f"Press Run to train {len(points)} seed(s) and evaluate each three ways.")
    else:
        st.subheader(f"Seed {cfg.seed}" + (", from the results library" if first.info.get(
            "source") == "library" else ", live"))
        ui.live_run(first.run_id, key="fl")
    done = [v for v in views if v is not None and v.status == "finished"]
    if done:
        rows = []
        for v in done:
            ev = v.evals_frame()
            if len(ev) < 3:
                continue
            last = max(3, len(ev) // 2)
            for m in MODES:
                if f"acc_{m}" in ev:
                    rows.append(dict(seed=v.config.seed, mode=m, last=last,
                                     std=reading.fluctuation(list(ev[f"acc_{m}"]), last),
                                     final=ev[f"acc_{m}"].iloc[-1]))
        if rows:
            df = pd.DataFrame(rows)
            est = {m: (mean_ci(df[df["mode"] == m]["std"]), mean_ci(df[df["mode"] == m]["final"]))
                   for m in MODES if (df["mode"] == m).any()}
            st.dataframe(pd.DataFrame({
                "statistics": list(est),
                f"std of test acc over the last {int(df['last'].max())} evaluations":
                    [e[0].text(4) for e in est.values()],
                "final test acc": [e[1].text(3) for e in est.values()]}), hide_index=True)
            st.caption(f"Mean ± 95% CI over {len(done)} of {len(points)} seeds "
                       f"(Student t); {page_seeds('fluct')} requested.")
            for m in ("precise", "batch"):
                if m in est:
                    st.write(compare_text(f"{m} statistics", est[m][0], "running statistics",
                                          est["running"][0], "epoch-to-epoch std",
                                          digits=4).replace("has the higher", "has the larger"))
