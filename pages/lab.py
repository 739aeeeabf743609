"""Live lab: pick a config, train it in the background, watch four live charts."""
import streamlit as st

from bnviz import cost, data
from bnviz.dashboard import ui
from bnviz.config import KNOBS, SITES
from bnviz.dashboard.nav import via_app
from bnviz.i18n import N_, _
from bnviz.library import answers, data_text

via_app()  # first request after a server start: rerun through app.py

st.title(_("Live lab"))
warnings = ui.load_url_once("lab")
if warnings:
    ui.show_ignored(warnings)
mgr = ui.manager()
if mgr.store is None:
    st.warning(_("The run store could not be opened, so runs are kept in memory only: "
                 "{error}").format(error=mgr.last_store_error or _("see the server log")))
elif mgr.last_store_error:  # e.g. locked by a backup; runs are saved once it answers again
    st.warning(_("The run store is not answering; runs go on and are saved when it does: "
                 "{error}").format(error=mgr.last_store_error))

with st.sidebar:
    st.subheader(_("Presets"))
    ui.preset_buttons()
    st.subheader(_("Training"))
    for name in ("batch_size", "lr", "epochs", "seed"):
        ui.knob_widget(name)
    st.subheader(_("Where BN goes"))
    ui.knob_widget("norm")
    st.caption(_("Normalise after these layers:"))
    cols = st.columns(2)
    for i, site in enumerate(SITES):
        ui.knob_widget(f"norm_{site}", cols[i % 2])
    ui.knob_widget("norm_position")
    ui.knob_widget("dropout_fc")
    if st.session_state.get(ui.wkey("dropout_fc")):
        ui.knob_widget("dropout_p")
    shown = {"batch_size", "lr", "epochs", "seed", "norm", "norm_position", "dropout_fc",
             "dropout_p", *(f"norm_{s}" for s in SITES)}
    for group, title in (("bn", N_("BN details")), ("model", N_("Model")),
                         ("eval", N_("Evaluation")), ("data", N_("Data")),
                         ("training", N_("Device"))):
        with st.expander(_(title), expanded=group == "eval"):
            for k in KNOBS:
                if k.group == group and k.name not in shown:
                    ui.knob_widget(k.name)

cfg, problems = ui.controls_from_state()
for p in problems:
    st.error(p)

run_id = st.session_state.get("run_id")
view = mgr.get(run_id) if run_id else None
lib = getattr(mgr, "library", None)
if run_id and view is None and not st.session_state.get("autostarted") and not problems:
    # A shared link to a run this server never had: run the experiment it describes, if the
    # results library answers it or it is cheap here (a hosted server's autostart_s).
    st.session_state.autostarted = True
    limits = getattr(mgr, "limits", None)
    answered = lib is not None and lib.find(cfg) is not None
    if limits is None or limits.may_autostart(cfg, *data.sizes(cfg.dataset), answered):
        st.info((_("Run `{run}` from the link is not on this server; showing the results "
                   "library's run of the same experiment.") if answered else
                 _("Run `{run}` from the link is not on this server; starting the same "
                   "experiment here.")).format(run=run_id))
        run_id = ui.submit(cfg)
        view = mgr.get(run_id) if run_id else None
    else:
        st.info(_("Run `{run}` from the link is not on this server, and this server starts "
                  "only short runs by itself (at most {limit}). The controls are set as the "
                  "link describes: press **Train** to run this.").format(
            run=run_id, limit=cost.describe_seconds(limits.autostart_s, about=False)))
        run_id = None

if not problems:  # the estimate before Train: bnviz.cost's counts × this machine's rates
    est = cost.estimate(cfg, *data.sizes(cfg.dataset)).seconds()
    cap = getattr(getattr(mgr, "limits", None), "max_seconds", 0) or 0
    if cap and est > cap:
        note = _("Estimated run time: {estimate} here — over this server's {cap} per run, so "
                 "Train will be refused.").format(
            estimate=cost.describe_seconds(est),
            cap=cost.describe_seconds(cap, about=False))
    else:
        note = _("Estimated run time: {estimate} here.").format(
            estimate=cost.describe_seconds(est))
    st.caption(note)

