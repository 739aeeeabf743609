"""Compare runs: overlay curves, seeds as bands, config differences highlighted."""
import re

import streamlit as st

from bnviz.dashboard import charts

from bnviz.dashboard import compare

from bnviz.dashboard import ui
from bnviz import norm_kinds
from bnviz.metrics import grid_metrics, metric
from bnviz.dashboard.nav import via_app
from bnviz.i18n import N_, _

# The status filter's choices (values stay English: they are the runs' statuses), and the
# statuses a run's entry in the picker can also show.
STATUSES = [N_("finished"), N_("any"), N_("stopped"), N_("diverged"), N_("failed"),
            N_("interrupted")]
OTHER_STATUSES = (N_("queued"), N_("running"))

via_app()  # first request after a server start: rerun through app.py

st.title(_("Compare runs"))
mgr = ui.manager()
results_library = getattr(mgr, "library", None)
if mgr.store is None and results_library is None:
    st.error(_("Neither the run store nor the results library is available, so there are no "
               "runs to compare."))
    st.stop()

url_runs = st.query_params.get("runs", "")
wanted = [r for r in url_runs.split(",") if re.fullmatch(r"[0-9a-f]{12}", r)]
if url_runs and len(wanted) != len([r for r in url_runs.split(",") if r]):
    st.warning(_("Some run ids in the link were not valid and were ignored."))

with st.sidebar:
    st.subheader(_("Filters"))
    sources = [x for x, ok in ((N_("this server's runs"), mgr.store is not None),
                               (N_("the results library"), results_library is not None)) if ok]
    source = st.multiselect(_("Runs from"), sources, sources, key="compare_sources",
                            format_func=_,
                            help=_("The results library ships with bnviz: every question "
                                   "page's default grid over 5 seeds on the full data set."))
    # keys: switching the language keeps the filters
    status = st.selectbox(_("Status"), STATUSES, format_func=_, key="compare_status")
    norm = st.selectbox(_("Normalisation"), ["any", *norm_kinds.IDS], key="compare_norm",
                        format_func=lambda n: _(n) if n == "any" else _(norm_kinds.label(n)))
library = []
if mgr.store is not None and "this server's runs" in source:
    library += mgr.list_runs(status=None if status == "any" else status, limit=300)
from_library: set[str] = set()
if results_library is not None and "the results library" in source:
    lib_runs = [r for r in results_library.list_runs()
                if status == "any" or r["status"] == status]
    from_library = {r["run_id"] for r in lib_runs}
    library += lib_runs
if norm != "any":
    library = [r for r in library if r["config"].get("norm") == norm]
known = {r["run_id"]: r for r in library}
for rid in wanted:
    if rid not in known and (v := mgr.get(rid)) is not None:
        known[rid] = {"run_id": rid, "config": v.config.to_dict(), "summary": v.summary,
                      "status": v.status}
missing = [r for r in wanted if r not in known]
if missing:
    st.warning(_("Not in this server's store: {runs}").format(runs=", ".join(missing)))


def describe(rid):
    r = known[rid]
    c, s = r["config"], r.get("summary") or {}
    acc = s.get("test_acc")
    acc = _("test {acc:.3f}").format(acc=acc) if isinstance(acc, float) and acc == acc \
        else _(r["status"])
    sites = "".join(k[-1] if c.get(f"norm_{k}") else "·" for k in ("conv1", "conv2", "fc1",
                                                                    "fc2"))
    where = _("library · ") if rid in from_library else ""
    return _("{where}{run} · {norm}[{sites}] bs {bs} lr {lr} ep {epochs} seed {seed} · "
             "{acc}").format(
        where=where, run=rid[:6], norm=c.get('norm'), sites=sites, bs=c.get('batch_size'),
        lr=c.get('lr'), epochs=c.get('epochs'), seed=c.get('seed'), acc=acc)


def library_default() -> list[str]:
    """With nothing chosen yet: the chapter's comparison from the results library, LeNet-BN
    against LeNet, every seed (averaged into bands below)."""
    if results_library is None:
        return []
    from bnviz.library.catalog import QUESTION
    ids = [results_library.find(p.config) for p in QUESTION["presets"].points()
           if p.label in ("d2l-lenet-bn", "d2l-lenet")]
    return [i for i in ids if i in known]


if "compare_sel" not in st.session_state:
    mine = st.session_state.get("run_id")
    st.session_state.compare_sel = [r for r in wanted if r in known] or (
        [mine] if mine in known else library_default() or list(known)[:3])
chosen = st.multiselect(_("Runs to compare"), list(known), key="compare_sel",
                        format_func=describe)
st.query_params["runs"] = ",".join(chosen)
if not chosen:
    st.info(_("Pick runs above: train some in the Live lab first, or open a shared link."))
    st.stop()

views = [v for rid in chosen if (v := mgr.get(rid)) is not None]
aggregate = st.toggle(_("Average repeated seeds of the same config (band: 95% CI over seeds)"),
                      True, key="compare_aggregate")  # a key: a language switch keeps it
st.caption(_("Share link: {url}").format(url=ui.page_url() + "?runs=" + ",".join(chosen)))

table = compare.metrics_table(views)
diff_cols = [c for c in compare.differing_knobs(views) if c in table]
st.dataframe(table.style.format({c: f"{{:.{metric(c).digits}f}}" for c in grid_metrics()},
                                na_rep="–")
             .set_properties(subset=diff_cols, **{"background-color": "#fff3cd"}),
             hide_index=True, width="stretch")
st.caption(_("Highlighted columns: the settings in which these runs differ."))
st.download_button(_("Table (CSV)"), table.to_csv(index=False), "bnviz-compare.csv", "text/csv")

c1, c2 = st.columns(2)
c1.plotly_chart(charts.band_figure(compare.curves(views, "test_acc", aggregate),
                                   _("Test accuracy"), _("test accuracy"), "cmp"))
c2.plotly_chart(charts.band_figure(compare.curves(views, "train_acc", aggregate),
                                   _("Train accuracy (epoch so far)"), _("train accuracy"),
                                   "cmp"))
c3, c4 = st.columns(2)
c3.plotly_chart(charts.lines_figure(compare.loss_curves(views), "epoch", "loss", "run",
                                    _("Training loss (smoothed)"), _("loss"), "cmp"))
c4.plotly_chart(charts.band_figure(compare.curves(views, "gap", aggregate),
                                   _("Train – test gap"), _("gap"), "cmp"))
stat = st.radio(_("Layer statistic"), ["gamma", "beta", "running_mean", "running_var"],
                horizontal=True, key="compare_stat")  # a key: a language switch keeps it
st.plotly_chart(charts.lines_figure(compare.affine_means(views, stat), "epoch", "value", "run",
                                    _("Mean {stat} per layer").format(stat=stat), stat, "cmp",
                                    facet="layer"))
