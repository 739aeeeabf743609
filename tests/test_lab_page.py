"""The live-lab page through Streamlit's AppTest (a real script run, no browser)."""
import time

from bnviz.dashboard import ui
from tests.apptest import button, open_page

TINY = {"dataset": "subset", "train_size": "512", "batch_size": "64"}


def test_renders_with_controls_from_the_registry():
    at = open_page("lab")
    assert not at.exception
    assert at.title[0].value == "Live lab"
    labels = {w.label for w in [*at.toggle, *at.selectbox, *at.select_slider, *at.number_input]}
    for label in ("Batch size", "Learning rate", "conv1", "conv2", "fc1", "fc2",
                  "Normalisation", "Norm position", "Swap FC norms for dropout",
                  "Test-time statistics", "Simulated devices", "Dataset", "Device"):
        assert label in labels, label
    bs = next(s for s in at.select_slider if s.label == "Batch size")
    # the slider's options are the labels it shows: every power of two from 1 to 4096
    assert bs.options[0] == "1" and "1024" in bs.options and bs.options[-1] == "4096"
    assert bs.value == 256


def test_chart_frames_are_there_before_the_first_run():
    """The lab opens on the d2l preset with the results library's five runs of it drawn
    faded in both charts (so the browser also loads plotly.js on page open, not after Train:
    benchmarks/lab_latency.py). Without a library the frames carry "press ▶ Train"."""
    import json
    at = open_page("lab")
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    specs = [json.loads(c.proto.spec) for c in charts]
    assert "Training loss" in specs[0]["layout"]["title"]["text"]
    assert "Train vs test accuracy" in specs[1]["layout"]["title"]["text"]
    for spec in specs:
        faded = [t for t in spec["data"] if t.get("legendgroup") == "background"]
        assert len(faded) == 5  # seeds 0-4 of d2l-lenet-bn
        assert faded[0]["name"].startswith("results library, 5 seeds")
    assert any("results library's 5 seeds of this configuration" in c.value
               for c in at.caption)


def test_bad_link_values_are_listed_and_defaults_used():
    at = open_page("lab", {"batch_size": "0", "lr": "NaN", "norm": "<script>", "bogus": "1",
              "epochs": "3"})
    assert not at.exception
    assert "ignored" in at.warning[0].value
    text = at.text[0].value  # quoted from the link: plain text, never Markdown
    assert "batch_size must be between 1 and 4096, got 0" in text
    assert "lr must be a finite number" in text and "bogus" in text and "norm" in text
    assert next(s for s in at.number_input if s.label == "Epochs").value == 3
    assert next(s for s in at.select_slider if s.label == "Batch size").value == 256


def test_link_markdown_is_shown_as_text_not_rendered():
    at = open_page("lab", {"norm": "[click](https://example.com)"})
    assert not at.exception
    assert "[click](https://example.com)" in at.text[0].value
    assert not any("example.com" in m.value for m in at.markdown)
    assert all("example.com" not in w.value for w in at.warning)


# Each edition's presets under its edition's name; in English the English edition's first.
PRESET_BUTTONS = {"d2l-en-lenet-bn": "LeNet-BN", "d2l-en-lenet-bn-scratch": "BN from scratch",
                  "d2l-lenet-bn": "LeNet-BN", "d2l-lenet-bn-scratch": "BN from scratch",
                  "d2l-lenet": "LeNet (no BN)"}


def presets_of(at) -> dict:
    return {b.key.removeprefix("preset_"): b for b in at.button
            if b.key and b.key.startswith("preset_")}


def test_preset_buttons_have_short_labels_under_their_edition_and_say_what_they_change():
    at = open_page("lab")
    presets = presets_of(at)
    assert {k: b.label for k, b in presets.items()} == PRESET_BUTTONS
    assert list(presets) == list(PRESET_BUTTONS)  # the English edition's first, in English
    assert all(len(b.label) <= 16 for b in presets.values())  # shown whole in the sidebar
    captions = [c.value for c in at.sidebar.caption]
    en, zh = (captions.index(c) for c in ("English edition (d2l.ai)",
                                          "Chinese edition (zh.d2l.ai, 《动手学深度学习》)"))
    assert en < zh
    helps = {k: b.help for k, b in presets.items()}
    for name in PRESET_BUTTONS:
        assert name in helps[name] and "default" in helps[name]
    assert "Normalisation → none" in helps["d2l-lenet"]
    assert "Learning rate → 0.9" in helps["d2l-lenet"]
    assert "conv1 padding → 2" in helps["d2l-lenet"]
    assert "Normalisation → BatchNorm as the book writes it" in helps["d2l-lenet-bn-scratch"]
    assert "Learning rate → 0.1" in helps["d2l-en-lenet-bn"]
    assert "Batch size → 128" in helps["d2l-en-lenet-bn"]
    zh_first = list(presets_of(open_page("lab", {"lang": "zh"})))
    assert zh_first[:3] == ["d2l-lenet-bn", "d2l-lenet-bn-scratch", "d2l-lenet"]


