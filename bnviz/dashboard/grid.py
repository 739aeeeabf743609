"""Streamlit panel for a grid of runs (ablation, sweeps): seeds, submit, poll, table, chart."""
from __future__ import annotations

import contextlib
import hashlib

import pandas as pd
import streamlit as st

from bnviz.config import shown
from bnviz.dashboard import charts
from bnviz.i18n import N_, _

from bnviz.dashboard import ui
from bnviz.library import data_text
from bnviz.experiments import DEFAULT_SEEDS, GridPoint, with_seeds
from bnviz.metrics import format_estimate, grid_metrics, metric
from bnviz.runs.results import runs_table, summarize


def grid_id(points: list[GridPoint]) -> str:
    ids = "|".join(f"{p.config.config_id()}:{p.config.seed}" for p in points)
    return hashlib.sha1(ids.encode()).hexdigest()[:12]


def submit_grid(points: list[GridPoint], rerun: bool = False) -> None:
    gid = grid_id(points)
    mgr = ui.manager()
    # queued together, so that runs which can train as one batched model leave together
    with getattr(mgr, "together", contextlib.nullcontext)():
        for p in points:
            if not rerun:
                live = mgr.find(p.config)
                if live is not None and live.active:  # a second click while it trains
                    continue
            try:
                mgr.submit(p.config, session=ui.session_id(), reuse=not rerun, group=gid)
            except ui.JobRefused as e:
                st.error(_("{label} (seed {seed}): not started — {error}").format(
                    label=_(p.label), seed=p.config.seed, error=e))
                return


HERE = " · run here"  # label suffix of a live run shown beside the library's of its config
HERE_LABEL = N_("{label} · run here")  # the same, as the table shows it (label + HERE)
HERE_ARM = "@here"  # and its arm id's suffix (readings take the library's arm, never this)


def grid_table(points: list[GridPoint]) -> pd.DataFrame:
    """One row per run (configuration × seed), with the knobs the grid varies as columns and
    `source` ("library" or "here"). Where the results library answers a point and this
    server also has its own run of that config and seed, both rows are kept: the live one
    labelled HERE, beside the library's. Labels are in the session's language: the grids
    write them in it (bnviz.experiments), and one marked with N_ is translated here."""
    mgr = ui.manager()
    lib = getattr(mgr, "library", None)
    rows, views, sources = [], [], []
    extra, extra_views = [], []
    for p in points:
        here = mgr.find(p.config, library=False)
        stored = lib.get(p.config) if lib is not None else None
        shown_p = GridPoint(_(p.label), p.config, p.arm)
        if stored is None or (here is not None and here.run_id == stored.run_id):
            rows.append(shown_p), views.append(here), sources.append("here")
        else:
            rows.append(shown_p), views.append(stored), sources.append("library")
            if here is not None:
                extra.append(GridPoint(_(HERE_LABEL).format(label=_(p.label)), p.config,
                                       p.arm + HERE_ARM))
                extra_views.append(here)
    table = runs_table(rows + extra, views + extra_views)
    table["source"] = sources + ["here"] * len(extra)
    table.attrs["library_note"] = library_note([v for v in views if v is not None])
    return table


def library_note(views: list) -> str:
    """Where the numbers come from, when any are the library's: seeds, epochs, data, the
    bnviz and torch versions and the machine that measured them ("" when none are)."""
    views = [v for v in views if v.info.get("source") == "library"]
    if not views:
        return ""
    seeds: dict[str, set] = {}
    for v in views:
        seeds.setdefault(v.config.config_id(), set()).add(v.config.seed)
    counts = sorted({len(s) for s in seeds.values()})
    epochs = sorted({v.config.epochs for v in views})
    datas = list(dict.fromkeys(data_text(v.info) for v in views))
    i = views[0].info
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    ep = "/".join(map(str, epochs))
    fields = dict(n=n, epochs=ep, data="; ".join(datas), version=i.get('bnviz_version', '?'),
                  torch=i.get('torch_version', '?'), device=i.get('device', 'cpu'),
                  machine=i.get('machine', ''))
    if epochs == [1]:
        return _(":material/library_books: From the results library: {n} paired seeds per "
                 "configuration, {epochs} epoch each, {data}; measured with bnviz {version} "
                 "(torch {torch}, {device}, {machine}). Change a control to ask another "
                 "question; ↻ Run again trains this one here, beside these.").format(**fields)
    return _(":material/library_books: From the results library: {n} paired seeds per "
             "configuration, {epochs} epochs each, {data}; measured with bnviz {version} "
             "(torch {torch}, {device}, {machine}). Change a control to ask another "
             "question; ↻ Run again trains this one here, beside these.").format(**fields)


