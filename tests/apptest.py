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
    return at.run() if run else at


def button(at: AppTest, label: str):
    """The button with exactly this label (StopIteration when there is none)."""
    return next(b for b in at.button if b.label == label)
