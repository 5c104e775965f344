"""The Streamlit app with streamlit.testing.v1.AppTest: every page renders with the tiny runs of
tests/conftest_app.py; region, lead, model, metric and phrase choices change the Plotly figure JSON;
the URL's query parameters reopen a view; empty states show a message and a command, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app import state
from core import dashboard as D
from tests.conftest_app import tiny_app_env  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
PAGES = ("views/overview.py", "views/forecasts.py", "views/compare.py", "views/spectra.py", "views/semantics.py")


@pytest.fixture()
def app_env(tiny_app_env, tmp_path_factory, monkeypatch):  # noqa: F811
    """Only the tiny runs are visible; one disk cache for the session's app tests."""
    from core import dashboard as D

    monkeypatch.setenv(D.RUN_ROOTS_ENV, str(tiny_app_env["runs"]))
    monkeypatch.setattr(D, "DEFAULT_RUN_ROOTS", ())
    cache = tmp_path_factory.getbasetemp() / "app-dash-cache"
    monkeypatch.setenv("S2KD_DASHBOARD_CACHE", str(cache))
    _clear_run_set_list()
    yield tiny_app_env
    _clear_run_set_list()


def _clear_run_set_list():
    import sys

    sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
    from app import state

    state.run_sets.clear()


def _app(runs: Path | None = None, **params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN, default_timeout=180)
    if runs is not None:
        at.query_params["runs"] = str(runs)
    for k, v in params.items():
        at.query_params[k] = str(v)
    return at


def _figures(at) -> list[dict]:
    """The page's Plotly figures (without the hidden chart that makes the browser load Plotly early)."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [f for f in figs if f["layout"].get("meta") != state.PREFETCH_META]


def _titled(at) -> dict[str, dict]:
    return {f["layout"]["title"]["text"]: f for f in _figures(at)}


def _decode(v) -> np.ndarray:
    """An array from figure JSON (Plotly 6 writes numpy arrays as base64 ``{dtype, bdata, shape}``)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = v.get("shape")
        return arr.reshape([int(k) for k in str(shape).split(",")] if isinstance(shape, str) else shape or -1)
    return np.asarray(v, dtype=float)


def _z(trace) -> np.ndarray:
    """A trace's ``z`` as an array."""
    return _decode(trace["z"])


def _no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def _sidebar(at, label):
    for kind in ("selectbox", "select_slider", "text_input"):
        for w in getattr(at.sidebar, kind):
            if w.label == label:
                return w
    raise AssertionError(f"no sidebar widget {label!r}")


@pytest.mark.parametrize("run_set", ["weather", "taxibj"])
def test_every_page_renders(app_env, run_set):
    at = _app(app_env[run_set])
    at.run()
    _no_exception(at)
    assert _sidebar(at, "Run set").value == str(app_env[run_set])
    for page in PAGES:
        at.switch_page(page)
        at.run()
        _no_exception(at)
        figs = _figures(at)
        if page.endswith("compare.py") or page.endswith("overview.py"):
            assert len(at.dataframe) >= 1  # scorecard / cost table, models table
        if not page.endswith("overview.py") or run_set == "weather":  # weather has results.json headline
            assert figs, f"no figure on {page}"
        for f in figs:
            assert f["data"], f"empty figure on {page}"
            assert not any(t.get("type", "").startswith(("scattergeo", "choropleth")) for t in f["data"])


def _panels(at) -> dict:
    return _figures(at)[0]