def test_preset_buttons_set_the_controls():
    def control(at, kind, label):
        return next(w for w in getattr(at, kind) if w.label == label).value

    at = open_page("lab", {"lr": "0.1", "epochs": "3"})
    presets_of(at)["d2l-lenet"].click().run()
    assert not at.exception
    assert control(at, "selectbox", "Normalisation") == "none"
    assert control(at, "select_slider", "Learning rate") == 0.9
    assert control(at, "selectbox", "conv1 padding") == 2
    assert control(at, "number_input", "Epochs") == 10  # reset to the default, not kept
    presets_of(at)["d2l-lenet-bn-scratch"].click().run()
    assert control(at, "selectbox", "Normalisation") == "bn_d2l"
    assert control(at, "select_slider", "Learning rate") == 1.0
    assert control(at, "selectbox", "conv1 padding") == 0
    presets_of(at)["d2l-en-lenet-bn"].click().run()
    assert control(at, "selectbox", "Normalisation") == "bn"
    assert control(at, "select_slider", "Learning rate") == 0.1
    assert control(at, "select_slider", "Batch size") == 128
    presets_of(at)["d2l-lenet-bn"].click().run()
    assert control(at, "selectbox", "Normalisation") == "bn"
    assert control(at, "select_slider", "Learning rate") == 1.0
    assert not at.exception


def test_train_then_stop_through_the_job_manager():
    at = open_page("lab", {**TINY, "epochs": "200"})
    button(at, "▶ Train").click().run()
    assert not at.exception
    run_id = at.session_state.run_id
    mgr = ui.manager()
    t0 = time.time()
    while mgr.get(run_id).status != "running" and time.time() - t0 < 30:
        time.sleep(0.05)
    assert at.query_params["run"] == [run_id] or at.query_params["run"] == run_id
    at.run()
    button(at, "■ Stop").click().run()
    t0 = time.time()
    while mgr.get(run_id).active and time.time() - t0 < 30:
        time.sleep(0.05)
    v = mgr.get(run_id)
    assert v.status == "stopped" and 0 < len(v.steps) < 200 * 8


def test_finished_run_shows_reading_and_downloads():
    at = open_page("lab", {**TINY, "epochs": "1", "seed": "11"})
    button(at, "▶ Train").click().run()
    run_id = at.session_state.run_id
    mgr = ui.manager()
    t0 = time.time()
    while mgr.get(run_id).active and time.time() - t0 < 60:
        time.sleep(0.05)
    at.run()
    assert not at.exception
    assert any("Finished" in s.value and "Test accuracy" in s.value for s in at.success)
    # a second press of Train reuses the finished run instead of training again
    button(at, "▶ Train").click().run()
    assert at.session_state.run_id == run_id


# -- ▶ Train trains, here, even where the results library has the answer ---------------------
def share_box(at) -> str:
    return next(t for t in at.text_input if t.label == "Share link").value


def link_params(at) -> dict:
    """The share-link box's query parameters, in AppTest's query_params shape."""
    from urllib.parse import parse_qs, urlsplit
    return {k: v[-1] if len(v) == 1 else v
            for k, v in parse_qs(urlsplit(share_box(at)).query).items()}


def wait_for(fn, timeout=60.0):
    t0 = time.time()
    while not fn():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


def traces(at, chart: int = 0) -> tuple[int, int]:
    """(faded library traces, live traces with points) of one plotly chart on the page."""
    import json
    spec = json.loads(at.get("plotly_chart")[chart].proto.spec)
    faded = [t for t in spec["data"] if t.get("legendgroup") == "background"]
    live = [t for t in spec["data"] if t.get("legendgroup") != "background" and t.get("x")]
    return len(faded), len(live)


def test_train_on_the_default_config_trains_here_with_the_library_faded_behind():
    """The first thing a new user does: the defaults (d2l's LeNet-BN, answered by the results
    library) and ▶ Train. A run of this server trains — not the library's finished run —
    Stop is enabled and stops it, and the library's five seeds stay faded behind it."""
    from bnviz.config import Config
    mgr = ui.manager()
    lib_run = mgr.library.find(Config())
    assert lib_run  # the library answers the defaults: the case that used to skip training
    at = open_page("lab")
    button(at, "▶ Train").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state.run_id
    try:
        assert run_id != lib_run
        v = mgr.get(run_id)
        assert v.info.get("source") != "library" and v.active
        assert mgr.owns(run_id, at.session_state.session_id)
        assert not button(at, "■ Stop").disabled
        assert at.query_params["run"] == run_id and link_params(at) == at.query_params
        wait_for(lambda: len(mgr.get(run_id).steps) >= 2)
        at.run()
        assert traces(at, 0)[0] == 5 and traces(at, 0)[1] >= 1  # faded seeds + the live run
        # the progress line is this run's speed; the library's (another machine) is nowhere
        theirs = f"{mgr.get(lib_run).summary['examples_per_sec']:,.0f} examples/s"
        assert not any(theirs in s.value for s in [*at.success, *at.info, *at.caption])
        button(at, "■ Stop").click().run()
        wait_for(lambda: not mgr.get(run_id).active)
        v = mgr.get(run_id)
        assert v.status == "stopped" and 0 < len(v.steps) < 2350
        at.run()
        assert button(at, "■ Stop").disabled
        assert at.query_params["run"] == run_id and link_params(at) == at.query_params
    finally:
        mgr.cancel(run_id)
        wait_for(lambda: not mgr.get(run_id).active)


