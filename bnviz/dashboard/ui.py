"""Streamlit helpers shared by the pages: the server-wide job manager, widgets generated from
the knob registry, share-link handling and the live run panel. The only core module that
imports streamlit."""
from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import uuid

import streamlit as st

from bnviz.dashboard import charts, lang

from bnviz import i18n
from bnviz.i18n import N_, _
from bnviz import readings
from bnviz import norm_kinds
from bnviz.config import (KNOB, KNOBS, PRESET_HELP, PRESETS, Config, from_query, parse_config,
                     to_query)
from bnviz.runs.runner import JobRefused, Runner, runner_from_env

LABELS = {  # knob name -> widget label (English; shown with _())
    "dataset": N_("Dataset"), "train_size": N_("Train-set size (0 = all)"),
    "batch_size": N_("Batch size"),
    "lr": N_("Learning rate"), "norm": N_("Normalisation"), "norm_conv1": "conv1",
    "norm_conv2": "conv2", "norm_fc1": "fc1", "norm_fc2": "fc2",
    "norm_position": N_("Norm position"), "dropout_fc": N_("Swap FC norms for dropout"),
    "dropout_p": N_("Dropout p"), "bias": N_("Bias in layers before a norm"),
    "freeze_affine": N_("Freeze gamma/beta"), "momentum": N_("BN momentum"),
    "eps": N_("BN eps"),
    "devices": N_("Simulated devices"), "eval_mode": N_("Test-time statistics"),
    "precise_samples": N_("PreciseBN samples"), "compare_eval": N_("Evaluate all three ways"),
    "eval_every": N_("Evaluate every N iterations (0 = per epoch)"),
    "snapshot_every": N_("gamma/beta snapshot every N iterations (0 = at evaluations)"),
    "conv1_padding": N_("conv1 padding"),
    "finetune_epochs": N_("Fine-tuning epochs (0 = off)"),
    "finetune_bn": N_("BN while fine-tuning"),
    "finetune_shift": N_("Fine-tuning data (part B)"),
    "finetune_lr": N_("Fine-tuning lr (0 = lr)"),
}
# The other knobs' widgets say their name, capitalised ("weight_decay" -> "Weight decay"):
# those labels, marked for the catalogue (knob_label). LABELS above stays as it was: preset
# help texts quote it, with the knob's name where it has no entry.
NAME_LABELS = {
    "epochs": N_("Epochs"), "seed": N_("Seed"), "device": N_("Device"),
    "activation": N_("Activation"), "groups": N_("Groups"), "renorm_rmax": N_("Renorm rmax"),
    "renorm_dmax": N_("Renorm dmax"), "renorm_warmup": N_("Renorm warmup"),
    "noise_mean": N_("Noise mean"), "noise_std": N_("Noise std"),
    "weight_decay": N_("Weight decay"), "train_only": N_("Train only"),
    "track_weights": N_("Track weights"), "record_activations": N_("Record activations"),
    "landscape": N_("Landscape"), "ics_probe": N_("Ics probe"),
}
CHOICE_LABELS = {  # the norm kinds' labels come from their registry (option_label)
    "before_act": N_("before the activation (d2l)"), "after_act": N_("after the activation"),
    "running": N_("running statistics (PyTorch default)"),
    "precise": N_("PreciseBN (recomputed for current weights)"),
    "batch": N_("batch statistics"),
    "auto": N_("auto"), "full": N_("full Fashion-MNIST"),
    "subset": N_("bundled subset (5k/1k)"),
    "update": N_("updating (train mode)"),
    "frozen_stats": N_("frozen (eval mode), gamma/beta learn"),
    "frozen_all": N_("frozen (eval mode), gamma/beta fixed"),
    "rotated": N_("rotated 90° (upright, then turned)"),
    "classes": N_("classes 0–4, then 5–9"),
    "all": N_("all"), "random": N_("random"),  # train_only (its "bn" stays the id)
}
LOG_OPTIONS = {
    "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
    "lr": [0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9, 1.0, 1.5, 2.0, 3.0, 5.0,
           10.0, 20.0, 50.0, 100.0],
    "eps": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
    "devices": [1, 2, 4, 8, 16, 32, 64],
}
BATCH_HELP = N_("A minibatch is the set of examples one SGD step uses; batch size is how many "
              "it holds. BN's statistics are taken over exactly this minibatch (per device): "
              "at batch size 1 a fully-connected BN has one value per feature to average, "
              "so every output is 0; a conv BN still averages over the image's H×W positions.")
RUN_ID = re.compile(r"^[0-9a-f]{12}$")
PAGE_PARAMS = ("run", "runs", "view", "seeds", "lang")  # link parameters that are not knobs
MAX_SEEDS = 10