def test_forecasts_region_lead_and_models_change_the_figure(app_env):
    at = _app(app_env["weather"], region="Global", lead=3)
    at.switch_page("views/forecasts.py")
    at.run()
    _no_exception(at)
    base = _panels(at)
    titles = [a["text"] for a in base["layout"]["annotations"]]
    assert "truth +18 h" in titles and "teacher-s2" in titles and "persistence" in titles
    heat = [t for t in base["data"] if t["type"] == "heatmap"]
    assert heat[0]["hovertemplate"].startswith("lon")  # hover shows the values
    assert any(t["type"] == "scatter" for t in base["data"])  # coastlines
    lay = base["layout"]  # the panels are tiled on one pair of axes labelled in degrees
    assert not any(k.startswith(("xaxis2", "yaxis2")) for k in lay)
    assert lay["xaxis"]["ticktext"] and all(t.endswith(("E", "W", "°")) for t in lay["xaxis"]["ticktext"])
    assert all(t.endswith(("N", "S", "°")) for t in lay["yaxis"]["ticktext"])
    # the first chart of every run is the hidden one that makes the browser load Plotly's code early
    first = at.get("plotly_chart")[0]
    assert json.loads(first.proto.spec)["layout"]["meta"] == state.PREFETCH_META
    assert any(f".st-key-{state.PREFETCH_KEY}" in h.proto.body and "display: none" in h.proto.body
               for h in at.get("html"))

    _sidebar(at, "Lead time").set_value(5)
    at.run()
    _no_exception(at)
    lead5 = _panels(at)
    assert "truth +30 h" in [a["text"] for a in lead5["layout"]["annotations"]]
    assert lead5["data"] != base["data"]
    assert at.query_params["lead"] == ["5"] or at.query_params["lead"] == "5"

    _sidebar(at, "Region").set_value("North Atlantic")
    at.run()
    _no_exception(at)
    na = _panels(at)
    assert na != lead5
    xr = na["layout"]["xaxis"]["range"]
    assert xr[0] > 270 and xr[1] > 360  # drawn contiguously across the 0°/360° seam

    at.multiselect(key="fc_models").set_value(["student-s2kd"])
    at.run()
    _no_exception(at)
    one = _panels(at)
    titles = [a["text"] for a in one["layout"]["annotations"]]
    assert "student-s2kd" in titles and "teacher-s2" not in titles and "persistence" not in titles

    at.toggle(key="fc_play").set_value(True)
    at.run()
    _no_exception(at)
    anim = [f for f in _figures(at) if f.get("frames")]
    assert anim and len(anim[0]["frames"]) == 12  # one frame per lead, played in the browser
    assert at.download_button  # PNG map + NetCDF exports are offered


def test_custom_box_and_bad_box(app_env):
    at = _app(app_env["weather"], region="20,70,280,20")
    at.switch_page("views/forecasts.py")
    at.run()
    _no_exception(at)
    assert _sidebar(at, "Region").value == "Custom box…"
    assert _sidebar(at, "Custom box").value == "20,70,280,20"
    xr = _panels(at)["layout"]["xaxis"]["range"]
    assert xr[0] > 270 and xr[1] > 360
    _sidebar(at, "Custom box").set_value("10,5,0,20")  # lat0 > lat1: a user mistake
    at.run()
    _no_exception(at)
    assert any("lat_min" in e.value for e in at.sidebar.error)


def test_switching_to_a_city_run_set_resets_a_lat_lon_region(app_env):
    at = _app(app_env["weather"], region="Europe")
    at.switch_page("views/forecasts.py")
    at.run()
    _no_exception(at)
    taxi = next(o for o in _sidebar(at, "Dataset").options if o.startswith("taxibj"))
    _sidebar(at, "Dataset").set_value(taxi)
    at.run()
    _no_exception(at)
    assert _sidebar(at, "Run set").value == str(app_env["taxibj"])
    assert _sidebar(at, "Region").value == "Whole city"
    assert not at.sidebar.error
    assert _panels(at)["layout"]["yaxis"]["range"][0] > _panels(at)["layout"]["yaxis"]["range"][1]  # rows down


