"""The live-lab page through Streamlit's AppTest (a real script run, no browser)."""
import time

from streamlit.testing.v1 import AppTest

from bnviz.dashboard import ui
from tests.conftest import ROOT

TINY = {"dataset": "subset", "train_size": "512", "batch_size": "64"}


def lab(params=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page("pages/lab.py")
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


def button(at, label):
    return next(b for b in at.button if b.label == label)


def test_renders_with_controls_from_the_registry():
    at = lab()
    assert not at.exception
    assert at.title[0].value == "Live lab"
    labels = {w.label for w in [*at.toggle, *at.selectbox, *at.select_slider, *at.number_input]}
    for label in ("Batch size", "Learning rate", "conv1", "conv2", "fc1", "fc2",
                  "Normalisation", "Norm position", "Swap FC norms for dropout",
                  "Test-time statistics", "Simulated devices", "Dataset", "Device"):
        assert label in labels, label
    bs = next(s for s in at.select_slider if s.label == "Batch size")
    assert 1 in bs.options and 1024 in bs.options or "1" in bs.options


def test_chart_frames_are_there_before_the_first_run():
    # So the browser loads plotly.js on page open, not after Train (benchmarks/lab_latency.py).
    at = lab()
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    specs = [c.proto.spec for c in charts]
    assert all("press ▶ Train to start" in s for s in specs)
    assert "Training loss" in specs[0] and "Train vs test accuracy" in specs[1]


def test_bad_link_values_are_listed_and_defaults_used():
    at = lab({"batch_size": "0", "lr": "NaN", "norm": "<script>", "bogus": "1",
              "epochs": "3"})
    assert not at.exception
    assert "ignored" in at.warning[0].value
    text = at.text[0].value  # quoted from the link: plain text, never Markdown
    assert "batch_size must be between 1 and 4096, got 0" in text
    assert "lr must be a finite number" in text and "bogus" in text and "norm" in text
    assert next(s for s in at.number_input if s.label == "Epochs").value == 3
    assert next(s for s in at.select_slider if s.label == "Batch size").value == 256


def test_link_markdown_is_shown_as_text_not_rendered():
    at = lab({"norm": "[click](https://example.com)"})
    assert not at.exception
    assert "[click](https://example.com)" in at.text[0].value
    assert not any("example.com" in m.value for m in at.markdown)
    assert all("example.com" not in w.value for w in at.warning)


def test_preset_button_sets_the_controls():
    at = lab()
    button(at, "d2l-lenet").click().run()
    assert next(s for s in at.selectbox if s.label == "Normalisation").value == "none"
    assert next(s for s in at.select_slider if s.label == "Learning rate").value == 0.9


def test_train_then_stop_through_the_job_manager():
    at = lab({**TINY, "epochs": "200"})
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
    at = lab({**TINY, "epochs": "1", "seed": "11"})
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