def _release(runner: Runner) -> None:
    runner.shutdown(timeout=5.0)  # clearing the cache must not leave worker threads behind


@st.cache_resource(on_release=_release)
def manager() -> Runner:
    """One runner per server process, shared by every browser session (see runner.py for
    the environment variables, BNVIZ_HOSTED among them)."""
    return runner_from_env()


def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex
    return st.session_state.session_id


def wkey(name: str) -> str:
    return f"knob_{name}"


def set_controls(cfg: Config) -> None:
    for k in KNOBS:
        st.session_state[wkey(k.name)] = getattr(cfg, k.name)


def _with(options: list, value) -> list:
    return sorted(set(options) | {value})


def option_label(knob: str, value) -> str:
    """What a selectbox shows for one of a knob's choices."""
    if knob == "norm":
        return _(norm_kinds.option(value))
    return _(CHOICE_LABELS.get(value, str(value)))


def knob_label(name: str) -> str:
    """A knob's widget label, in the session's language."""
    label = LABELS.get(name) or NAME_LABELS.get(name)
    return _(label or name.replace("_", " ").capitalize())


def knob_widget(name: str, container=st) -> None:
    k = KNOB[name]
    key, label = wkey(name), knob_label(name)
    # Writing the value back every run takes it out of Streamlit's widget clean-up, so a
    # full rerun started inside the live fragment cannot reset the controls (streamlit#11266).
    st.session_state[key] = st.session_state.get(key, k.default)
    help_ = k.help_text + (f"\n\n{_(BATCH_HELP)}" if name == "batch_size" else "")
    if k.choices is not None:
        container.selectbox(label, list(k.choices), key=key, help=help_,
                            format_func=lambda c: option_label(name, c))
    elif k.type is bool:
        container.toggle(label, key=key, help=help_ if not name.startswith("norm_") else None)
    elif name in LOG_OPTIONS:
        container.select_slider(label, _with(LOG_OPTIONS[name], st.session_state[key]),
                                key=key, help=help_, format_func=lambda v: f"{v:g}")
    elif k.type is int:
        container.number_input(label, int(k.lo), int(k.hi), step=1, key=key, help=help_)
    else:
        container.number_input(label, float(k.lo), float(k.hi), step=0.05, key=key,
                               help=help_, format="%g")


def controls_from_state() -> tuple[Config, list[str]]:
    values = {k.name: st.session_state[wkey(k.name)] for k in KNOBS
              if wkey(k.name) in st.session_state}
    return parse_config(values)


def page_base(page: str) -> Config:
    """The controls a page opens with: Config's defaults with the page's own (its library
    question's epochs, say) on top."""
    from bnviz.library.catalog import page_settings
    return Config().replace(**page_settings(page))


def load_url_once(page: str) -> list[str]:
    """On a page's first run in this session, restore the controls from the URL, on top of
    the page's defaults; back on a page visited before, its controls as this session left
    them (the knobs' widget keys are shared by every page, so without this a page would open
    with the last page's settings: Fine-tuning's 2 epochs on Ablation, and no stored answer).
    Returns the warnings about ignored parameters (shown, never raised)."""
    saved = st.session_state.get(f"controls_of_{page}")  # None: the page's first run
    arrived = st.session_state.get("controls_page") != page
    st.session_state["controls_page"] = page
    if saved is None:
        params = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
        cfg, warnings = from_query(params, ignore=PAGE_PARAMS, base=page_base(page))
        set_controls(cfg)
        run = params.get("run", [None])[-1]
        if run is not None:
            if RUN_ID.fullmatch(run):
                st.session_state.run_id = run
            else:
                warnings.append(_("run id {run!r} is not valid and was ignored").format(run=run))
        st.session_state[f"url_warnings_{page}"] = warnings
    elif arrived:
        st.session_state.update(saved)
    st.session_state[f"controls_of_{page}"] = {  # as of this run, the user's last change in
        wkey(k.name): st.session_state[wkey(k.name)] for k in KNOBS
        if wkey(k.name) in st.session_state}
    return st.session_state[f"url_warnings_{page}"]


def show_ignored(warnings: list[str]) -> None:
    """Warnings about a link's parameters. They quote the link, so they are shown as plain
    text, never as Markdown (a link can carry `[x](…)` or an image)."""
    st.warning(_("Some link parameters were ignored; defaults are used instead:"))
    st.text("\n".join(f"- {w}" for w in warnings))


