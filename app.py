"""bnviz: learn how Batch Normalization behaves by training small CNNs live.

Run with `streamlit run app.py`. Heavy imports (torch) happen inside the pages, not here.
"""
import os

import streamlit as st

# A hosted demo (BNVIZ_HOSTED=1) shows visitors the viewer's toolbar: no Deploy button and no
# developer menu (rerun, clear cache, settings). The option is server-wide and each page load
# reads it as its script starts, so the first load after a server start reruns once to pick it
# up. A mode given on the command line or in config.toml (not "auto") is left as it is.
if os.environ.get("BNVIZ_HOSTED") == "1" and st.get_option("client.toolbarMode") == "auto":
    st.set_option("client.toolbarMode", "viewer")
    st.rerun()

from bnviz.dashboard import lang  # noqa: E402
from bnviz.i18n import _  # noqa: E402
from bnviz.library.catalog import PAGES  # noqa: E402  (no torch: the menu stays quick)

lang.install()  # the session's language (a link's lang=zh on its first run)
st.set_page_config(page_title=_("bnviz — BatchNorm, live"), page_icon=":material/insights:",
                   layout="wide")

# About is the landing page at "/": a default page answers only at "/", and a link to
# "/lab?…" must open the lab itself (share links carry the page's path).
menu: dict[str, list] = {}
for page in PAGES:
    menu.setdefault(_(page.section), []).append(
        st.Page(f"pages/{page.file}", title=_(page.title), icon=page.icon,
                default=True) if not page.id else
        st.Page(f"pages/{page.file}", title=_(page.title), icon=page.icon, url_path=page.id))
# The menu sits on top: a `pages/` folder next to the entry point makes Streamlit show its
# legacy file-name menu in the sidebar at times, so the sidebar one is switched off in
# .streamlit/config.toml and the sidebar is left to each page's controls.
from bnviz.dashboard.nav import warm_server  # noqa: E402  (light: imports streamlit only)

warm_server()
current = st.navigation(menu, position="top")
lang.picker()
current.run()
