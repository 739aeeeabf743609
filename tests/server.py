"""Start `streamlit run app.py` on a free loopback port for browser tests, benchmarks and
screenshots, and read what a Playwright page shows (chart points, the address bar)."""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (Linux /proc; no psutil needed)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not become healthy at {url}")


@contextlib.contextmanager
def serve(db: Path, env: dict | None = None, port: int | None = None):
    port = port or free_port()
    # PYTHONFAULTHANDLER: a crash in native code (torch, the fused kernels) leaves a traceback
    # in the log instead of a silent exit.
    e = {**os.environ, "BNVIZ_DB": str(db), "PYTHONFAULTHANDLER": "1", **(env or {})}
    # The log goes to a file next to the store: a pipe nobody reads fills up after 64 KB of
    # warnings and then blocks the server mid-test.
    log = open(Path(db).parent / "streamlit.log", "a")
    p = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                          "--server.headless", "true", "--server.port", str(port),
                          "--server.address", "127.0.0.1",
                          "--browser.gatherUsageStats", "false"], cwd=ROOT, env=e,
                         stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url, p
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


# plotly sends numpy/pandas columns as {dtype, bdata} (base64), lists as lists
_COUNT_JS = """
  const size = {f8: 8, f4: 4, i8: 8, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1};
  const count = x => !x ? 0 : (x.bdata !== undefined ? atob(x.bdata).length / (size[x.dtype] || 8)
                                                      : (x.length || 0));
  const charts = Array.from(document.querySelectorAll('.js-plotly-plot'));"""
POINTS_JS = """() => {""" + _COUNT_JS + """
  return charts.map(g => (g.data || []).reduce((n, t) => n + count(t.x), 0));
}"""
# per chart: [faded traces (the results library's seeds), points of every other trace]
LIVE_JS = """() => {""" + _COUNT_JS + """
  return charts.map(g => [
    (g.data || []).filter(t => t.legendgroup === 'background').length,
    (g.data || []).filter(t => t.legendgroup !== 'background')
                  .reduce((n, t) => n + count(t.x), 0)]);
}"""


def chart_points(page) -> list[int]:
    """Points per chart on the page."""
    return page.evaluate(POINTS_JS)


# the training-loss chart's points, leaving out the faded library seeds: the largest count
# over the charts so titled (while a rerun draws, the old chart can still be on the page)
LOSS_JS = """() => {""" + _COUNT_JS + """
  return Math.max(0, ...charts
    .filter(g => ((g.layout || {}).title || {}).text?.includes('Training loss'))
    .map(g => (g.data || []).filter(t => t.legendgroup !== 'background')
                            .reduce((n, t) => n + count(t.x), 0)));
}"""


def loss_points(page) -> int:
    return page.evaluate(LOSS_JS)


def faded_and_live(page) -> list[list[int]]:
    return page.evaluate(LIVE_JS)


def live_points(page) -> int:
    return sum(live for _, live in faded_and_live(page))


def address(page) -> str:
    """The address bar now (page.url is Playwright's cached copy, updated only while it
    handles events)."""
    return page.evaluate("location.href")