def test_the_library_answer_is_a_second_button_said_to_be_the_library_run():
    mgr = ui.manager()
    before = mgr.stats()["queued"] + mgr.stats()["running"]
    at = open_page("lab")
    button(at, "Library's 5 seeds").click().run()
    assert not at.exception, at.exception
    v = mgr.get(at.session_state.run_id)
    assert v.info["source"] == "library" and v.config.seed == 0 and v.status == "finished"
    status = at.success[0].value
    assert status.startswith("Finished.") and "results library's run" in status
    assert "seed 0" in status and "not on this server" in status
    assert "examples/s" not in status  # measured on the machine that built the library
    assert f"Test accuracy {v.summary['test_acc']:.3f}" in status  # its own, as stored
    assert mgr.stats()["queued"] + mgr.stats()["running"] == before  # nothing trained
    faded, drawn = traces(at, 0)
    assert faded == 5 and drawn >= 2  # its loss (per iteration, smoothed), 5 seeds behind
    assert link_params(at) == at.query_params and at.query_params["run"] == v.run_id
    assert not any(b.label == "Library's 5 seeds" for b in at.button)  # shown already
    assert not any(b.label == "↻ Train again" for b in at.button)  # ▶ Train does that
    # seed 7: the library has seeds 0-4 of it, faded behind, but no run of these controls
    other = open_page("lab", {"seed": "7"})
    assert traces(other, 0) == (5, 0)
    assert not any(b.label.startswith("Library's") for b in other.button)


def test_a_run_waiting_its_turn_on_a_hosted_server_shows_its_place_and_the_library(
        monkeypatch):
    """Hosted (Limits.hosted(): cost caps, one run per visitor): Train on the defaults queues
    a real run behind the other visitors' runs; until it starts, the page says its place in
    the queue and the charts are the library's five seeds, faded."""
    from bnviz.config import Config
    from bnviz.runs.limits import Limits
    mgr = ui.manager()
    slow = Config(dataset="subset", batch_size=8, epochs=50)
    others = [mgr.submit(slow.replace(seed=s), session=f"visitor{s}", reuse=False)
              for s in range(mgr.stats()["workers"] + 1)]  # every worker busy, one waiting
    monkeypatch.setattr(mgr, "limits", Limits.hosted())
    run_id = None
    try:
        wait_for(lambda: mgr.stats()["running"] >= mgr.stats()["workers"])
        at = open_page("lab")
        button(at, "▶ Train").click().run()
        assert not at.exception, at.exception
        run_id = at.session_state.run_id
        v = mgr.get(run_id)
        assert v.status == "queued" and v.position >= 2 and v.info.get("source") != "library"
        assert any(f"Queued at position {v.position}" in i.value for i in at.info)
        assert traces(at, 0) == (5, 0) and traces(at, 1)[0] == 5  # the library, faded, only
        assert not button(at, "■ Stop").disabled  # a queued run can be taken back
        button(at, "■ Stop").click().run()
        assert mgr.get(run_id).status == "stopped"
        # Taking back a queued run ends it at once, between the Stop button being drawn (for
        # an active run) and the charts: the page redraws, so Stop is not left enabled.
        assert not at.exception, at.exception
        assert button(at, "■ Stop").disabled
        assert any(w.value.startswith("⏹ Stopped") or "Stopped" in w.value
                   for w in at.warning), [w.value for w in at.warning]
    finally:
        for r in [run_id, *others]:
            if r:
                mgr.cancel(r)
        for r in others:
            wait_for(lambda: not mgr.get(r).active)


def test_address_bar_is_the_share_link_after_train_preset_and_in_a_fresh_session():
    mgr = ui.manager()
    at = open_page("lab", {**TINY, "epochs": "1", "seed": "23"})
    button(at, "▶ Train").click().run()
    run_id = at.session_state.run_id
    wait_for(lambda: mgr.get(run_id).status == "finished")
    at.run()
    assert at.query_params["run"] == run_id and link_params(at) == at.query_params
    link = link_params(at)
    fresh = open_page("lab", link)  # someone opening the link: the same run, the same link
    assert not fresh.exception
    assert fresh.session_state.run_id == run_id
    assert any("Finished" in s.value for s in fresh.success)
    assert link_params(fresh) == fresh.query_params == link
    button(at, "LeNet (no BN)").click().run()
    assert at.query_params == {"lr": "0.9", "norm": "none", "conv1_padding": "2"}
    assert link_params(at) == at.query_params