background = lib.seeds_of(cfg) if lib is not None and not problems else []
c_train, c_stop, c_again, c_lib, c_link = st.columns([1, 1, 1.3, 1.9, 3.3])
if c_train.button(_("▶ Train"), type="primary", width="stretch",
                  disabled=bool(problems)):
    new, there = ui.train(cfg)  # trains here; the library's run is its own button's
    if new:
        v = mgr.get(new)
        if there and v is not None and v.status == "finished":
            st.toast(_("This exact run already finished on this server: shown below "
                       "(↻ Train again trains it anew)."))
        run_id, view = new, v
# A shared link can point at a stranger's live run: it is shown, but only its owner may stop it.
watching = view is not None and view.active and not mgr.owns(view.run_id, ui.session_id())
drawn_active = bool(view and view.active)  # the state the buttons are drawn for
if c_stop.button(_("■ Stop"), width="stretch", disabled=not drawn_active or watching,
                 help=_("Someone else started this run: you can watch it, not stop it.")
                 if watching else None):
    mgr.cancel(run_id, session=ui.session_id())
    view = mgr.get(run_id)
if view is not None and view.status == "finished" and answers(view.config, cfg) and \
        not ui.is_library_run(view) and c_again.button(_("↻ Train again"), width="stretch"):
    run_id = ui.submit(cfg, reuse=False)
    view = mgr.get(run_id) if run_id else view
# Where the library answers the controls (this seed too), its run on request only: ▶ Train
# always trains. (An icon, not an emoji: a browser without an emoji font draws a box.)
answer = lib.find(cfg) if background else None
if answer and answer != (view.run_id if view else None) and c_lib.button(
        _("Library's {n} seeds").format(n=len(background)), icon=":material/library_books:",
        width="stretch",
        disabled=bool(view and view.active),
        help=(_("Show the results library's run of these controls (seed {seed}), trained "
                "ahead of time on another machine: its reading, all the charts and the "
                "downloads, with its {n} seeds faded. Nothing is trained. Stop the run first.")
              if view and view.active else
              _("Show the results library's run of these controls (seed {seed}), trained "
                "ahead of time on another machine: its reading, all the charts and the "
                "downloads, with its {n} seeds faded. Nothing is trained.")).format(
            seed=cfg.seed, n=len(background))):
    st.session_state.run_id = answer
    st.rerun()  # drawn from the top as the run shown, without this button

# a results-library run answers the controls' config (its dataset "full" for "auto")
same = view is not None and answers(view.config, cfg)
ui.sync_url(cfg, run_id if same else None)
c_link.text_input(_("Share link"), ui.share_link(cfg, run_id if same else None),
                  help=_("Copy this link: it opens these controls and this run."))

if background:
    b = background[0]
    here = data.resolve_source(cfg.dataset)
    lower = here == "subset" and b.info.get("data_source") == "full"
    st.caption((_("Faded: the results library's {n} seeds of this configuration ({epochs} "
                  "epochs, {data}, bnviz {version}): where a run of it should land. This server "
                  "trains on the bundled subset (1/10 of the images), so a run here lands lower.")
                if lower else
                _("Faded: the results library's {n} seeds of this configuration ({epochs} "
                  "epochs, {data}, bnviz {version}): where a run of it should land.")).format(
        n=len(background), epochs=b.config.epochs, data=data_text(b.info),
        version=b.info.get('bnviz_version', '?')))
if view is None:
    st.info(_("Choose a configuration on the left (or a preset) and press **▶ Train** to "
              "train it here and watch it learn. The defaults are d2l's LeNet-BN; on the "
              "bundled subset a run takes seconds. **Library's {n} seeds** shows the results "
              "library's finished runs of it instead.").format(n=len(background)) if background
            else _("Choose a configuration on the left (or a preset) and press **▶ Train** to "
                   "train it here and watch it learn. The defaults are d2l's LeNet-BN; on the "
                   "bundled subset a run takes seconds."))
    if background:
        ui.background_charts(background)
    else:
        ui.placeholder_charts()
else:
    if not same:
        diff = ui.config_diff(view.config, cfg)
        st.caption(_("Showing the last run; the controls differ in {differences}. Press Train "
                     "to run them.").format(differences=", ".join(
                         f"**{k}** ({a} → {b})" for k, (a, b) in diff.items())))
    if watching:
        st.caption(_("👀 This run was started in another browser session; you are watching "
                     "it read-only."))
    ui.live_run(view.run_id, background=background if same else None, drawn_active=drawn_active)
    if not view.active:
        ui.downloads(view)
