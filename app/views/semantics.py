"""Semantics: the narrative with its provenance, the teacher's text-grounded attention (whole narrative
and one phrase), the students' absorbed attention maps, and their agreement."""

import pandas as pd
import streamlit as st

from app import figures, state
from core.dashboard import FLAT_MAP_CV, map_contrast, provenance_rows

st.title("Semantics")
ctx = state.page_or_empty()
if ctx is None:
    st.stop()
dash = ctx.dash

if dash.teacher is None:
    st.info("This run set has no text teacher (teacher-s2), so there is no narrative and no text-grounded "
            "attention. Train one into the run set:")
    st.code("s2kd train --config configs/weather/demo.toml --out runs/weather-demo/teacher-s2 "
            "model.name=teacher-s2 distill.method=none", language="bash")
    st.stop()

narrative = dash.narrative(ctx.index)
c1, c2 = st.columns([3, 2])
with c1:
    st.markdown(f"**Narrative** for the window ending {ctx.init_label}")
    st.info(narrative.text)
with c2:
    st.markdown("**Provenance**")
    st.table(pd.DataFrame(provenance_rows(narrative), columns=["", "value"]).set_index(""))

phrases = ["(none)"] + dash.phrases(ctx.index)
if st.session_state.get(state.SEM_PHRASE) not in phrases:
    st.session_state[state.SEM_PHRASE] = phrases[min(1, len(phrases) - 1)]
p1, p2 = st.columns([3, 2])
p1.selectbox("Phrase", phrases, key=state.SEM_PHRASE, help="A sentence or clause of the narrative.")
p2.text_input("…or type words from the narrative", key=state.SEM_CUSTOM)
phrase = (st.session_state.get(state.SEM_CUSTOM) or "").strip() or st.session_state[state.SEM_PHRASE]
phrase = None if phrase == "(none)" else phrase

att = dash.attention_view(ctx.index, ctx.channel, ctx.region, ctx.lead, phrase)
if att.note:
    st.warning(att.note)
maps = []  # (title, short label for the almost-uniform note, map)
if att.teacher is not None:
    maps.append((f"{dash.teacher}: whole narrative", dash.teacher, att.teacher))
if att.phrase is not None:
    short = att.phrase_text if len(att.phrase_text) <= 40 else att.phrase_text[:38].rstrip(" ,") + "…"
    maps.append((f"{dash.teacher}: “{short}”", f"{dash.teacher} (phrase)", att.phrase))
maps += [(f"{s}: absorbed map", s, m) for s, m in att.students.items()]
cols = st.columns(2)
flat = []
for i, (title, label, m) in enumerate(maps):
    cv = map_contrast(m)
    if cv < FLAT_MAP_CV:
        flat.append(label)
    with cols[i % 2]:
        state.plot(figures.overlay(att.field, m, att.x, att.y, title=f"{title} · variation {100 * cv:.2g} %",
                                   outlines=att.outlines, geo=att.geo),
                   key=f"sem_map_{i}")
if flat:
    st.info(f"Almost uniform (spatial variation below {100 * FLAT_MAP_CV:.0f} %): {', '.join(flat)}. Each map's "
            "colour scale is stretched to its own range, so read the structure of these maps as very weak.")
if att.phrase_tokens:
    st.caption("Phrase tokens (MiniLM word pieces): " + " ".join(f"`{t}`" for t in att.phrase_tokens))
st.caption(f"Maps over the truth of {ctx.channel} at {dash.lead_label(ctx.lead)} (greys); red contour: the top "
           "10 % of each map.")

st.subheader("Agreement with the teacher")
rows = []
for s, a in att.agreement.items():
    rows.append({"student": s, "against": "whole narrative", "Pearson r": a["pearson"], "IoU of top 10 %": a["iou"]})
for s, a in att.phrase_agreement.items():
    rows.append({"student": s, "against": "phrase", "Pearson r": a["pearson"], "IoU of top 10 %": a["iou"]})
if rows:
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
else:
    st.info("No student with an absorbed attention map in this run set.")
