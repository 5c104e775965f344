"""Shared dashboard state: session keys (constants), URL query-parameter sync, the cached run-set objects
and the sidebar that every page shares.

Every sidebar choice lives in ``st.session_state`` under a key of :data:`SIDEBAR_KEYS` and is mirrored
in ``st.query_params`` under a short name (``?dataset=…&runs=…&region=…&var=…&init=…&lead=…``), so a
copied URL reopens the same view.  Page-level widgets use keys prefixed with the page name (``fc_``,
``cmp_``, ``spec_``, ``sem_``).

Caching: the list of run sets is cached briefly (``st.cache_data``, ttl 30 s); a run set's
:class:`core.dashboard.Dashboard` (its loaded models and data) is a ``st.cache_resource`` keyed by the
run set's folder and a signature of its ``model.json`` files, so models load once per process; every
derived result is memoised inside the Dashboard under explicit keys.  When the server was started by
``app/serve.py`` (``make app``) the Dashboards are already being built in the background
(:func:`core.dashboard.preload`) and are taken from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from core import dashboard as core_dash

# ---------------------------------------------------------------------------------------------- keys
DATASET = "sb_dataset"
RUNSET = "sb_runset"
REGION = "sb_region"
REGION_CUSTOM = "sb_region_custom"
CHANNEL = "sb_channel"
INIT = "sb_init"
LEAD = "sb_lead"
CONTEXT = "_s2kd_context"
QP_LOADED = "_s2kd_qp_loaded"

#: Forecasts page
FC_MODELS = "fc_models"
FC_DIFF = "fc_show_diff"
FC_PLAY = "fc_play"
#: Compare page
CMP_METRIC = "cmp_metric"
CMP_SUBSET = "cmp_subset"
#: Spectra page
SPEC_MODELS = "spec_models"
#: Semantics page
SEM_PHRASE = "sem_phrase"
SEM_CUSTOM = "sem_custom_phrase"

CUSTOM_REGION = "Custom box…"

#: session key → URL query parameter
SIDEBAR_KEYS = {DATASET: "dataset", RUNSET: "runs", REGION: "region", CHANNEL: "var", INIT: "init", LEAD: "lead"}


# ---------------------------------------------------------------------------------------------- caches
@st.cache_data(ttl=30, show_spinner=False)
def run_sets() -> list[core_dash.RunSet]:
    """All run sets under the run roots (re-scanned every 30 s)."""
    return core_dash.find_run_sets()


@st.cache_resource(max_entries=4, show_spinner="Loading the models and the test data…")
def dashboard(key: str, signature: str) -> Any:
    """The :class:`core.dashboard.Dashboard` of run set ``key`` (or an :class:`EmptyState` explaining why
    it cannot be shown).  ``signature`` changes when a model.json changes, which reloads the models."""
    for rs in run_sets():
        if rs.key == key:
            try:
                pre = core_dash.take_preloaded(rs)  # built in the background by app/serve.py (make app)
                return pre if pre is not None else core_dash.Dashboard(rs)
            except core_dash.DashboardUnavailable as exc:
                return exc.state
    return core_dash.EmptyState("Run set not found", f"no run set {key!r} under the run roots", core_dash.CMD_TRAIN)


# ---------------------------------------------------------------------------------------------- URL
def load_query_params() -> None:
    """On a session's first run, copy the URL's query parameters into the session state."""
    if st.session_state.get(QP_LOADED):
        return
    st.session_state[QP_LOADED] = True
    qp = st.query_params
    for key, name in SIDEBAR_KEYS.items():
        if name in qp and qp[name] != "":
            value: Any = qp[name]
            if key == LEAD:
                try:
                    value = int(value)
                except ValueError:
                    continue
            st.session_state[key] = value


def sync_query_params() -> None:
    """Write the sidebar choices into the URL (only what changed)."""
    qp = st.query_params
    for key, name in SIDEBAR_KEYS.items():
        value = st.session_state.get(key)
        if key == REGION and value == CUSTOM_REGION:
            value = st.session_state.get(REGION_CUSTOM) or None
        if value is None:
            continue
        text = str(value)
        if qp.get(name) != text:
            qp[name] = text


# ---------------------------------------------------------------------------------------------- sidebar
@dataclass
class Context:
    """What a page needs from the sidebar."""

    dash: Any                 # core.dashboard.Dashboard
    region: Any               # core.data.regions.Region
    channel: str
    init_label: str
    index: int                # window index in the test split
    lead: int                 # 1-based


def _choose(key: str, options: list, default: Any = None) -> None:
    """Make ``st.session_state[key]`` one of ``options`` before its widget is drawn."""
    if not options:
        return
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


def empty_state(state: core_dash.EmptyState) -> None:
    """Draw an empty state: what is missing and the command that fixes it."""
    st.info(f"**{state.title}.** {state.message}")
    if state.command:
        st.caption("Run from the project root:")
        st.code(state.command, language="bash")


def sidebar() -> Context | core_dash.EmptyState:
    """Draw the shared sidebar and return the page context (or the empty state to show); the pages read
    it back with :func:`current`."""
    ctx = _sidebar()
    st.session_state[CONTEXT] = ctx
    return ctx


def _sidebar() -> Context | core_dash.EmptyState:
    core_dash.note_activity()  # the background preload (make app) pauses while the user works
    load_query_params()
    sets = run_sets()
    sb = st.sidebar
    if not sets:
        sb.caption("No run sets found.")
        return core_dash.no_runs_state(core_dash.run_roots())
    by_data = core_dash.datasets_of(sets)
    labels = list(by_data)
    # a URL naming only a run set selects its dataset
    wanted = st.session_state.get(RUNSET)
    if st.session_state.get(DATASET) not in labels and wanted:
        for lab, group in by_data.items():
            if any(rs.key == wanted for rs in group):
                st.session_state[DATASET] = lab
    _choose(DATASET, labels)
    sb.selectbox("Dataset", labels, key=DATASET, help="The data the runs were trained on (kind · folder).")
    group = by_data[st.session_state[DATASET]]
    keys = [rs.key for rs in group]
    _choose(RUNSET, keys)
    sb.selectbox("Run set", keys, key=RUNSET, format_func=lambda k: next(rs.label for rs in group if rs.key == k),
                 help="A folder of run directories; each sub-folder is one model.")
    rs = next(r for r in group if r.key == st.session_state[RUNSET])
    dash = dashboard(rs.key, rs.signature)
    if isinstance(dash, core_dash.EmptyState):
        return dash

    # region: named boxes (or districts) + a custom box; the URL may carry a box text
    names = [r.name for r in dash.regions()]
    options = names + [CUSTOM_REGION]
    current = st.session_state.get(REGION)
    if current not in options and current:
        try:  # a box from the URL (or kept from another run set) that fits this grid becomes the custom box
            dash.check_region(str(current))
            st.session_state[REGION_CUSTOM] = str(current)
            st.session_state[REGION] = CUSTOM_REGION
        except core_dash.UserError:
            sb.caption(f"Region “{current}” does not apply to this grid; showing {names[0]}.")
            st.session_state[REGION] = names[0]
    _choose(REGION, options)
    sb.selectbox("Region", options, key=REGION,
                 help="Named boxes (districts on city grids) or a custom box.")
    if st.session_state[REGION] == CUSTOM_REGION:
        hint = "px:y0,y1,x0,x1 (pixels, half-open)" if dash.grid == "city" else "lat0,lat1,lon0,lon1 (degrees; lon0 > lon1 crosses 0°)"
        st.session_state.setdefault(REGION_CUSTOM, "px:0,16,0,16" if dash.grid == "city" else "20,70,280,20")
        sb.text_input("Custom box", key=REGION_CUSTOM, help=hint)
        try:
            region = dash.check_region(st.session_state[REGION_CUSTOM])
        except core_dash.UserError as exc:
            sb.error(str(exc))
            region = dash.regions()[0]
    else:
        region = dash.region(st.session_state[REGION])

    _choose(CHANNEL, dash.channels)
    units = {c: core_dash.pretty_units(u) for c, u in zip(dash.channels, dash.units)}
    sb.selectbox("Variable", dash.channels, key=CHANNEL, format_func=lambda c: f"{c} ({units.get(c, '')})")
    inits = dash.init_times()
    _choose(INIT, inits)
    sb.selectbox("Init time", inits, key=INIT, help="Time of the last input frame (test split).")
    leads = list(range(1, dash.t_out + 1))
    _choose(LEAD, leads, default=dash.default_lead())
    sb.select_slider("Lead time", leads, key=LEAD, format_func=dash.lead_label)
    sync_query_params()
    return Context(dash=dash, region=region, channel=st.session_state[CHANNEL], init_label=st.session_state[INIT],
                   index=dash.init_index(st.session_state[INIT]), lead=int(st.session_state[LEAD]))


def current() -> Context | core_dash.EmptyState:
    """The page context drawn by the sidebar in this run (pages call this first)."""
    ctx = st.session_state.get(CONTEXT)
    if ctx is None:
        return core_dash.no_runs_state(core_dash.run_roots())
    return ctx


def page_or_empty() -> Context | None:
    """The context, or ``None`` after drawing the empty state (pages: ``ctx = page_or_empty(); if ctx is None: st.stop()``)."""
    ctx = current()
    if isinstance(ctx, core_dash.EmptyState):
        empty_state(ctx)
        return None
    return ctx


PREFETCH_KEY = "s2kd_chart_code"
#: ``layout.meta`` of the hidden chart (tests tell it from the page's own charts by it).
PREFETCH_META = "s2kd-prefetch"


def prefetch_chart_code() -> None:
    """Draw a one-point Plotly chart in a hidden container at the top of every run.

    Streamlit's browser side loads Plotly's code (a 4.7 MB script that takes seconds to evaluate on a
    2-core machine) only when the first chart arrives; sent before the sidebar asks for the run set, this
    chart makes the browser load it while the server is still loading the data, instead of after.
    """
    with st.container(key=PREFETCH_KEY):
        st.plotly_chart({"data": [{"type": "scatter", "x": [0], "y": [0], "hoverinfo": "skip"}],
                         "layout": {"height": 10, "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "meta": PREFETCH_META}},
                        key="_chart_code", config={"staticPlot": True, "displayModeBar": False})
    # the container and the layout wrapper around it (which would still take a row gap in the page)
    st.html(f"<style>.st-key-{PREFETCH_KEY}, div:has(> .st-key-{PREFETCH_KEY}) {{display: none}}</style>")


PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2},
                 "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def plot(fig, key: str) -> None:
    """Draw a Plotly figure with the PNG export button of Plotly's own mode bar."""
    st.plotly_chart(fig, key=key, config=PLOTLY_CONFIG, width="stretch")