def test_url_reopens_the_view(app_env):
    at = _app(app_env["weather"], region="Europe", lead=2, var="t2m")
    at.switch_page("views/forecasts.py")
    at.run()
    _no_exception(at)
    assert _sidebar(at, "Region").value == "Europe"
    assert _sidebar(at, "Lead time").value == 2
    assert _sidebar(at, "Variable").value == "t2m"
    cap = " ".join(c.value for c in at.caption)
    assert "t2m" in cap and "Europe" in cap and "+12 h" in cap
    init = _sidebar(at, "Init time").options[3]
    _sidebar(at, "Init time").set_value(init)
    at.run()
    assert at.query_params["init"] in (init, [init])


def test_compare_metric_subset_and_region(app_env):
    at = _app(app_env["weather"], region="Global")
    at.switch_page("views/compare.py")
    at.run()
    _no_exception(at)
    at.selectbox(key="cmp_metric").set_value("rmse")
    at.run()
    fig = _figures(at)[0]
    ys = {t["name"]: t["y"] for t in fig["data"]}
    assert ys["student-none"][0] == 1001.0 and ys["teacher-s2"][-1] == 912.0  # from results.json
    at.radio(key="cmp_subset").set_value("test_nonstationary")
    at.run()
    _no_exception(at)
    ys2 = {t["name"]: t["y"] for t in _figures(at)[0]["data"]}
    assert ys2["student-none"][0] == 2001.0
    _sidebar(at, "Region").set_value("Europe")
    at.run()
    _no_exception(at)
    ys3 = {t["name"]: t["y"] for t in _figures(at)[0]["data"]}
    assert ys3 != ys2 and set(ys3) >= {"teacher-s2", "student-s2kd", "student-none"}  # computed here
    assert any("computed here" in c.value for c in at.caption)


def test_semantics_phrase_changes_the_map(app_env):
    at = _app(app_env["weather"])
    at.switch_page("views/semantics.py")
    at.run()
    _no_exception(at)
    assert "Diagnostic narrator" in at.info[0].value or "diagnostic" in at.info[0].value.lower()
    assert any("diagnostic narrator" in str(t.value).lower() for t in at.table)
    titled = _titled(at)
    assert all(" · variation " in t and t.endswith(" %") for t in titled)  # each map states its contrast
    figs = {t.split(" · variation ")[0]: f for t, f in titled.items()}
    assert len(figs) == 4  # whole narrative, phrase, two students
    # the tiny teacher's whole-narrative map is almost flat: the page says so rather than let the stretched
    # colour scale suggest structure
    whole_cv = D.map_contrast(_z(figs["teacher-s2: whole narrative"]["data"][1]))
    assert (whole_cv < D.FLAT_MAP_CV) == any("Almost uniform" in i.value and "teacher-s2" in i.value for i in at.info)
    phrase_title = next(t for t in figs if t.startswith("teacher-s2: “"))
    phrases = at.selectbox(key="sem_phrase").options
    at.selectbox(key="sem_phrase").set_value(phrases[-1])
    at.run()
    _no_exception(at)
    figs2 = {t.split(" · variation ")[0]: f for t, f in _titled(at).items()}
    new_title = next(t for t in figs2 if t.startswith("teacher-s2: “"))
    assert new_title != phrase_title
    assert figs2[new_title]["data"][1]["z"] != figs[phrase_title]["data"][1]["z"]  # the phrase map moved
    whole = "teacher-s2: whole narrative"
    assert figs2[whole]["data"][1] == figs[whole]["data"][1]  # the whole-narrative map did not
    at.text_input(key="sem_custom_phrase").set_value("zzz not in the text")
    at.run()
    _no_exception(at)
    assert any("does not occur" in w.value for w in at.warning)
    assert len(_figures(at)) == 3


def test_empty_state_without_runs(tiny_app_env, tmp_path, monkeypatch):  # noqa: F811
    from core import dashboard as D

    monkeypatch.setenv(D.RUN_ROOTS_ENV, str(tmp_path))
    monkeypatch.setattr(D, "DEFAULT_RUN_ROOTS", ())
    _clear_run_set_list()
    try:
        at = _app()
        for page in PAGES:
            at.switch_page(page)
            at.run()
            _no_exception(at)
            assert any("No trained runs found" in i.value for i in at.info)
            assert any("s2kd train" in c.value for c in at.code)
    finally:
        _clear_run_set_list()