def link_query(cfg: Config, run_id: str | None, extra: dict[str, str] | None = None,
               page: str | None = None) -> dict[str, str]:
    q = to_query(cfg, page_base(page) if page else None)
    if run_id:
        q["run"] = run_id
    q.update(extra or {})
    q.update(lang.link_params())  # lang=zh: the link opens in the sender's language
    return q


def sync_url(cfg: Config, run_id: str | None, extra: dict[str, str] | None = None,
             page: str | None = None) -> None:
    """Make the address bar the share link. Sent on every full run, even when st.query_params
    already holds it: the server's copy is read from the browser only on a page change, so
    once the browser missed one update (a rerun right after it: streamlit#7961) a compare
    against it would never send again. The browser pushes no history entry for an unchanged
    query string, so the repeat costs one small message."""
    st.query_params.from_dict(link_query(cfg, run_id, extra, page))


def page_url() -> str:
    return (getattr(st.context, "url", None) or "").split("?")[0]


def share_link(cfg: Config, run_id: str | None, extra: dict[str, str] | None = None,
               page: str | None = None) -> str:
    # encoded as Streamlit encodes the address bar's query string, so the two are equal
    q = urllib.parse.urlencode(link_query(cfg, run_id, extra, page), doseq=True)
    return page_url() + ("?" + q if q else "")


def preset_buttons(container=st) -> None:
    """One button per preset, each on its own row (three side by side in the sidebar cut
    every label to "d2l-l…"), with a short label, under its edition's name: the edition of the
    reader's language first (in 中文 the Chinese edition's); the help says what a click changes."""
    from bnviz.config import EDITION_NAMES, PRESET_EDITION, PRESET_LABELS, presets_in_order
    edition = None
    for name in presets_in_order(i18n.language()):
        values = PRESETS[name]
        if PRESET_EDITION[name] != edition:
            edition = PRESET_EDITION[name]
            container.caption(_(EDITION_NAMES[edition]))
        changes = ", ".join(
            f"{_(LABELS.get(k, k))} → {option_label(k, v) if isinstance(v, str) else v}"
            for k, v in values.items())
        if changes:
            help_ = _("**{name}**: {help}.\n\nSets every control to its default, then "
                      "{changes}.").format(name=name, help=_(PRESET_HELP[name]), changes=changes)
        else:
            help_ = _("**{name}**: {help}.\n\nSets every control to its default.").format(
                name=name, help=_(PRESET_HELP[name]))
        if container.button(_(PRESET_LABELS[name]), help=help_, key=f"preset_{name}",
                            width="stretch"):
            set_controls(Config().replace(**PRESETS[name]))
            st.rerun()


STATUS_ICON = {"queued": "⏳", "running": "🏃", "finished": "✅", "stopped": "⏹️",
               "diverged": "💥", "failed": "❌", "interrupted": "⚠️"}
STATUS_NAMES = {"queued": N_("Queued"), "running": N_("Running"), "finished": N_("Finished"),
                "stopped": N_("Stopped"), "diverged": N_("Diverged"), "failed": N_("Failed"),
                "interrupted": N_("Interrupted")}  # a status as status_line names it


def status_name(status: str) -> str:
    return _(STATUS_NAMES.get(status, status.capitalize()))


def is_library_run(v) -> bool:
    return v.info.get("source") == "library"


def library_note(v) -> str:
    machine = v.info.get("machine")
    version = v.info.get('bnviz_version', '?')
    if machine:
        return _(":material/library_books: The results library's run of this configuration, "
                 "seed {seed}, trained ahead of time by bnviz {version} on another machine "
                 "({machine}), not on this server.").format(seed=v.config.seed, version=version,
                                                             machine=machine)
    return _(":material/library_books: The results library's run of this configuration, "
             "seed {seed}, trained ahead of time by bnviz {version} on another machine, not on "
             "this server.").format(seed=v.config.seed, version=version)


