"""Streamlit panel for a grid of runs (ablation, sweeps): submit, poll, table, chart."""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from . import charts, ui
from .config import KNOBS
from .experiments import GridPoint, result_row


def grid_id(points: list[GridPoint]) -> str:
    ids = "|".join(f"{p.config.config_id()}:{p.config.seed}" for p in points)
    return hashlib.sha1(ids.encode()).hexdigest()[:12]


def submit_grid(points: list[GridPoint], rerun: bool = False) -> None:
    gid = grid_id(points)
    for p in points:
        try:
            ui.manager().submit(p.config, session=ui.session_id(), reuse=not rerun, group=gid)
        except ui.JobRefused as e:
            st.error(f"{p.label}: not started — {e}")
            return


def grid_table(points: list[GridPoint]) -> pd.DataFrame:
    """One row per grid point, with the knobs the grid varies as columns."""
    mgr = ui.manager()
    varying = [k.name for k in KNOBS if len({getattr(p.config, k.name) for p in points}) > 1]
    rows = []
    for p in points:
        row = result_row(p.label, mgr.find(p.config))
        row.update({k: getattr(p.config, k) for k in varying})
        rows.append(row)
    return pd.DataFrame(rows)


def grid_controls(names: tuple[str, ...], page: str) -> tuple:
    """URL-restored sidebar controls for a grid page; returns (base config, problems)."""
    warnings = ui.load_url_once(page)
    if warnings:
        st.warning("Some link parameters were ignored:\n\n- " + "\n- ".join(warnings))
    with st.sidebar:
        st.subheader("Base configuration")
        for name in names:
            ui.knob_widget(name)
    base, problems = ui.controls_from_state()
    for p in problems:
        st.error(p)
    ui.sync_url(base, None)
    return base, problems


def run_buttons(points: list[GridPoint], base, label: str = "▶ Run the experiment") -> None:
    c1, c2, c3 = st.columns([1.3, 1, 3])
    if c1.button(label, type="primary", key=f"go_{label}"):
        submit_grid(points)
    if c2.button("↻ Run again", key=f"again_{label}",
                 help="retrain even where an identical finished run is stored"):
        submit_grid(points, rerun=True)
    c3.text_input("Share link", ui.share_link(base, None), key=f"link_{label}",
                  help="Opens this experiment and its stored results")


def grid_panel(points: list[GridPoint], key: str, chart=charts.grid_bar_figure) -> pd.DataFrame:
    """Progress of the whole grid, its table and chart; polls while any run is active."""
    table = grid_table(points)
    active = table.status.isin(["queued", "running"]).any()

    @st.fragment(run_every=1.0 if active else None)
    def panel():
        t = grid_table(points)
        done = int((~t.status.isin(["queued", "running", "not run"])).sum())
        running = t[t.status == "running"]
        parts, frac = [], 0.0  # several runs train at once when the server has the workers
        for row in running.itertuples():
            v = ui.manager().get(row.run_id)
            if v is not None:
                parts.append(f"{row.run} ({v.progress['fraction']:.0%})")
                frac += v.progress["fraction"]
        now = f" — now: {', '.join(parts)}" if parts else ""
        if done < len(t):
            st.progress(min(1.0, (done + frac) / len(t)), text=f"{done} of {len(t)} runs done{now}")
        st.plotly_chart(chart(t, revision=key), key=f"chart_{key}")
        st.dataframe(t.drop(columns=["run_id"]).style.format(
            {c: "{:.3f}" for c in ("train_loss", "train_acc", "test_acc", "gap",
                                   "fluctuation")}, na_rep="–"),
            hide_index=True, width="stretch")
        st.download_button("Table (CSV)", t.to_csv(index=False), f"bnviz-{key}.csv",
                           "text/csv", key=f"csv_{key}")
        if active and not t.status.isin(["queued", "running"]).any():
            st.rerun()
    panel()
    return table
