"""Live lab: pick a config, train it in the background, watch four live charts."""
import streamlit as st

from bnviz import cost, data
from bnviz.dashboard import ui
from bnviz.config import KNOBS, SITES
from bnviz.dashboard.nav import via_app
from bnviz.library import answers, data_text

via_app()  # first request after a server start: rerun through app.py

st.title("Live lab")
warnings = ui.load_url_once("lab")
if warnings:
    ui.show_ignored(warnings)
mgr = ui.manager()
if mgr.store is None:
    st.warning("The run store could not be opened, so runs are kept in memory only: "
               + (mgr.last_store_error or "see the server log"))
elif mgr.last_store_error:  # e.g. locked by a backup; runs are saved once it answers again
    st.warning("The run store is not answering; runs go on and are saved when it does: "
               + mgr.last_store_error)

with st.sidebar:
    st.subheader("Presets")
    ui.preset_buttons()
    st.subheader("Training")
    for name in ("batch_size", "lr", "epochs", "seed"):
        ui.knob_widget(name)
    st.subheader("Where BN goes")
    ui.knob_widget("norm")
    st.caption("Normalise after these layers:")
    cols = st.columns(2)
    for i, site in enumerate(SITES):
        ui.knob_widget(f"norm_{site}", cols[i % 2])
    ui.knob_widget("norm_position")
    ui.knob_widget("dropout_fc")
    if st.session_state.get(ui.wkey("dropout_fc")):
        ui.knob_widget("dropout_p")
    shown = {"batch_size", "lr", "epochs", "seed", "norm", "norm_position", "dropout_fc",
             "dropout_p", *(f"norm_{s}" for s in SITES)}
    for group, title in (("bn", "BN details"), ("model", "Model"), ("eval", "Evaluation"),
                         ("data", "Data"), ("training", "Device")):
        with st.expander(title, expanded=group == "eval"):
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
        st.info(f"Run `{run_id}` from the link is not on this server; "
                + ("showing the results library's run of the same experiment." if answered
                   else "starting the same experiment here."))
        run_id = ui.submit(cfg)
        view = mgr.get(run_id) if run_id else None
    else:
        st.info(f"Run `{run_id}` from the link is not on this server, and this server starts "
                f"only short runs by itself (at most "
                f"{cost.describe_seconds(limits.autostart_s).removeprefix('about ')}). The "
                "controls are set as the link describes: press **Train** to run this.")
        run_id = None

if not problems:  # the estimate before Train: bnviz.cost's counts × this machine's rates
    est = cost.estimate(cfg, *data.sizes(cfg.dataset)).seconds()
    cap = getattr(getattr(mgr, "limits", None), "max_seconds", 0) or 0
    note = f"Estimated run time: {cost.describe_seconds(est)} here"
    if cap and est > cap:
        note += (f" — over this server's {cost.describe_seconds(cap).removeprefix('about ')} "
                 "per run, so Train will be refused")
    st.caption(note + ".")

background = lib.seeds_of(cfg) if lib is not None and not problems else []
c_train, c_stop, c_again, c_lib, c_link = st.columns([1, 1, 1.3, 1.9, 3.3])
if c_train.button("▶ Train", type="primary", width="stretch",
                  disabled=bool(problems)):
    new, there = ui.train(cfg)  # trains here; the library's run is its own button's
    if new:
        v = mgr.get(new)
        if there and v is not None and v.status == "finished":
            st.toast("This exact run already finished on this server: shown below "
                     "(↻ Train again trains it anew).")
        run_id, view = new, v
# A shared link can point at a stranger's live run: it is shown, but only its owner may stop it.
watching = view is not None and view.active and not mgr.owns(view.run_id, ui.session_id())
if c_stop.button("■ Stop", width="stretch", disabled=not (view and view.active) or watching,
                 help="Someone else started this run: you can watch it, not stop it."
                 if watching else None):
    mgr.cancel(run_id, session=ui.session_id())
    view = mgr.get(run_id)
if view is not None and view.status == "finished" and answers(view.config, cfg) and \
        not ui.is_library_run(view) and c_again.button("↻ Train again", width="stretch"):
    run_id = ui.submit(cfg, reuse=False)
    view = mgr.get(run_id) if run_id else view
# Where the library answers the controls (this seed too), its run on request only: ▶ Train
# always trains. (An icon, not an emoji: a browser without an emoji font draws a box.)
answer = lib.find(cfg) if background else None
if answer and answer != (view.run_id if view else None) and c_lib.button(
        f"Library's {len(background)} seeds", icon=":material/library_books:",
        width="stretch",
        disabled=bool(view and view.active),
        help=f"Show the results library's run of these controls (seed {cfg.seed}), trained "
             "ahead of time on another machine: its reading, all the charts and the downloads, "
             f"with its {len(background)} seeds faded. Nothing is trained."
             + (" Stop the run first." if view and view.active else "")):
    st.session_state.run_id = answer
    st.rerun()  # drawn from the top as the run shown, without this button

# a results-library run answers the controls' config (its dataset "full" for "auto")
same = view is not None and answers(view.config, cfg)
ui.sync_url(cfg, run_id if same else None)
c_link.text_input("Share link", ui.share_link(cfg, run_id if same else None),
                  help="Copy this link: it opens these controls and this run.")

if background:
    b = background[0]
    here = data.resolve_source(cfg.dataset)
    st.caption(f"Faded: the results library's {len(background)} seeds of this configuration "
               f"({b.config.epochs} epochs, {data_text(b.info)}, "
               f"bnviz {b.info.get('bnviz_version', '?')}): where a run of it should land."
               + (" This server trains on the bundled subset (1/10 of the images), so a run "
                  "here lands lower." if here == "subset" and b.info.get("data_source") ==
                  "full" else ""))
if view is None:
    st.info("Choose a configuration on the left (or a preset) and press **▶ Train** to train "
            "it here and watch it learn. The defaults are d2l's LeNet-BN; on the bundled "
            "subset a run takes seconds."
            + (f" **Library's {len(background)} seeds** shows the results library's finished "
               "runs of it instead." if background else ""))
    if background:
        ui.background_charts(background)
    else:
        ui.placeholder_charts()
else:
    if not same:
        diff = ui.config_diff(view.config, cfg)
        st.caption("Showing the last run; the controls differ in "
                   + ", ".join(f"**{k}** ({a} → {b})" for k, (a, b) in diff.items())
                   + ". Press Train to run them.")
    if watching:
        st.caption("👀 This run was started in another browser session; you are watching it "
                   "read-only.")
    ui.live_run(view.run_id, background=background if same else None)
    if not view.active:
        ui.downloads(view)
