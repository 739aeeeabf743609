"""Opening the app's pages through Streamlit's AppTest (a real script run, no browser): one
helper for every test file."""
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
    """Wait until the server's runner holds at least `min_runs` runs and none is active."""
    import time

    from bnviz.dashboard import ui
    mgr = ui.manager()
    t0 = time.time()
    while time.time() - t0 < timeout:
        runs = [mgr.get(r) for r in list(mgr._jobs)]
        if len(runs) >= min_runs and all(not v.active for v in runs):
            return
        time.sleep(0.1)
