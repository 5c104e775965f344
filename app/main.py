"""s2kd dashboard entry point: ``streamlit run app/main.py`` (from the project root).

Navigation with ``st.navigation`` / ``st.Page`` (one file per page under ``app/views``; the folder is not named ``pages``
because Streamlit runs a ``pages/`` folder next to the entry script as a legacy v1 multipage app, and a
deep link such as ``/forecasts`` would then run the page without this file) and the sidebar
shared by every page (``app.state.sidebar``).  The server binds 127.0.0.1 (``streamlit_config.toml``,
linked as ``.streamlit/config.toml``); nothing is fetched from outside it.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the project root
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from app import state  # noqa: E402

# No emoji icons: headless Chromium (and many Linux desktops) has no emoji font and draws them as empty
# boxes, and ":material/" icons would need a font from outside 127.0.0.1.  Plain text labels only.
st.set_page_config(page_title="s2kd dashboard", layout="wide")

_PAGES = _ROOT / "app" / "views"  # not "pages": Streamlit runs app/pages as a legacy v1 multipage folder
PAGES = [
    st.Page(str(_PAGES / "overview.py"), title="Overview", url_path="overview", default=True),
    st.Page(str(_PAGES / "forecasts.py"), title="Forecasts", url_path="forecasts"),
    st.Page(str(_PAGES / "compare.py"), title="Compare", url_path="compare"),
    st.Page(str(_PAGES / "spectra.py"), title="Spectra", url_path="spectra"),
    st.Page(str(_PAGES / "semantics.py"), title="Semantics", url_path="semantics"),
]

page = st.navigation(PAGES)
state.prefetch_chart_code()  # before the sidebar, which may wait for the run set to load
st.sidebar.markdown("### s2kd · Semantic–Spectral KD")
state.sidebar()
page.run()
