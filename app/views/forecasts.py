"""Forecasts: input, truth, teacher-s2, the students and a baseline side by side on one colour scale,
difference maps, a lead animation, and exports (PNG map, NetCDF)."""

import streamlit as st

from app import figures, state

st.title("Forecasts")
ctx = state.page_or_empty()
if ctx is None:
    st.stop()
dash = ctx.dash

names = dash.all_names
if state.FC_MODELS not in st.session_state:
    st.session_state[state.FC_MODELS] = dash.default_models()
st.session_state[state.FC_MODELS] = [m for m in st.session_state[state.FC_MODELS] if m in names]
c1, c2 = st.columns([4, 1])
c1.multiselect("Models", names, key=state.FC_MODELS)
c2.toggle("Difference maps", value=True, key=state.FC_DIFF)
models = st.session_state[state.FC_MODELS]

view = dash.field_view(ctx.index, ctx.lead, ctx.channel, ctx.region, models)
st.caption(f"**{ctx.channel}** ({view.units}) · init {view.init_time} · lead {view.lead_label} "
           f"(valid {view.valid_time}) · {view.region}")
state.plot(figures.field_panels(view.panels, view.x, view.y, outlines=view.outlines, units=view.units,
                                geo=view.geo), key="fc_panels")
if st.session_state[state.FC_DIFF] and view.differences:
    st.markdown("**Forecast − truth**")
    state.plot(figures.field_panels(view.differences, view.x, view.y, outlines=view.outlines, units=view.units,
                                    geo=view.geo, diverging=True), key="fc_diff")
errors = dash.forecast(ctx.index).errors
if errors:
    st.warning("\n".join(f"- **{k}**: {v}" for k, v in errors.items()))

if st.toggle("▶ Play: animate truth and models over all leads (in the browser)", key=state.FC_PLAY):
    stacks = dash.lead_stack(ctx.index, ctx.channel, ctx.region, models)
    labels = [dash.lead_label(k) for k in range(1, dash.t_out + 1)]
    state.plot(figures.animated_panels(stacks, view.x, view.y, labels, outlines=view.outlines, units=view.units,
                                       geo=view.geo, start=ctx.lead - 1), key="fc_anim")

st.markdown("**Export**")
e1, e2, e3 = st.columns(3)
stem = f"s2kd_{dash.run_set.name}_{view.init_time.replace(' ', 'T').replace(':', '')}_{ctx.channel}"
e1.download_button("PNG map (static)", data=lambda: dash.static_map_png(view), file_name=f"{stem}_{ctx.lead}.png",
                   mime="image/png", on_click="ignore",
                   help="Cartopy map with the shipped coastlines (weather) or district outlines (city).")
e2.download_button("NetCDF of this forecast", data=lambda: dash.netcdf_bytes(ctx.index, ctx.region, models),
                   file_name=f"{stem}.nc", mime="application/x-netcdf", on_click="ignore",
                   help="Truth and the shown models, all leads and channels, in the region.")
e3.caption("Every chart also has a PNG button in its toolbar (top right).")
