"""Every page runs through app.py, even the first request after a server start.

Streamlit treats an app with a `pages/` folder as a legacy multipage app until some session has
run `st.navigation` once. Until then a deep link such as `/lab` runs `pages/lab.py` on its own:
no page config, no top menu. `via_app()`, first in every page, notices that and reruns the
request through app.py (the flag it clears is the one `st.navigation` itself clears).
tests/test_browser.py checks a fresh server's first request; AppTest runs are left alone.
"""
from __future__ import annotations

import sys

import streamlit as st


def via_app() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # another Streamlit layout: nothing to do
        return
    if "streamlit.testing.v1" in sys.modules:
        # AppTest turns legacy routing back on before every run and names pages by file
        # (switch_page("pages/batch_size.py")), which app.py's url paths would not match.
        return
    # Only on a session's first run, a page load: a rerun there loses nothing.
    if getattr(PagesManager, "uses_pages_directory", None) and not len(st.session_state):
        PagesManager.uses_pages_directory = False
        st.rerun()
