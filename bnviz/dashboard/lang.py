"""The visitor's language: English or 中文, per session, carried in the share link as `lang=zh`.

`install()` runs first in app.py and in every page (through nav.via_app): on a session's first
run it takes the language from the link (`?lang=zh`), then keeps it in the session, and it makes
bnviz.i18n ask this session for its language. `picker()` draws the choice at the top of every
page; switching keeps the controls and the run (session state) and rewrites the link's `lang`.
Worker threads never get here: they emit data, and `_()` outside a script run is English.
"""
from __future__ import annotations

import streamlit as st

from bnviz import i18n
from bnviz.i18n import LANGUAGES, _

KEY = "lang"  # session state: the language of this session
PARAM = "lang"  # link parameter


def _session_language() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    if get_script_run_ctx(suppress_warning=True) is None:
        return i18n.DEFAULT  # not a script run (a worker thread, the warm-up): English
    return st.session_state.get(KEY, i18n.DEFAULT)


def install() -> str:
    i18n.set_resolver(_session_language)
    if KEY not in st.session_state:
        asked = st.query_params.get(PARAM)
        st.session_state[KEY] = asked if asked in LANGUAGES else i18n.DEFAULT
    return st.session_state[KEY]


def link_params() -> dict[str, str]:
    """What the share link adds for the language: nothing for English (the default)."""
    lang = st.session_state.get(KEY, i18n.DEFAULT)
    return {} if lang == i18n.DEFAULT else {PARAM: lang}


def _switched() -> None:
    lang = st.session_state.get("lang_picker") or i18n.DEFAULT
    st.session_state[KEY] = lang
    if lang == i18n.DEFAULT:
        if PARAM in st.query_params:
            del st.query_params[PARAM]
    else:
        st.query_params[PARAM] = lang


def picker() -> None:
    """The language choice, at the top right of the page."""
    st.session_state["lang_picker"] = st.session_state.get(KEY, i18n.DEFAULT)
    __, right = st.columns([5, 1])
    right.segmented_control(_("Language"), list(LANGUAGES), key="lang_picker",
                            format_func=LANGUAGES.get, on_change=_switched,
                            label_visibility="collapsed")
