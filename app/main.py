"""s2kd dashboard entry point: ``streamlit run app/main.py``.

The navigation and pages are built in the dashboard issue; this placeholder starts and says what to run.
"""

import streamlit as st

st.set_page_config(page_title="s2kd", layout="wide")
st.title("s2kd — Semantic–Spectral Knowledge Distillation")
st.info("The dashboard pages are not built yet. Prepare data with `s2kd data synth` and train with `s2kd train`.")
