"""A real browser: Chromium, driven by Playwright, against `streamlit run app.py`."""
import time

import pytest

from tests.server import serve

pytestmark = pytest.mark.slow  # a real browser against a real server

POINTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(g => (g.data || []).reduce((n, t) => n + ((t.x && t.x.length) || 0), 0))"""


def chart_points(page) -> list[int]:
    return page.evaluate(POINTS_JS)


def wait_until(fn, timeout=60.0, every=0.1):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out waiting")


def settled_points(page, quiet=1.5, timeout=30.0) -> int:
    last, since, t0 = -1, time.time(), time.time()
    while time.time() - t0 < timeout:
        n = sum(chart_points(page))
        if n != last:
            last, since = n, time.time()
        elif n > 0 and time.time() - since >= quiet:
            return n
        time.sleep(0.1)
    raise AssertionError(f"chart points never settled (last {last})")


def test_train_watch_points_grow_then_stop(tmp_path, browser):
    with serve(tmp_path / "runs.sqlite") as (url, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/lab?dataset=subset&train_size=2048&batch_size=16&epochs=200")
        page.get_by_role("button", name="▶ Train").wait_for(timeout=30000)
        # The first request to a fresh server, a deep link, still ran through app.py
        # (bnviz/ui_nav.py): its page config and the top menu are there.
        page.locator("header").get_by_text("Questions, answered by experiment").wait_for(
            timeout=10000)
        assert page.title() == "bnviz — BatchNorm, live"
        page.get_by_role("button", name="▶ Train").click()
        t_click = time.time()
        first = wait_until(lambda: sum(chart_points(page)) > 0, timeout=30)
        t_first = time.time() - t_click
        later = wait_until(lambda: (n := sum(chart_points(page))) > first and n, timeout=30)
        assert later > first  # the live charts gain points while training
        assert "run=" in page.url  # the run id is in the address bar: refresh reattaches
        page.get_by_role("button", name="■ Stop").click()
        page.get_by_text("Stopped").first.wait_for(timeout=30000)
        page.wait_for_timeout(2000)  # let the final full rerun settle
        frozen = sum(chart_points(page))
        page.wait_for_timeout(2500)
        assert sum(chart_points(page)) == frozen  # polling ended with the run
        print(f"\nfirst point {t_first:.2f} s after Train")


def test_share_link_opens_the_same_run_in_a_fresh_context(tmp_path, browser):
    with serve(tmp_path / "runs.sqlite") as (url, _):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(url + "/lab?dataset=subset&train_size=512&batch_size=64&epochs=2&seed=5")
        page.get_by_role("button", name="▶ Train").click()
        page.get_by_text("Finished").first.wait_for(timeout=60000)
        link = page.url
        assert "run=" in link
        # "Finished" is drawn just before that render's charts: read the points once the
        # final charts are in (the count stops changing).
        points = settled_points(page)
        ctx.close()
        fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
        p2 = fresh.new_page()
        p2.goto(link)
        p2.get_by_text("Finished").first.wait_for(timeout=30000)
        wait_until(lambda: sum(chart_points(p2)) == points, timeout=20)
        assert link.split("run=")[1][:12] in p2.content()
        fresh.close()