def _seeds_key(page: str) -> str:
    return f"seeds_{page}"


def seeds_from_url(page: str) -> list[str]:
    """Restore the seeds control from the link once; returns a warning if the value is bad."""
    key = _seeds_key(page)
    if key in st.session_state:
        return []
    raw = st.query_params.get_all("seeds")
    st.session_state[key] = DEFAULT_SEEDS
    if not raw:
        return []
    try:
        n = int(str(raw[-1]))
    except ValueError:
        n = -1
    if 1 <= n <= ui.MAX_SEEDS:
        st.session_state[key] = n
        return []
    return [_("seeds must be a whole number from 1 to {max}, got {value}; using "
              "{default}").format(max=ui.MAX_SEEDS, value=shown(raw[-1]), default=DEFAULT_SEEDS)]


def page_seeds(page: str) -> int:
    return int(st.session_state.get(_seeds_key(page), DEFAULT_SEEDS))


def seeds_extra(page: str) -> dict[str, str]:
    n = page_seeds(page)
    return {} if n == DEFAULT_SEEDS else {"seeds": str(n)}


def seeds_widget(page: str) -> int:
    st.number_input(_("Seeds per configuration"), 1, ui.MAX_SEEDS, step=1, key=_seeds_key(page),
                    help=_("Every configuration is trained once per seed (paired: seed s of "
                           "one arm starts from the same weights as seed s of another). Charts "
                           "show the mean with a 95% confidence interval over seeds and each "
                           "seed as a dot; with one seed there is no interval."))
    return page_seeds(page)


def _reset(page: str) -> None:
    ui.set_controls(ui.page_base(page))
    st.session_state[_seeds_key(page)] = DEFAULT_SEEDS


def grid_controls(names: tuple[str, ...], page: str) -> tuple:
    """URL-restored sidebar controls for a grid page, seeds included; returns
    (base config, problems). The page's seed count is `page_seeds(page)`. Away from the
    page's defaults (the question the results library answers) a button goes back."""
    warnings = ui.load_url_once(page) + seeds_from_url(page)
    if warnings:
        ui.show_ignored(warnings)
    with st.sidebar:
        st.subheader(_("Base configuration"))
        for name in names:
            ui.knob_widget(name)
        seeds_widget(page)
    base, problems = ui.controls_from_state()
    if base != ui.page_base(page) or page_seeds(page) != DEFAULT_SEEDS:
        st.sidebar.button(_("↺ Back to the stored answer"), on_click=_reset, args=(page,),
                          help=_("the page's default settings, which the results library "
                                 "answers without training"))
    for p in problems:
        st.error(p)
    ui.sync_url(base, None, seeds_extra(page), page=page)
    return base, problems


def seeded(points: list[GridPoint], page: str) -> list[GridPoint]:
    return with_seeds(points, page_seeds(page))


def run_buttons(points: list[GridPoint], base, label: str = N_("▶ Run the experiment"),
                page: str | None = None) -> None:
    """`label`: English, marked with N_ (the widgets' keys are made of it; it is shown with _())."""
    c1, c2, c3 = st.columns([1.3, 1, 3])
    if c1.button(_(label), type="primary", key=f"go_{label}"):
        submit_grid(points)
    if c2.button(_("↻ Run again"), key=f"again_{label}",
                 help=_("retrain even where an identical finished run is stored")):
        submit_grid(points, rerun=True)
    c3.text_input(_("Share link"), ui.share_link(base, None, seeds_extra(page) if page else None,
                                                 page=page),
                  key=f"link_{label}", help=_("Opens this experiment and its stored results"))


