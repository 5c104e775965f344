"""Compare: metric-vs-lead curves of every model (metric, region, subset), the scorecard against
student-none, and the size/speed table."""

import streamlit as st

from app import figures, state
from core.dashboard import CMD_BENCH, METRIC_LABELS, REFERENCE_MODEL, SUBSET_LABELS

st.title("Compare")
ctx = state.page_or_empty()
if ctx is None:
    st.stop()
dash = ctx.dash

metrics = dash.metrics()
default_metric = "wrmse" if "wrmse" in metrics else metrics[0]
if st.session_state.get(state.CMP_METRIC) not in metrics:
    st.session_state[state.CMP_METRIC] = default_metric
c1, c2 = st.columns(2)
c1.selectbox("Metric", metrics, key=state.CMP_METRIC, format_func=lambda m: METRIC_LABELS.get(m, m))
subsets = list(SUBSET_LABELS)
if st.session_state.get(state.CMP_SUBSET) not in subsets:
    st.session_state[state.CMP_SUBSET] = "test"
c2.radio("Windows", subsets, key=state.CMP_SUBSET, format_func=SUBSET_LABELS.get, horizontal=True)
metric, subset = st.session_state[state.CMP_METRIC], st.session_state[state.CMP_SUBSET]

with st.spinner("Scoring…"):
    table = dash.scores(metric, ctx.region, subset)
label = METRIC_LABELS.get(metric, metric)
if not table.values:
    st.info(f"No {label} scores for {SUBSET_LABELS[subset]} in {ctx.region.name} "
            "(the subset may hold no window). Run the benchmark for full-split scores:")
    st.code(CMD_BENCH, language="bash")
else:
    state.plot(figures.lead_curves(table.values, table.leads, ylabel=label, xlabel="lead time (h)",
                                   highlight=[m for m in table.values if m in ("student-s2kd", "teacher-s2")]),
               key="cmp_curves")
    st.caption(f"{label} · {table.region} · {SUBSET_LABELS[subset]} · {table.source}.")
    st.download_button("CSV of these scores", data=table.to_csv_bytes(),
                       file_name=f"s2kd_{dash.run_set.name}_{metric}_{subset}.csv", mime="text/csv",
                       on_click="ignore")

st.subheader(f"Scorecard: relative difference to {REFERENCE_MODEL}")
card = dash.scorecard(metric, ctx.region, subset) if table.values else None
if card is None:
    st.info(f"The scorecard needs a run named `{REFERENCE_MODEL}` in this run set (the student trained alone):")
    st.code(f"s2kd train --config configs/weather/demo.toml --out runs/weather-demo/{REFERENCE_MODEL} "
            "model.name=student distill.method=none", language="bash")
else:
    st.dataframe(figures.styled_scorecard(card), width="stretch")
    st.caption("Blue: better than student-none, red: worse (signs flipped for metrics where higher is better).")

st.subheader("Size and speed")
cost = dash.cost_table()
if cost.empty:
    st.info("No model to measure.")
else:
    st.dataframe(cost, width="stretch")
    st.caption("Latency comes from the benchmark (s2kd bench); parameters and FLOPs are measured here when "
               "results.json does not give them.")
