"""The class scenario of scripts/loadtest.py (`--class`): a teacher's link sent to a class.

60 sessions arrive over 60 s (5 in Chromium, the rest websocket clients) at a hosted server
with only the bundled subset. Each opens a question page (it must draw the results library's
answer), then the teacher's share link (a library run in the lab: shown, not trained); every
third also presses Train on a config of its own (small ones finish; every ninth asks for
batch 2 evaluated three ways after every step, which must be refused with the cap and the
estimate). Health p95 must stay under 300 ms and every run pressed must be in the store.
"""
from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from pathlib import Path

from loadtest import ENDED, TINY, HealthProbe
from tests.server import CHROMIUM, CHROMIUM_ARGS, rss_mb, serve, thread_count
from tests.ws_client import StreamlitClient

QUESTION_PATHS = ("ablation", "batch-size", "bias", "devices", "fluctuation", "gamma-beta",
                  "learning-rate")
EXPENSIVE = "dataset=subset&batch_size=2&eval_every=1&compare_eval=true&epochs=1"
REFUSED_SAYS = ("this server allows", "this run would take")


def teacher_link_run() -> str:
    """The run a teacher shares: the results library's d2l LeNet-BN, seed 0."""
    from bnviz.library import open_library
    from bnviz.library.catalog import QUESTION
    return open_library().find(QUESTION["presets"].points()[0].config)


def own_query(i: int) -> str:
    return EXPENSIVE if i % 9 == 0 else f"{TINY}&seed={1000 + i}"


