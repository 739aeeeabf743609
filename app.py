"""bnviz: learn how Batch Normalization behaves by training small CNNs live.

Run with `streamlit run app.py`. Heavy imports (torch) happen inside the pages, not here.
"""
import streamlit as st

st.set_page_config(page_title="bnviz — BatchNorm, live", page_icon=":material/insights:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="About bnviz", icon=":material/home:", url_path="about"),
    st.Page("pages/lab.py", title="Live lab", icon=":material/science:", url_path="lab", default=True),
    st.Page("pages/compare.py", title="Compare runs", icon=":material/stacked_line_chart:", url_path="compare"),
    st.Page("pages/ablation.py", title="Which BN layers matter?", icon=":material/grid_view:",
            url_path="ablation"),
]
st.navigation(PAGES).run()