def status_line(v) -> None:
    """A run's state in one line. A results-library run says it is one, and leaves out its
    examples/s: that speed was measured on another machine, not this server's."""
    icon = STATUS_ICON.get(v.status, "")
    lib = is_library_run(v)
    note = f" {library_note(v)}" if lib else ""
    if v.status == "queued" and v.position:
        st.info(_("{icon} Queued at position {position} — it starts when a worker is "
                  "free.").format(icon=icon, position=v.position))
    elif v.status == "queued":  # a worker took it and is loading the data
        st.info(_("{icon} Starting…").format(icon=icon))
    elif v.status == "running":
        p = v.progress
        fields = dict(icon=icon, epoch=min(int(p['epoch']) + 1, v.config.epochs),
                      epochs=v.config.epochs, done=p['done'], total=p['total'],
                      speed=p['examples_per_sec'])
        if math.isnan(p["eta"]):
            text = _("{icon} Running — epoch {epoch}/{epochs}, iteration {done:,}/{total:,}, "
                     "{speed:,.0f} examples/s").format(**fields)
        else:
            text = _("{icon} Running — epoch {epoch}/{epochs}, iteration {done:,}/{total:,}, "
                     "{speed:,.0f} examples/s, ETA {eta:.0f} s").format(eta=p['eta'], **fields)
        st.progress(min(p["fraction"], 1.0), text=text)
    elif v.status == "finished":
        st.success(_("{icon} Finished.{note} {reading}").format(
            icon=icon, note=note, reading=readings.one_run(v, speed=not lib)))
    elif v.status in ("diverged", "failed", "interrupted"):
        st.error(_("{icon} {status}: {reason}{note}").format(
            icon=icon, status=status_name(v.status), reason=_(str(v.reason)), note=note))
    else:
        st.warning(_("{icon} {status}.{note} {reading}").format(
            icon=icon, status=status_name(v.status), note=note,
            reading=readings.one_run(v, speed=not lib)))
    if v.info:
        fields = dict(data=v.info.get('data'), n_params=v.info.get('n_params', 0),
                      run_id=v.run_id)
        if lib:
            st.caption(_("Data: {data} · press **▶ Train** to train it here · {n_params:,} "
                         "parameters · run `{run_id}`").format(**fields))
        else:
            st.caption(_("Data: {data} · device {device} · {n_params:,} parameters · run "
                         "`{run_id}`").format(device=v.info.get('device'), **fields))


def _cached_figure(part: str, token: tuple, build):
    """Rebuild a figure only when its inputs changed: building and serialising plotly figures
    holds the GIL, which the training thread needs too. The language is part of the key: a
    figure's titles and legends are in the language it was built in."""
    token = (i18n.language(), token)
    cache = st.session_state.setdefault("_figures", {})
    hit = cache.get(part)
    if hit is not None and hit[0] == token:
        return hit[1]
    fig = build()
    cache[part] = (token, fig)
    return fig


def run_charts(v, key: str = "", background: list | None = None) -> None:
    """The four live charts of one run; `background` runs drawn faded behind the first two."""
    rev = v.run_id
    bg = background or []
    n = (v.run_id, len(v.steps), len(v.evals), len(v.snapshots),
         tuple(r.run_id for r in bg))
    c1, c2 = st.columns(2)
    smoothing = c1.slider(_("Loss smoothing"), 0.0, 0.99, 0.9, 0.01, key=f"smooth{key}",
                          help=_("Exponential moving average of the per-iteration values"))
    steps = evals = None

    def frames():
        nonlocal steps, evals
        if steps is None:
            steps, evals = v.steps_frame(), v.evals_frame()
        return steps, evals
    c1.plotly_chart(_cached_figure(f"loss{key}", (n, smoothing), lambda: charts.loss_figure(
        frames()[0], smoothing, rev, bg)), key=f"loss{key}")
    c2.plotly_chart(_cached_figure(f"acc{key}", (n, smoothing), lambda: charts.accuracy_figure(
        *frames(), smoothing, rev, bg)), key=f"acc{key}")
    c3, c4 = st.columns(2)
    c3.plotly_chart(_cached_figure(f"fluct{key}", n[:1] + n[2:3], lambda: charts.fluctuation_figure(
        frames()[1], revision=rev)), key=f"fluct{key}")
    stat = c4.radio(_("Layer statistic"), ["gamma", "beta", "running_mean", "running_var"],
                    horizontal=True, key=f"stat{key}",
                    help=_("gamma (scale) and beta (shift) have one entry per channel; "
                           "running mean/var are what eval mode normalises with"))
    snap_token = (v.run_id, len(v.snapshots), stat)
    snaps = None

    def snap_frame():
        nonlocal snaps
        if snaps is None:
            snaps = v.snapshots_frame(stat)
        return snaps
    c4.plotly_chart(_cached_figure(f"dist{key}", snap_token, lambda: charts.distribution_figure(
        snap_frame(), stat, revision=rev)), key=f"dist{key}")
    st.plotly_chart(_cached_figure(f"affine{key}", snap_token, lambda: charts.affine_figure(
        snap_frame(), stat, rev)), key=f"affine{key}")


