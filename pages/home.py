import streamlit as st

st.title("bnviz — Batch Normalization, live")
st.markdown("""
bnviz trains LeNet on Fashion-MNIST — the model of the BatchNorm chapter of
*Dive into Deep Learning* — while you watch. Every question the chapter leaves open becomes an
experiment you can run, look at and share as a link.

| page | what it answers |
|---|---|
| **Live lab** | Train one model with any BN setup (batch size, which layers, before/after the activation, dropout instead of BN, from-scratch BN, simulated devices) and watch loss, train/test accuracy, test-accuracy fluctuation and the gamma/beta of every layer as it trains. |
| **Compare runs** | Overlay runs from this session, the run library or shared links; repeated seeds as a band; config differences highlighted. |
| **Which BN layers matter?** | d2l's ablation: all four BN layers, none, each one removed, pairs, and dropout in place of the FC-layer BNs — one button, one table. |

Start with the **Live lab**: press a preset (d2l LeNet-BN), then **Train**.
The address bar is always a share link of what you see.
""")

st.page_link("pages/lab.py", label="Open the Live lab", icon=":material/science:")
