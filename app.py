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

st.set_page_config(page_title="bnviz — BatchNorm, live", page_icon=":material/insights:", layout="wide")

PAGES = {
    "bnviz": [
        # About is the landing page at "/": a default page answers only at "/", and a link
        # to "/lab?…" must open the lab itself (share links carry the page's path).
        st.Page("pages/home.py", title="About bnviz", icon=":material/home:", default=True),
        st.Page("pages/lab.py", title="Live lab", icon=":material/science:", url_path="lab"),
        st.Page("pages/compare.py", title="Compare runs", icon=":material/stacked_line_chart:",
                url_path="compare"),
    ],
    "Questions, answered by experiment": [
        st.Page("pages/batch_size.py", title="Batch size (and batch size 1)",
                icon=":material/filter_1:", url_path="batch-size"),
        st.Page("pages/inside_bn.py", title="Inside a BN layer", icon=":material/layers:",
                url_path="inside"),
        st.Page("pages/fluctuation.py", title="Fluctuating test accuracy",
                icon=":material/ssid_chart:", url_path="fluctuation"),
        st.Page("pages/devices.py", title="BN on several GPUs", icon=":material/memory:",
                url_path="devices"),
        st.Page("pages/bias.py", title="Bias before BN", icon=":material/exposure_zero:",
                url_path="bias"),
        st.Page("pages/learning_rate.py", title="Learning rate", icon=":material/speed:",
                url_path="learning-rate"),
        st.Page("pages/ablation.py", title="Which BN layers matter?",
                icon=":material/grid_view:", url_path="ablation"),
        st.Page("pages/gamma_beta.py", title="gamma and beta", icon=":material/tune:",
                url_path="gamma-beta"),
    ],
}
# The menu sits on top: a `pages/` folder next to the entry point makes Streamlit show its
# legacy file-name menu in the sidebar at times, so the sidebar one is switched off in
# .streamlit/config.toml and the sidebar is left to each page's controls.
from bnviz.dashboard.nav import warm_server  # noqa: E402  (light: imports streamlit only)

warm_server()
st.navigation(PAGES, position="top").run()
