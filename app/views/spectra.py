"""Spectra: truth vs models at the chosen lead (log-log), high-band power ratio vs lead, and the
teacher's low/high latent bands."""

import streamlit as st

from app import figures, state

st.title("Spectra")
ctx = state.page_or_empty()
if ctx is None:
    st.stop()
dash = ctx.dash

names = dash.all_names
if state.SPEC_MODELS not in st.session_state:
    st.session_state[state.SPEC_MODELS] = names
st.session_state[state.SPEC_MODELS] = [m for m in st.session_state[state.SPEC_MODELS] if m in names]
st.multiselect("Models", names, key=state.SPEC_MODELS)
models = st.session_state[state.SPEC_MODELS]

spec = dash.spectra(ctx.index, ctx.lead, ctx.channel, ctx.region, models)
c1, c2 = st.columns(2)
with c1:
    st.markdown(f"**Spectra at {spec['lead_label']}** ({ctx.channel}, {ctx.region.name})")
    state.plot(figures.spectrum_figure(spec["k"], spec["spectra"], xlabel=spec["xlabel"], ylabel=spec["ylabel"],
                                       cutoff_k=spec["cutoff_k"]), key="spec_spectra")
with c2:
    st.markdown("**High-band power ratio vs lead** (forecast / truth; 1 = as much detail as the truth)")
    ratio = dash.high_band_ratio(ctx.index, ctx.channel, ctx.region, models)
    fig = figures.lead_curves(ratio, dash.lead_hours, ylabel="high-band power ratio", xlabel="lead time (h)")
    fig.add_hline(y=1.0, line=dict(color="#888", dash="dash"))
    state.plot(fig, key="spec_ratio")

st.subheader("Teacher latent bands")
bands = dash.teacher_bands(ctx.index, ctx.region)
if bands is None:
    st.info("This run set has no teacher with a spectral decoupling network. Train one:")
    st.code("s2kd train --config configs/weather/demo.toml --out runs/weather-demo/teacher-s2 "
            "model.name=teacher-s2 distill.method=none", language="bash")
else:
    b1, b2 = st.columns(2)
    with b1:
        state.plot(figures.single_map(bands["low"], bands["x"], bands["y"], title="low band (RMS over latent channels)",
                                      outlines=bands["outlines"], geo=bands["geo"]), key="spec_low")
    with b2:
        state.plot(figures.single_map(bands["high"], bands["x"], bands["y"], title="high band (RMS over latent channels)",
                                      outlines=bands["outlines"], geo=bands["geo"], colorscale="Magma"), key="spec_high")
    share = bands["high_energy"] / max(bands["low_energy"] + bands["high_energy"], 1e-30)
    st.caption(f"{bands['model']}: latent {bands['latent_shape'][0]} channels on a "
               f"{bands['latent_shape'][1]}×{bands['latent_shape'][2]} grid (shown on the field grid); "
               f"high band holds {100 * share:.1f} % of the latent energy.")
