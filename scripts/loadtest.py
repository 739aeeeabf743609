"""Load test of a hosted bnviz: many browser sessions at once against `streamlit run app.py`.

    python scripts/loadtest.py                 # 20 sessions, 100 start/stop cycles
    python scripts/loadtest.py --browsers 0    # the same sessions as websocket clients
    python scripts/loadtest.py --short         # 4 sessions, 20 cycles (CI: tests/test_hosted.py)
    python scripts/loadtest.py --class         # a class: 60 sessions within a minute (below)

Loopback only (127.0.0.1), bounded in time (--deadline) and count. Each session is a Chromium
context, or a client speaking Streamlit's websocket protocol (tests/ws_client.py), that opens
the live lab with a tiny run (256 images, one epoch) and presses Train. It
checks that every run ends finished or refused with a reason and that the run store agrees
(none lost, none extra), polls /_stcore/health throughout for its latency, reads the server's
memory and threads, then runs start/stop cycles through a JobManager in this process. Writes a
JSON report and exits 1 when a check fails.

--class runs the class scenario instead (scripts/loadtest_class.py: 60 sessions over a minute).

The server's Python threads are read by name without py-spy: a sitecustomize.py put on the
server's PYTHONPATH makes it write `threading.enumerate()` to a file on SIGUSR2. A report that
could not read them fails its `python_thread_names_read` check instead of passing unread.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import CHROMIUM, CHROMIUM_ARGS, rss_mb, serve, thread_count  # noqa: E402
from tests.ws_client import StreamlitClient  # noqa: E402

# The live lab is at "/lab"; "/" is the About page.
TINY = "dataset=subset&train_size=256&batch_size=64&epochs=1"
ENDED = re.compile(r"Finished|Not started|Failed|Diverged|Stopped|Interrupted")
# Ended runs leave the server's memory 3 s after they end, so expiry happens within the test.
SERVER_ENV = {"BNVIZ_HOSTED": "1", "BNVIZ_LIMIT_KEEP_FINISHED_S": "3",
              "BNVIZ_LIMIT_EXPIRE_EVERY_S": "1"}


# Installed as the server's sitecustomize.py (a temporary folder first on its PYTHONPATH).
THREAD_NAMES_HOOK = '''"""From scripts/loadtest.py: on SIGUSR2 write this process's Python thread names to
$BNVIZ_THREAD_NAMES as JSON; $BNVIZ_THREAD_NAMES.ready says the handler is in place."""
import importlib.machinery
import importlib.util
import json
import os
import signal
import sys
import threading

_out = os.environ.get("BNVIZ_THREAD_NAMES")


def _dump(signum, frame):
    with open(_out + ".tmp", "w") as f:
        json.dump([t.name for t in threading.enumerate()], f)
    os.replace(_out + ".tmp", _out)


if _out and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGUSR2, _dump)
    open(_out + ".ready", "w").close()

# a sitecustomize further along the path still runs
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _spec is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
'''


def install_thread_names_hook(tmp: Path) -> tuple[dict, Path]:
    """The server environment that loads THREAD_NAMES_HOOK, and the file it writes."""
    hook = tmp / "thread-names-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(THREAD_NAMES_HOOK)
    names = tmp / "thread-names.json"
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "BNVIZ_THREAD_NAMES": str(names)}, names


def python_threads(pid: int, names: Path) -> dict | None:
    """The server's Python threads by name (trailing numbers cut: "bnviz-worker-1" counts as
    "bnviz-worker"), or None when the server cannot say (the hook did not load)."""
    if not Path(f"{names}.ready").exists():
        return None  # SIGUSR2 without the handler would end the server
    names.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.time() + 10
    while not names.exists() and time.time() < deadline:
        time.sleep(0.05)
    if not names.exists():
        return None
    found = [re.sub(r"[-_ ]?\d+(_\d+)?$", "", n) for n in json.loads(names.read_text())]
    return {n: found.count(n) for n in sorted(set(found))}


class HealthProbe(threading.Thread):
    """GET /_stcore/health every 100 ms; the latencies say whether the server stays
    responsive while sessions train."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.ms, self.errors = url + "/_stcore/health", [], 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.ms.append((time.perf_counter() - t0) * 1000)
            except OSError:
                self.errors += 1
            self.halt.wait(0.1)

    def summary(self) -> dict:
        ms = sorted(self.ms) or [float("nan")]
        return dict(samples=len(self.ms), errors=self.errors,
                    p50_ms=round(statistics.median(ms), 1),
                    p95_ms=round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
                    max_ms=round(ms[-1], 1))