def test_empty_state_when_data_is_missing(tiny_app_env, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    from core import dashboard as D

    dst = tmp_path / "orphans" / "student-none"
    shutil.copytree(tiny_app_env["weather"] / "student-none", dst)
    meta = json.loads((dst / "model.json").read_text())
    meta["data"]["root"] = str(tmp_path / "gone")
    (dst / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv(D.RUN_ROOTS_ENV, str(tmp_path))
    monkeypatch.setattr(D, "DEFAULT_RUN_ROOTS", ())
    _clear_run_set_list()
    try:
        at = _app()
        at.switch_page("views/forecasts.py")
        at.run()
        _no_exception(at)
        assert any("test data of this run set is missing" in i.value for i in at.info)
        assert any("s2kd data synth" in c.value for c in at.code)
    finally:
        _clear_run_set_list()


def test_field_panels_tile_the_maps_on_one_pair_of_axes():
    from app import figures

    x = np.arange(0.0, 360.0, 30.0)      # 12 longitudes (display), step 30
    y = np.array([-45.0, 0.0, 45.0])     # 3 latitudes, step 45
    fields = [(f"p{i}", np.full((3, 12), float(i))) for i in range(5)]
    coast = (np.array([10.0, 20.0, np.nan, 100.0]), np.array([0.0, 10.0, np.nan, -20.0]))
    fig = json.loads(figures.field_panels(fields, x, y, outlines=coast, units="K").to_json())
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    lines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert [t["name"] for t in heat] == [f"p{i}" for i in range(5)]
    assert [a["text"] for a in fig["layout"]["annotations"]] == [f"p{i}" for i in range(5)]
    width, height = 360.0, 135.0                       # extent of one panel (cells included)
    gap_x, gap_y = 0.04 * width, 0.12 * width
    # 4 columns, then a second row below (latitude decreases down the page)
    for i, t in enumerate(heat):
        r, c = divmod(i, 4)
        np.testing.assert_allclose(_decode(t["x"]), x + c * (width + gap_x), atol=1e-3)
        np.testing.assert_allclose(_decode(t["y"]), y - r * (height + gap_y), atol=1e-3)
        cells = _decode(t["customdata"])               # the hover shows the true coordinates
        np.testing.assert_allclose(cells[2, 5], [x[5], y[2]])
        assert "customdata[0]" in t["hovertemplate"] and t["coloraxis"] == "coloraxis"
    assert len(lines) == 1 and np.isnan(_decode(lines[0]["x"])).sum() == 5 * 2  # 5 copies
    assert not any(k.startswith(("xaxis2", "yaxis2")) for k in fig["layout"])
    assert fig["layout"]["yaxis"]["scaleanchor"] == "x"
    assert fig["layout"]["coloraxis"]["cmin"] == 0.0 and fig["layout"]["coloraxis"]["cmax"] == 4.0
    # x ticks under the first column, y ticks on both rows
    assert min(fig["layout"]["xaxis"]["tickvals"]) >= -15 and max(fig["layout"]["xaxis"]["tickvals"]) <= 345
    assert fig["layout"]["yaxis"]["ticktext"].count("0°") == 2

    city = json.loads(figures.field_panels(fields[:2], np.arange(8.0), np.arange(6.0), geo=False).to_json())
    yr = city["layout"]["yaxis"]["range"]
    assert yr[0] > yr[1]  # pixel rows go down
    assert "x %{customdata[0]:.0f}" in city["data"][0]["hovertemplate"]
    diff = figures.field_panels([("d", np.array([[-2.0, 1.0], [0.5, 4.0]]))], np.arange(2.0), np.arange(2.0),
                                diverging=True).to_json()
    diff = json.loads(diff)
    assert diff["layout"]["coloraxis"]["cmin"] == -diff["layout"]["coloraxis"]["cmax"]
