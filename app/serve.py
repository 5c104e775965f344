"""Start the dashboard as ``make app`` does: ``python -m app.serve [streamlit run options]``.

The same server as ``streamlit run app/main.py`` (same script, same settings from ``streamlit_config.toml``),
plus a head start: before Streamlit itself is imported, a background thread begins to build the
dashboards of the run sets (:func:`core.dashboard.preload`: the data libraries, the test data and the
default Forecasts view, whose forecasts and narrative ``make app`` has put in the disk cache with
``s2kd data prepare --warm-dashboard``, so no model and no torch is needed for it), and draws that view's
figures once so that Plotly's code is loaded too; torch and the model code are imported last, once the app
has been idle a few seconds.  A page opened while the server starts waits only for what is left of its own
run set; one opened later finds it done.  ``S2KD_PRELOAD=0`` turns the head start off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "app" / "main.py"
PRELOAD_ENV = "S2KD_PRELOAD"


def warm_figures(dash) -> None:
    """Build (and drop) the default Forecasts figures of ``dash``: imports and warms Plotly's validators."""
    from app import figures

    view = dash.warm_default_view()  # memoised: the preload computed it just before
    for panels, diverging in ((view.panels, False), (view.differences, True)):
        if panels:
            figures.field_panels(panels, view.x, view.y, outlines=view.outlines, units=view.units, geo=view.geo,
                                 diverging=diverging).to_dict()


def _log(message: str) -> None:
    print(f"s2kd {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if os.environ.get(PRELOAD_ENV, "1") != "0":
        from core import dashboard

        dashboard.preload(on_ready=warm_figures, log=_log)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(MAIN), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