# The grid metrics a page's summary table leaves out (every run's table has them all).
SUMMARY_HIDDEN = ("test_acc", "fluctuation")


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The per-configuration table as people read it: mean ± 95% CI half-width, n, for
    every grid metric of the registry (bnviz.metrics). Headers and labels in the session's
    language."""
    out = pd.DataFrame({_("configuration"): [_(str(r)) for r in summary["run"]],
                        "n": [f"{n}/{r}" for n, r in zip(summary["n"], summary["runs"])]})
    for col in grid_metrics():
        if col in SUMMARY_HIDDEN or col not in summary:
            continue
        m = metric(col)
        if m.applies is not None and summary[col].isna().all():
            continue  # measured only where a knob asks for it, and no run here does
        out[_(m.label)] = [format_estimate(v, h, m.digits)
                        for v, h in zip(summary[col], summary[f"{col}_ci"])]
    if summary["ended_badly"].any():
        out[_("diverged/failed")] = summary["ended_badly"]
    return out


def grid_panel(points: list[GridPoint], key: str, chart=charts.grid_bar_figure) -> pd.DataFrame:
    """Progress of the whole grid, its chart and tables; polls while any run is active.
    Returns the runs table (one row per configuration × seed)."""
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
                parts.append(_("{label}, seed {seed} ({fraction:.0%})").format(
                    label=_(str(row.run)), seed=row.seed, fraction=v.progress['fraction']))
                frac += v.progress["fraction"]
        if done < len(t) and (done or frac or len(running)
                              or t.status.isin(["queued"]).any()):
            if parts:
                text = _("{done} of {total} runs done — now: {running}").format(
                    done=done, total=len(t), running=", ".join(parts))
            else:
                text = _("{done} of {total} runs done").format(done=done, total=len(t))
            st.progress(min(1.0, (done + frac) / len(t)), text=text)
        note = t.attrs.get("library_note")
        asked = t[~t.arm.str.endswith(HERE_ARM)]  # the grid's own runs, not the extra rows
        missing = int((asked.status == "not run").sum())
        if note:
            st.caption(note)
            if missing:
                held = int((asked.source == "library").sum())
                st.info(_("The results library holds {held} of these {total} runs; press "
                          "**Run** to train the other {missing} here.").format(
                    held=held, total=len(asked), missing=missing))
        elif missing == len(asked):
            st.info(no_answer_text(points))
        st.plotly_chart(chart(t, revision=key), key=f"chart_{key}")
        summary = summarize(t)
        st.dataframe(summary_view(summary), hide_index=True, width="stretch")
        st.caption(_("Mean ± half-width of the 95% confidence interval over seeds (Student t); "
                     "n = finished runs / runs. Test accuracy with running statistics is what "
                     "PyTorch's eval mode gives; PreciseBN recomputes the statistics for the "
                     "final weights and swings far less from run to run."))
        with st.expander(_("Every run")):
            st.dataframe(every_run_view(t).style.format(
                {c: f"{{:.{metric(c).digits}f}}" for c in grid_metrics() if c in t},
                na_rep="–"),
                hide_index=True, width="stretch")
        c1, c2 = st.columns(2)
        c1.download_button(_("Runs (CSV)"), t.to_csv(index=False), f"bnviz-{key}-runs.csv",
                           "text/csv", key=f"csv_{key}")
        c2.download_button(_("Summary (CSV)"), summary.to_csv(index=False),
                           f"bnviz-{key}-summary.csv", "text/csv", key=f"csvs_{key}")
        if active and not t.status.isin(["queued", "running"]).any():
            st.rerun()
    panel()
    return table


# The "Every run" table's words, as the page shows them (the CSV keeps the ids).
EVERY_RUN_COLUMNS = {"run": N_("run"), "arm": N_("arm"), "status": N_("status"),
                     "source": N_("source")}
RUN_STATUS = {"not run": N_("not run"), "queued": N_("queued"), "running": N_("running"),
              "finished": N_("finished"), "stopped": N_("stopped"), "diverged": N_("diverged"),
              "failed": N_("failed"), "interrupted": N_("interrupted")}
RUN_SOURCE = {"library": N_("library"), "here": N_("here")}


def every_run_view(t: pd.DataFrame) -> pd.DataFrame:
    """The runs table without run ids, its status and source words and its headers in the
    session's language (metric and knob columns keep their ids)."""
    out = t.drop(columns=["run_id"])
    if "status" in out:
        out["status"] = [_(RUN_STATUS.get(s, s)) if isinstance(s, str) else s
                         for s in out["status"]]
    if "source" in out:
        out["source"] = [_(RUN_SOURCE.get(s, s)) if isinstance(s, str) else s
                         for s in out["source"]]
    return out.rename(columns={c: _(h) for c, h in EVERY_RUN_COLUMNS.items()})


def no_answer_text(points: list[GridPoint]) -> str:
    from bnviz import cost, data
    try:
        from bnviz.runs.training import grid_seconds
        secs = grid_seconds([p.config for p in points], *data.sizes(points[0].config.dataset))
        return _("No stored answer for these settings yet: the results library answers this "
                 "page's default settings (↺ in the sidebar goes back to them). Press **Run** to "
                 "measure this question ({runs} runs, {time} of training here).").format(
            runs=len(points), time=cost.describe_seconds(secs))
    except Exception:  # no data set here to size the runs: the Run button says why
        pass
    return _("No stored answer for these settings yet: the results library answers this "
             "page's default settings (↺ in the sidebar goes back to them). Press **Run** to "
             "measure this question.")


def finished_all(table: pd.DataFrame) -> bool:
    return bool(len(table)) and not table.status.isin(["queued", "running", "not run"]).any()
