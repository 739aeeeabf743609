"""Hosting: strangers share one server. Read-only views of other people's runs, nothing from a
link reaching the file system or the importer, and the load test in its short CI mode."""
import ast
import json
import subprocess
import sys
import time

import pytest

from bnviz.dashboard import ui
from tests.apptest import button, open_page
from tests.conftest import ROOT

LONG = {"dataset": "subset", "train_size": "512", "batch_size": "64", "epochs": "200"}


def stop_button(at):
    return button(at, "■ Stop")


def test_someone_elses_live_run_is_shown_read_only():
    owner = open_page("lab", LONG)
    button(owner, "▶ Train").click().run()
    run = owner.session_state.run_id
    mgr = ui.manager()
    try:
        # the owner's share link, opened elsewhere
        visitor = open_page("lab", {**LONG, "run": run})
        assert not visitor.exception and visitor.session_state.run_id == run
        assert stop_button(visitor).disabled
        assert any("read-only" in c.value for c in visitor.caption)
        assert not mgr.cancel(run, session=visitor.session_state.session_id)
        assert mgr.get(run).active
        owner.run()
        assert not stop_button(owner).disabled
    finally:
        mgr.cancel(run)
        t0 = time.time()
        while mgr.get(run).active and time.time() - t0 < 30:
            time.sleep(0.05)


# Calls that would turn text from a link or a widget into a file, a module or code.
DANGEROUS = {"open", "Path", "import_module", "__import__", "exec", "eval", "compile",
             "load", "loads", "system", "Popen", "run_path"}


def test_no_path_module_or_code_comes_from_a_link_or_widget():
    """The pages and their UI helpers may call these only with literal arguments."""
    files = [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("bnviz/dashboard/*.py")]
    # a glob that matches nothing (the helpers moved once) must not pass by checking nothing
    assert ROOT / "bnviz/dashboard/ui.py" in files and len(files) > 10
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                args = [*node.args, *(k.value for k in node.keywords)]
                if name in DANGEROUS and not all(isinstance(a, ast.Constant) for a in args):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno} {name}(...)")
    assert offenders == []


