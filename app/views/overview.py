"""Overview: what is loaded (data, models, sizes, where they came from) and the headline scores."""

import pandas as pd
import streamlit as st

from app import figures, state
from core.dashboard import CMD_BENCH, METRIC_LABELS, pretty_units

st.title("s2kd — Semantic–Spectral Knowledge Distillation")
ctx = state.page_or_empty()
if ctx is None:
    st.stop()
dash = ctx.dash
info = dash.overview()

c1, c2, c3, c4 = st.columns(4)
c1.metric("Models", len(dash.model_names))
c2.metric("Test windows", info["test_windows"], help=f"{info['nonstationary_windows']} non-stationary")
c3.metric("Grid", f"{info['grid_shape'][0]}×{info['grid_shape'][1]} {info['grid']}")
c4.metric("Frames in → out", f"{info['t_in']} → {info['t_out']}", help=f"cadence {info['cadence']}")

st.subheader("Data")
splits = info.get("split_dates") or {}
st.markdown(
    f"**{info['dataset']}** — reader `{info['source']}`, folder `{info['root']}`, cadence `{info['cadence']}`; "
    "channels " + ", ".join(f"`{c}` ({pretty_units(u)})" for c, u in zip(info["channels"], info["units"]))
    + ("; splits " + ", ".join(f"{k} {v[0]} … {v[1]}" for k, v in splits.items() if isinstance(v, (list, tuple)))
       if splits else ""))

st.subheader("Models")
st.dataframe(pd.DataFrame(info["models"]).set_index("model"), width="stretch")
if info["problems"]:
    st.warning("Some parts could not be loaded:\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in info["problems"].items()))

st.subheader("Headline scores")
table = dash.headline()
if table is None:
    st.info("No results.json next to these runs, so no headline scores yet. The **Compare** page scores the "
            "models on a sample of test windows; the benchmark scores them on its test windows:")
    st.code(CMD_BENCH, language="bash")
else:
    label = METRIC_LABELS.get(table.metric, table.metric)
    state.plot(figures.lead_curves(table.values, table.leads, ylabel=label, xlabel="lead time (h)",
                                   highlight=[m for m in table.values if m in ("student-s2kd", "teacher-s2")]),
               key="ov_headline")
    st.caption(f"{label} on {table.region}, all test windows — {table.source}.")