def background_charts(runs: list, key: str = "") -> None:
    """Before a run (and while it waits its turn): the library's curves of this
    configuration, faded, where a run of it should land."""
    import pandas as pd
    c1, c2 = st.columns(2)
    empty = pd.DataFrame()
    c1.plotly_chart(_cached_figure(f"bg_loss{key}", tuple(r.run_id for r in runs),
                                   lambda: charts.loss_figure(empty, background=runs)),
                    key=f"bg_loss{key}")
    c2.plotly_chart(_cached_figure(f"bg_acc{key}", tuple(r.run_id for r in runs),
                                   lambda: charts.accuracy_figure(empty, empty,
                                                                  background=runs)),
                    key=f"bg_acc{key}")


def placeholder_charts() -> None:
    """Empty frames of the first two live charts, before any run: the layout is in place and
    the browser has loaded and compiled its plotting code (several MB of plotly.js, about a
    second on a slow CPU) before Train is pressed, so the first point shows as soon as the
    first step is done."""
    import pandas as pd
    c1, c2 = st.columns(2)
    empty = pd.DataFrame()
    for col, name, fig in ((c1, "loss", charts.loss_figure(empty)),
                           (c2, "acc", charts.accuracy_figure(empty, empty))):
        fig.add_annotation(text=_("press ▶ Train to start"), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(color="grey", size=14))
        col.plotly_chart(fig, key=f"placeholder_{name}")


def downloads(v) -> None:
    c1, c2, c3 = st.columns(3)
    c1.download_button(_("Metrics (CSV)"), charts.steps_to_csv(v.steps_frame(), v.evals_frame()),
                       f"bnviz-{v.run_id}-metrics.csv", "text/csv")
    c3.download_button(_("gamma/beta history (CSV)"), v.snapshots_long().to_csv(index=False),
                       f"bnviz-{v.run_id}-snapshots.csv", "text/csv")
    c2.download_button(_("Config (JSON)"), json.dumps({**v.config.to_dict(),
                                                    "config_id": v.config.config_id()},
                                                   indent=2),
                       f"bnviz-{v.run_id}-config.json", "application/json")


def live_run(run_id: str, key: str = "", background: list | None = None,
             drawn_active: bool | None = None) -> None:
    """Status, progress and charts of a run, polled once a second while it is active;
    `background` runs are drawn faded behind its loss and accuracy. `drawn_active`: whether
    the page drew its controls (■ Stop) for an active run; when the run has ended since (a
    Stop lands between the button and here), one full rerun redraws them for the end."""
    mgr = manager()
    first = mgr.get(run_id)
    # A run pressed a moment ago gets its first step within a few hundred ms: waiting for it
    # here puts the first points on screen now instead of at the next one-second poll.
    t0 = time.time()
    while (first is not None and first.active and not len(first.steps)
           and time.time() - first.created < 3 and time.time() - t0 < 0.8):
        time.sleep(0.02)
        first = mgr.get(run_id)
    if first is None:
        st.warning(_("Run `{run_id}` is not on this server (it may have been run "
                     "elsewhere).").format(run_id=run_id))
        return

    drawn = first.active if drawn_active is None else drawn_active

    @st.fragment(run_every=1.0 if first.active else None)
    def panel():
        v = mgr.get(run_id)
        if v is None:
            return
        status_line(v)
        if len(v.steps) or v.evals:
            run_charts(v, key, background)
        elif v.active:
            st.caption(_("Waiting for the first iteration…"))
            if background:  # queued behind other runs: where this one should land
                background_charts(background, key=f"wait{key}")
        if drawn and not v.active:
            st.rerun()  # one full rerun so the page stops polling and shows the final state
    panel()


def submit(cfg: Config, reuse: bool = True) -> str | None:
    """Queue `cfg` (or, with reuse, show a finished twin: this server's, else the results
    library's). None, with the reason on the page, when refused."""
    try:
        run_id = manager().submit(cfg, session=session_id(), reuse=reuse)
    except JobRefused as e:
        st.error(_("Not started: {error}").format(error=e))
        return None
    st.session_state.run_id = run_id
    return run_id


def train(cfg: Config) -> tuple[str | None, bool]:
    """▶ Train: train `cfg` here, unless this server already has it — finished (shown again:
    the same seed gives the same run) or running for this session. Never the results
    library's run instead: that is a separate button. Returns (run id, whether it was
    already there)."""
    mgr = manager()
    own = mgr.find(cfg, library=False)
    if own is not None and (own.status == "finished" or
                            (own.active and mgr.owns(own.run_id, session_id()))):
        st.session_state.run_id = own.run_id
        return own.run_id, True
    return submit(cfg, reuse=False), False


def config_diff(a: Config, b: Config) -> dict:
    return {k.name: (getattr(a, k.name), getattr(b, k.name)) for k in KNOBS
            if getattr(a, k.name) != getattr(b, k.name)}