@pytest.mark.slow
def test_load_test_short_mode(tmp_path):
    """4 browser sessions at once: every run ends, the store has exactly those runs, memory
    and threads stay bounded. Latency is reported, not asserted: CI machines are shared."""
    out = tmp_path / "loadtest.json"
    r = subprocess.run([sys.executable, "scripts/loadtest.py", "--short", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.exists(), r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    # a session that did not end first: its message says why (a truncated report hid it)
    assert checks["every_session_ended"], [r for r in report["results"]
                                           if r["outcome"] not in ("finished", "refused")]
    for name, ok in checks.items():
        if name != "health_p95_under_300_ms":
            assert ok, (name, json.dumps({k: v for k, v in report.items()}, indent=1)[-3000:])
    assert report["outcomes"] == {"finished": 4}
    assert report["health"]["errors"] == 0 and report["health"]["samples"] > 10
    print(f"\nload test (short): health p95 {report['health']['p95_ms']} ms, server RSS "
          f"{report['server_after_test']['rss_mb']} MB")


@pytest.mark.slow
def test_load_test_class_mode_small(tmp_path):
    """The class scenario, small: 9 sessions over 6 s (one in Chromium), each served from the
    results library and the teacher's link; three press Train (one on a config over the
    hosted cap, refused with the estimate); nothing trained that nobody pressed, none lost.
    The full class (60 sessions over a minute) is `scripts/loadtest.py --class`."""
    out = tmp_path / "class.json"
    r = subprocess.run([sys.executable, "scripts/loadtest.py", "--class", "--sessions", "9",
                        "--browsers", "1", "--spread", "6", "--deadline", "120", "--out",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.exists(), r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(out.read_text())
    for name, ok in report["checks"].items():
        if name != "health_p95_under_300_ms":  # reported, not asserted: CI is shared
            assert ok, (name, json.dumps(report, indent=1)[-3000:])
    assert report["outcomes"] == {"served": 9}
    assert report["steps"]["train"]["outcomes"] == {"finished": 2, "refused": 1}
    print(f"\nload test (class, 9 sessions): health p95 {report['health']['p95_ms']} ms")


# -- the toolbar a visitor sees ------------------------------------------------------------
def test_hosted_app_sets_the_viewer_toolbar_and_local_keeps_the_default(monkeypatch):
    from streamlit import config
    ui.manager()  # the server-wide runner exists before BNVIZ_HOSTED is set: no hosted limits
    assert config.get_option("client.toolbarMode") == "auto"
    at = open_page(None)  # app.py itself: AppTest runs a switched-to page without it
    assert not at.exception and config.get_option("client.toolbarMode") == "auto"
    monkeypatch.setenv("BNVIZ_HOSTED", "1")
    try:
        at = open_page(None)
        assert not at.exception, at.exception
        assert config.get_option("client.toolbarMode") == "viewer"
        # the rerun that picks the option up then drew the page
        assert at.title[0].value == "bnviz — Batch Normalization, live"
    finally:
        config.set_option("client.toolbarMode", "auto")


@pytest.mark.slow
def test_deploy_button_and_developer_menu_only_on_a_local_server(tmp_path, browser):
    """In Chromium: Streamlit's Deploy button and its Rerun / Clear cache menu items are there
    for `streamlit run app.py` on a laptop and gone with BNVIZ_HOSTED=1, from the first load of
    a fresh server on."""
    from tests.server import serve

    def toolbar(env, name):
        with serve(tmp_path / f"{name}.sqlite", env=env) as (url, _):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(url + "/lab")
                page.get_by_role("button", name="▶ Train").wait_for(timeout=120_000)
                menu = page.get_by_test_id("stMainMenu")
                menu.wait_for(timeout=30_000)
                deploy = page.get_by_test_id("stAppDeployButton").count()
                menu.click()
                items = page.get_by_test_id("stMainMenuPopover").inner_text(timeout=30_000)
                return deploy, items
            finally:
                page.close()

    deploy, items = toolbar({}, "local")
    assert deploy == 1 and "Rerun" in items and "Clear cache" in items
    deploy, items = toolbar({"BNVIZ_HOSTED": "1"}, "hosted")
    assert deploy == 0 and "Rerun" not in items and "Clear cache" not in items
    assert "Print" in items  # the viewer's menu is still there


def test_a_share_link_autostarts_only_library_answers_and_small_runs(monkeypatch):
    """On a server with a small autostart budget (hosted: Limits.hosted().autostart_s), a link
    to a run this server never had starts nothing expensive by itself."""
    from bnviz.library.catalog import QUESTION
    mgr = ui.manager()
    monkeypatch.setattr(mgr.limits, "autostart_s", 15.0)
    before = mgr.stats()["queued"] + mgr.stats()["running"]
    ghost = "0123456789ab"
    # expensive: 60 epochs of the subset at batch 8, minutes here
    big = open_page("lab", {"dataset": "subset", "batch_size": "8", "epochs": "60",
                            "run": ghost})
    assert not big.exception, big.exception
    assert any("press **Train** to run this" in i.value for i in big.info)
    assert mgr.stats()["queued"] + mgr.stats()["running"] == before  # nothing queued
    # in the results library: the library's run is shown, nothing is trained
    lib_cfg = QUESTION["presets"].points()[2].config  # d2l-lenet, seed 0
    params = {k: str(v) for k, v in lib_cfg.non_defaults().items() if k != "dataset"}
    answered = open_page("lab", {**params, "run": ghost})
    assert not answered.exception, answered.exception
    assert any("results library's run" in i.value for i in answered.info)
    v = mgr.get(answered.session_state.run_id)
    assert v.info["source"] == "library" and v.status == "finished"
    assert mgr.stats()["queued"] + mgr.stats()["running"] == before
    # small: starts by itself
    small = open_page("lab", {"dataset": "subset", "train_size": "256", "batch_size": "64",
                              "epochs": "1", "seed": "77", "run": ghost})
    assert any("starting the same experiment here" in i.value for i in small.info)
    assert small.session_state.run_id != ghost