async def class_ws_session(url: str, i: int, timeout_s: float, teacher: str) -> dict:
    out = dict(session=i, client="ws", question=QUESTION_PATHS[i % len(QUESTION_PATHS)],
               outcome="lost", run_id=None, message="", steps={})
    t0 = time.time()
    try:
        async with StreamlitClient(url, "", page_name=out["question"]) as c:
            await c.rerun()
            await c.until_script_done(timeout_s)
            ok = c.charts > 0 and any("From the results library: 5 paired seeds" in t
                                      for t in c.texts)
            out["steps"]["question"] = dict(ok=ok, seconds=round(time.time() - t0, 2))
        t1 = time.time()
        async with StreamlitClient(url, f"run={teacher}") as c:
            await c.rerun()
            await c.until_script_done(timeout_s)
            # the address bar keeps the run (a changed one would come as page_info_changed)
            ok = c.param("run") == teacher and any(k == "success" and "Finished" in t
                                                   for k, t in c.alerts)
            out["steps"]["share_link"] = dict(ok=ok, seconds=round(time.time() - t1, 2))
        if i % 3 == 0:
            t2 = time.time()
            async with StreamlitClient(url, own_query(i)) as c:
                await c.rerun()
                await c.until_script_done(timeout_s)
                await c.rerun(trigger="▶ Train")
                await c.until_script_done(timeout_s)

                def ended():
                    return next((t for _, t in c.alerts
                                 if ENDED.match(t.lstrip("✅❌💥⏹️⚠ "))), None)
                await c.poll_until(ended, timeout_s)
                text = ended()
                word = ENDED.search(text).group(0)
                out.update(run_id=None if word == "Not started" else c.run_id,
                           message=text[:300])
                out["steps"]["train"] = dict(
                    ok=(word == "Not started" and all(w in text for w in REFUSED_SAYS))
                    if i % 9 == 0 else word == "Finished",
                    outcome="refused" if word == "Not started" else word.lower(),
                    seconds=round(time.time() - t2, 2))
        out["outcome"] = "served" if all(s["ok"] for s in out["steps"].values()) else "wrong"
    except Exception as e:  # noqa: BLE001 - a session that was never served is the finding
        out["message"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    out["seconds"] = round(time.time() - t0, 2)
    return out


async def class_browser_session(browser, url: str, i: int, timeout_s: float,
                                teacher: str) -> dict:
    out = dict(session=i, client="browser", question=QUESTION_PATHS[i % len(QUESTION_PATHS)],
               outcome="lost", run_id=None, message="", steps={})
    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    t0 = time.time()
    try:
        page = await ctx.new_page()
        await page.goto(f"{url}/{out['question']}", timeout=timeout_s * 1000)
        await page.get_by_text("From the results library: 5 paired seeds").first.wait_for(
            timeout=timeout_s * 1000)
        await page.locator(".js-plotly-plot").first.wait_for(timeout=timeout_s * 1000)
        out["steps"]["question"] = dict(ok=True, seconds=round(time.time() - t0, 2))
        t1 = time.time()
        await page.goto(f"{url}/lab?run={teacher}", timeout=timeout_s * 1000)
        await page.get_by_text("Finished").first.wait_for(timeout=timeout_s * 1000)
        out["steps"]["share_link"] = dict(ok=teacher in page.url,
                                          seconds=round(time.time() - t1, 2))
        if i % 3 == 0:
            t2 = time.time()
            await page.goto(f"{url}/lab?{own_query(i)}", timeout=timeout_s * 1000)
            train = page.get_by_role("button", name="▶ Train")
            await train.wait_for(timeout=timeout_s * 1000)
            await train.click()
            ended = page.get_by_text(re.compile(r"Finished\.|Not started")).first
            await ended.wait_for(timeout=timeout_s * 1000)
            text = (await ended.inner_text()).strip()
            refused = text.startswith("Not started")
            if not refused:
                await page.wait_for_url(re.compile(r"[?&]run=(?!" + teacher + ")"),
                                        timeout=10_000)
                out["run_id"] = re.search(r"[?&]run=([0-9a-f]{12})", page.url).group(1)
            out["message"] = text[:300]
            out["steps"]["train"] = dict(
                ok=(refused and all(w in text for w in REFUSED_SAYS)) if i % 9 == 0
                else not refused, outcome="refused" if refused else "finished",
                seconds=round(time.time() - t2, 2))
        out["outcome"] = "served" if all(s["ok"] for s in out["steps"].values()) else "wrong"
    except Exception as e:  # noqa: BLE001
        out["message"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        out["seconds"] = round(time.time() - t0, 2)
        await ctx.close()
    return out


async def class_sessions(url: str, n: int, browsers: int, spread_s: float, timeout_s: float,
                         teacher: str, on_warm) -> list[dict]:
    """n sessions arriving evenly over spread_s seconds; the first `browsers` in Chromium."""
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            warm = await browser.new_page()  # the teacher opens About first: warm-up starts
            await warm.goto(url + "/", timeout=120_000)
            await warm.get_by_text("Questions, answered by experiment").first.wait_for(
                timeout=120_000)
            await warm.close()
            on_warm()

            async def later(i):
                await asyncio.sleep(i * spread_s / n)
                # Chromium sessions spread over the minute too: every (n // browsers)-th
                if browsers and i % max(1, n // browsers) == 0 and i // max(1, n // browsers) \
                        < browsers:
                    return await class_browser_session(browser, url, i, timeout_s, teacher)
                return await class_ws_session(url, i, timeout_s, teacher)
            return await asyncio.gather(*(later(i) for i in range(n)))
        finally:
            await browser.close()


def class_main(a, tmp: Path) -> int:
    db = tmp / "runs.sqlite"
    teacher = teacher_link_run()
    env = {"BNVIZ_HOSTED": "1", "BNVIZ_DATA": "subset", **dict(e.split("=", 1) for e in a.env)}
    report: dict = dict(mode="class", sessions=a.sessions, browsers=a.browsers,
                        spread_s=a.spread, server_env=env, teacher_run=teacher)
    with serve(db, env=env) as (url, proc):
        probe = HealthProbe(url)
        log = db.parent / "streamlit.log"

        def warmed():
            t0 = time.time()
            while "bnviz: warm in" not in log.read_text() and time.time() - t0 < 60:
                time.sleep(0.1)
            report["server_warm"] = dict(rss_mb=round(rss_mb(proc.pid), 1),
                                         threads=thread_count(proc.pid))
            probe.start()
        t0 = time.time()
        results = asyncio.run(class_sessions(url, a.sessions, a.browsers, a.spread,
                                             a.deadline, teacher, warmed))
        report["sessions_seconds"] = round(time.time() - t0, 1)
        probe.halt.set()
        probe.join()
        report["health"] = probe.summary()
        report["server_after"] = dict(rss_mb=round(rss_mb(proc.pid), 1),
                                      threads=thread_count(proc.pid))
    outcomes = [r["outcome"] for r in results]
    report["outcomes"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    steps = {}
    for name in ("question", "share_link", "train"):
        got = [r["steps"][name] for r in results if name in r["steps"]]
        secs = sorted(g["seconds"] for g in got) or [float("nan")]
        steps[name] = dict(n=len(got), ok=sum(g["ok"] for g in got),
                           median_s=round(statistics.median(secs), 2),
                           p95_s=round(secs[min(len(secs) - 1, int(0.95 * len(secs)))], 2))
        if name == "train":
            o = [g["outcome"] for g in got]
            steps[name]["outcomes"] = {k: o.count(k) for k in sorted(set(o))}
    report["steps"] = steps
    report["results"] = results
    from bnviz.runs.store import RunStore
    store = RunStore(db)
    rows = {r["run_id"]: r["status"] for r in store.list_runs(limit=10_000)}
    pressed = [r["run_id"] for r in results if r["run_id"]]
    report["store"] = dict(stored=len(rows), by_status={s: list(rows.values()).count(s)
                                                        for s in sorted(set(rows.values()))},
                           lost=sorted(i for i in pressed if i not in rows),
                           extra=sorted(set(rows) - set(pressed)),
                           integrity=store.integrity())
    report["checks"] = checks = dict(
        every_session_served=outcomes.count("served") == len(results),
        library_answers_drawn=steps["question"]["ok"] == steps["question"]["n"],
        share_link_shown_not_trained=steps["share_link"]["ok"] == steps["share_link"]["n"]
        and teacher not in rows,
        expensive_refused_with_cap_and_estimate=all(
            r["steps"]["train"]["ok"] for r in results if r["session"] % 9 == 0
            and "train" in r["steps"]),
        none_lost=not report["store"]["lost"] and not report["store"]["extra"],
        store_ok=report["store"]["integrity"] == "ok",
        health_p95_under_300_ms=report["health"]["p95_ms"] < 300)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
    return 0 if all(checks.values()) else 1