async def one_session(browser, url: str, i: int, timeout_s: float) -> dict:
    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    out = dict(session=i, client="browser", outcome="lost", run_id=None, message="")
    t0 = time.time()
    try:
        page = await ctx.new_page()
        await page.goto(f"{url}/lab?{TINY}&seed={i}", timeout=timeout_s * 1000)
        train = page.get_by_role("button", name="▶ Train")
        await train.wait_for(timeout=timeout_s * 1000)
        await train.click()
        ended = page.get_by_text(ENDED).first
        await ended.wait_for(timeout=timeout_s * 1000)
        text = (await ended.inner_text()).strip()
        word = ENDED.search(text).group(0)
        out["message"] = text[:200]
        out["outcome"] = "refused" if word == "Not started" else word.lower()
        if out["outcome"] != "refused":  # the address bar gets the run id with the rerun
            try:
                await page.wait_for_url(re.compile(r"[?&]run="), timeout=10_000)
            except Exception:  # noqa: BLE001 - the run is found through the page instead
                out["address_bar"] = page.url
                cap = await page.get_by_text(re.compile(r"run `?[0-9a-f]{12}")).first.inner_text()
                out["run_id"] = re.search(r"[0-9a-f]{12}", cap).group(0)
        if m := re.search(r"[?&]run=([0-9a-f]{12})", page.url):
            out["run_id"] = m.group(1)
    except Exception as e:  # noqa: BLE001 - a session that never ended is the finding
        out["message"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        out["seconds"] = round(time.time() - t0, 2)
        await ctx.close()
    return out


async def one_ws_session(url: str, i: int, timeout_s: float) -> dict:
    """The same visit through Streamlit's websocket protocol, without a browser."""
    out = dict(session=i, client="ws", outcome="lost", run_id=None, message="")
    t0 = time.time()
    try:
        async with StreamlitClient(url, f"{TINY}&seed={i}") as c:
            await c.rerun()
            await c.until_script_done(timeout_s)
            await c.rerun(trigger="▶ Train")
            await c.until_script_done(timeout_s)

            def ended():
                return next((t for _, t in c.alerts if ENDED.match(t.lstrip("✅❌💥⏹️⚠ "))),
                            None)
            await c.poll_until(ended, timeout_s)
            text = ended()
            word = ENDED.search(text).group(0)
            out.update(message=text[:200], run_id=c.run_id,
                       outcome="refused" if word == "Not started" else word.lower())
    except Exception as e:  # noqa: BLE001 - a session that never ended is the finding
        out["message"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    out["seconds"] = round(time.time() - t0, 2)
    return out


async def sessions(url: str, n: int, browsers: int, timeout_s: float, on_warm) -> list[dict]:
    """n sessions at once: the first `browsers` in Chromium, the rest as websocket clients."""
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            warm = await browser.new_page()  # the first page pays for importing torch
            await warm.goto(f"{url}/lab", timeout=120_000)
            await warm.get_by_role("button", name="▶ Train").wait_for(timeout=120_000)
            await warm.close()
            on_warm()
            return await asyncio.gather(*(
                one_session(browser, url, i, timeout_s) if i < browsers
                else one_ws_session(url, i, timeout_s) for i in range(n)))
        finally:
            await browser.close()


def server_state(pid: int, names: Path) -> dict:
    """Memory and threads of the server (all threads, from /proc), and its Python threads by
    name."""
    return dict(rss_mb=round(rss_mb(pid), 1), threads=thread_count(pid),
                python_threads=python_threads(pid, names))


def check_store(db: Path, results: list[dict]) -> dict:
    from bnviz.runs.store import RunStore
    store = RunStore(db)
    ids = {r["run_id"] for r in results if r["run_id"]}
    deadline = time.time() + 10  # the store follows memory by one save
    while time.time() < deadline:
        rows = {r["run_id"]: r["status"] for r in store.list_runs(limit=10_000)}
        if all(rows.get(i) not in (None, "queued", "running") for i in ids):
            break
        time.sleep(0.2)
    lost = sorted(i for i in ids if i not in rows)
    asked = dict(dataset="subset", train_size=256, batch_size=64, epochs=1)
    trained = [store.load(i).config for i in rows]
    wrong = [c.config_id() for c in trained if any(getattr(c, k) != v for k, v in asked.items())]
    return dict(stored=len(rows), by_status={s: list(rows.values()).count(s)
                                             for s in sorted(set(rows.values()))},
                lost=lost, extra=sorted(set(rows) - ids), integrity=store.integrity(),
                not_the_config_asked_for=wrong,
                unfinished=sorted(i for i, s in rows.items() if s in ("queued", "running")))


def start_stop_cycles(n: int, tmp: Path) -> dict:
    """n runs submitted and stopped through a JobManager here: memory and threads after."""
    import torch
    torch.set_num_threads(1)
    from bnviz.config import make_config
    from bnviz.runs.jobs import JobManager, Limits
    from bnviz.runs.store import RunStore
    threads0 = threading.active_count()
    mgr = JobManager(workers=1, store=RunStore(tmp / "cycles.sqlite"),
                     limits=Limits(keep_finished_s=0, expire_every_s=0))
    cfg = make_config(dataset="subset", train_size=256, batch_size=64, epochs=1)
    rss = []
    for i in range(n):
        run = mgr.submit(cfg.replace(seed=i), session="cycler", reuse=False)
        while i % 4 == 0 and mgr.get(run).status == "queued":  # some are stopped mid-run
            time.sleep(0.005)
        mgr.cancel(run, session="cycler")
        while mgr.get(run).active:
            time.sleep(0.005)
        if i in (0, n // 2, n - 1):
            rss.append(round(rss_mb(), 1))
    stats = mgr.stats()
    mgr.shutdown()
    return dict(cycles=n, rss_mb_first_mid_last=rss, in_memory_after=stats["in_memory"],
                expired=stats["expired"], threads_before=threads0,
                threads_after_shutdown=threading.active_count())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--browsers", type=int, default=None,
                    help="how many sessions run in Chromium (default all); the rest are "
                         "websocket clients, which leave the CPU to the server")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--short", action="store_true", help="4 sessions, 20 cycles (CI)")
    ap.add_argument("--class", dest="klass", action="store_true",
                    help="a class at once: 60 sessions over 60 s, 5 of them in Chromium")
    ap.add_argument("--spread", type=float, default=60.0,
                    help="--class: seconds over which the sessions arrive")
    ap.add_argument("--deadline", type=float, default=300, help="seconds for the sessions")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra server environment, e.g. BNVIZ_LIMIT_MAX_QUEUE=8")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "loadtest.json")
    a = ap.parse_args(argv)
    if a.klass:  # scripts/loadtest_class.py
        from loadtest_class import class_main
        a.sessions = a.sessions if "--sessions" in (argv or sys.argv) else 60
        a.browsers = 5 if a.browsers is None else min(a.browsers, a.sessions)
        return class_main(a, Path(tempfile.mkdtemp(prefix="bnviz-class-")))
    if a.short:
        a.sessions, a.cycles, a.deadline = min(a.sessions, 4), min(a.cycles, 20), 120
        a.browsers = 2 if a.browsers is None else a.browsers
    a.browsers = a.sessions if a.browsers is None else min(a.browsers, a.sessions)
    tmp = Path(tempfile.mkdtemp(prefix="bnviz-load-"))
    db = tmp / "runs.sqlite"
    report: dict = dict(sessions=a.sessions, browsers=a.browsers,
                        websocket_clients=a.sessions - a.browsers, short=a.short)
    env = {**SERVER_ENV, **dict(e.split("=", 1) for e in a.env)}
    report["server_env"] = env
    hook_env, names = install_thread_names_hook(tmp)
    with serve(db, env={**env, **hook_env}) as (url, proc):
        report["server_start"] = server_state(proc.pid, names)
        probe = HealthProbe(url)

        def warmed():  # torch imported, runner up: the baseline, then the probe starts
            report["server_warm"] = server_state(proc.pid, names)
            probe.start()
        t0 = time.time()
        results = asyncio.run(sessions(url, a.sessions, a.browsers, a.deadline, warmed))
        report["sessions_seconds"] = round(time.time() - t0, 1)
        probe.halt.set()
        probe.join()
        report["health"] = probe.summary()
        report["server_after_test"] = server_state(proc.pid, names)
        time.sleep(5)  # sessions close, ended runs pass keep_finished_s and are swept
        report["server_after_expiry"] = server_state(proc.pid, names)
    outcomes = [r["outcome"] for r in results]
    report["outcomes"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    report["address_bars_without_run"] = [r["address_bar"] for r in results if "address_bar" in r]
    report["results"] = results
    report["store"] = check_store(db, results)
    report["cycles"] = start_stop_cycles(a.cycles, tmp)
    s, c = report["store"], report["cycles"]
    report["checks"] = checks = dict(
        every_session_ended=all(o in ("finished", "refused") for o in outcomes),
        refusals_give_a_reason=all(len(r["message"]) > len("Not started: ")
                                   for r in results if r["outcome"] == "refused"),
        none_lost=not s["lost"] and not s["extra"] and not s["unfinished"],
        each_trained_what_its_link_asked=not s["not_the_config_asked_for"],
        store_ok=s["integrity"] == "ok",
        server_rss_under_1_5_gb=report["server_after_test"]["rss_mb"] < 1536,
        cycles_rss_under_1_5_gb=max(c["rss_mb_first_mid_last"]) < 1536,
        no_thread_left_in_cycles=c["threads_after_shutdown"] <= c["threads_before"],
        # Idle threads of Starlette's AnyIO pool (at most 40) stay for reuse; a leak of
        # script runners or workers would grow with every session instead.
        server_threads_bounded=report["server_after_expiry"]["threads"]
        <= report["server_warm"]["threads"] + 40,
        # the names below are read, not assumed: a server that could not list its threads
        # (or that lists no worker while runs were training) fails here
        python_thread_names_read=all(
            report[k]["python_threads"] for k in ("server_warm", "server_after_test",
                                                  "server_after_expiry"))
        and "bnviz-worker" in report["server_after_test"]["python_threads"],
        no_script_thread_left=not any(
            n.startswith("ScriptRunner") or (n == "bnviz-worker" and c > 2)  # 2: max_workers
            for n, c in (report["server_after_expiry"]["python_threads"] or {}).items()),
        health_p95_under_300_ms=report["health"]["p95_ms"] < 300)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
