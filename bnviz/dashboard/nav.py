"""Every page runs through app.py, even the first request after a server start.

Streamlit treats an app with a `pages/` folder as a legacy multipage app until some session has
run `st.navigation` once. Until then a deep link such as `/lab` runs `pages/lab.py` on its own:
no page config, no top menu. `via_app()`, first in every page, notices that and reruns the
request through app.py (the flag it clears is the one `st.navigation` itself clears).
tests/test_browser.py checks a fresh server's first request; AppTest runs are left alone.
"""
from __future__ import annotations

import logging
import sys
import threading
import time

import streamlit as st

log = logging.getLogger("bnviz.warm")
_warm_lock = threading.Lock()
_warm_started = False
_ast_lock = threading.RLock()
_parse = _serialised = None  # ast.parse as it was, and the locked one put in its place


def serialise_ast_parse() -> None:
    """One lock around ast.parse for the whole server process (idempotent).

    CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state, so two
    threads in ast.parse at once can fail with "SystemError: AST constructor recursion depth
    mismatch" (python/cpython#106905 and kin). A server parses in many threads: Streamlit
    compiles each page script through ast.parse (magic), and numpy's np.load reads every .npy
    header with ast.literal_eval, which calls ast.parse: decoding the results library is some
    44,000 of them, while the first visitors' pages compile. The load test lost a session to
    it. The lock costs microseconds a parse; literal_eval goes through it too."""
    import ast
    global _parse, _serialised
    with _ast_lock:
        if ast.parse is _serialised and _serialised is not None:
            return
        _parse = parse = ast.parse

        def serialised(*args, **kwargs):
            with _ast_lock:
                return parse(*args, **kwargs)
        serialised.__doc__ = parse.__doc__
        _serialised = ast.parse = serialised


def via_app() -> None:
    from bnviz.dashboard import lang
    first_run = not len(st.session_state)  # before install() writes the language into it
    lang.install()  # the session's language, before the page's first string
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # another Streamlit layout: nothing to do
        return
    if "streamlit.testing.v1" in sys.modules:
        # AppTest turns legacy routing back on before every run and names pages by file
        # (switch_page("pages/batch_size.py")), which app.py's url paths would not match.
        return
    # Only on a session's first run, a page load: a rerun there loses nothing.
    if getattr(PagesManager, "uses_pages_directory", None) and first_run:
        PagesManager.uses_pages_directory = False
        st.rerun()


def warm_server() -> None:
    """Once per server process, on its first page view: import what the pages need (torch,
    pandas, plotly: seconds on a small CPU), decode the results library and compute the bias
    and batch-size pages' one-batch results for their defaults, in a background thread, so a visitor who lands on About and opens a question finds it ready. The thread
    calls no st.* function; it logs "bnviz: warm" with the time taken. ast.parse is made
    thread-safe first (serialise_ast_parse)."""
    global _warm_started
    serialise_ast_parse()
    with _warm_lock:
        if _warm_started:
            return
        _warm_started = True
    threading.Thread(target=_warm, name="bnviz-warm-server", daemon=True).start()


def _warm() -> None:
    t0 = time.time()
    try:
        import bnviz.dashboard.grid  # noqa: F401  (torch, pandas, plotly, the runner)
        from bnviz.dashboard import cached, ui
        from bnviz.library import open_library
        lib = open_library()
        n = lib.preload() if lib is not None else 0
        cached.warm(ui.page_base)  # pure computations: no st.* call
        print(f"bnviz: warm in {time.time() - t0:.1f} s ({n} library runs decoded, page "
              "computations done)", file=sys.stderr, flush=True)
    except Exception as e:  # a page will report the same problem properly
        log.warning("warm-up failed: %s", e)
