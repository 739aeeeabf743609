"""Opening the app's pages through Streamlit's AppTest (a real script run, no browser): one
helper for every test file."""
import math
import statistics
from dataclasses import dataclass

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def open_page(path: str | None, params: dict | None = None, timeout: float = 120,
              run: bool = True) -> AppTest:
    """The app at `path` ("pages/lab.py", or just "lab"), with `params` as the link's query
    parameters; run once unless run=False.

    AppTest runs a switched-to page's script by itself, as Streamlit's file-based multipage
    routing does, not through app.py; path=None runs app.py (its default page, About)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    if path is not None:
        at.switch_page(path if "/" in path or path.endswith(".py") else f"pages/{path}.py")
    for k, v in (params or {}).items():
        at.query_params[k] = v
    if not run:
        return at
    at.run()
    if any(INTERPRETER_BUG in (e.message or "") for e in at.exception):
        at.run()  # once, and only for this message: see INTERPRETER_BUG
    return at


# CPython 3.11.x before 3.11.8 can raise this from compile() when two threads parse at once
# (python/cpython#106905): Streamlit compiling a page while a training thread imports. It is
# not bnviz's error and the same run succeeds when repeated; every other exception counts.
INTERPRETER_BUG = "AST constructor recursion depth mismatch"


def button(at: AppTest, label: str):
    """The button with exactly this label (StopIteration when there is none)."""
    return next(b for b in at.button if b.label == label)


def wait_until_idle(min_runs: int, timeout: float) -> None:
    """Wait until the server's runner lists at least `min_runs` runs and none is queued or
    running; after `timeout` seconds raise TimeoutError naming the runs still going."""
    import time

    from bnviz.dashboard import ui
    from bnviz.runs.record import ACTIVE
    mgr = ui.manager()
    t0 = time.time()
    while True:
        runs = mgr.list_runs(limit=100_000)
        going = [r for r in runs if r["status"] in ACTIVE]
        if len(runs) >= min_runs and not going:
            return
        if time.time() - t0 >= timeout:
            break
        time.sleep(0.1)
    raise TimeoutError(
        f"after {timeout:g} s the runner lists {len(runs)} runs (wanted at least {min_runs}), "
        f"{len(going)} still going: " + ", ".join(f"{r['run_id']} {r['status']}"
                                                  for r in going[:10]))


# Two-sided 95% Student t quantiles, df 1..9, as printed in any t table: the page tests
# recompute the intervals a page shows without bnviz.stats, so a wrong page cannot agree with
# itself.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622)


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float
    n: int

    def apart(self, other: "Interval") -> bool:
        """The two 95% intervals do not overlap."""
        return (self.mean + self.half < other.mean - other.half or
                other.mean + other.half < self.mean - self.half)

    def text(self) -> str:
        return f"{self.mean:.3f} ± {self.half:.3f}"


def seed_intervals(points, metric: str) -> dict[str, Interval]:
    """Each configuration label's mean and 95% CI of `metric` over its seeds, read from the
    runs themselves (the server's runner, RunView.summary), every run finished."""
    from bnviz.dashboard import ui
    mgr = ui.manager()
    values: dict[str, list[float]] = {}
    for p in points:
        v = mgr.find(p.config)
        assert v is not None and v.status == "finished", (p.label, p.config.seed, v)
        values.setdefault(p.label, []).append(float(v.summary[metric]))
    out = {}
    for label, xs in values.items():
        n = len(xs)
        half = T975[n - 2] * statistics.stdev(xs) / math.sqrt(n) if n > 1 else math.nan
        out[label] = Interval(statistics.fmean(xs), half, n)
    return out
