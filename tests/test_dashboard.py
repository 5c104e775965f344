"""The dashboard's library layer (core.dashboard): hand-checkable helpers, run-set discovery, and a
Dashboard over the tiny runs of tests/conftest_app.py (forecasts, regions across the seam, phrase →
tokens with the real MiniLM tokenizer, attention sums, scores from results.json and computed, exports)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from core import dashboard as D
from tests.conftest_app import RESULTS_BASE, tiny_app_env  # noqa: F401  (session fixture)


# ------------------------------------------------------------------------------------------ pure helpers
def test_agreement_of_identical_maps_is_one():
    a = np.arange(20, dtype=float).reshape(4, 5)
    r = D.agreement(a, a.copy())
    assert r["pearson"] == pytest.approx(1.0)
    assert r["iou"] == 1.0
    assert r["cells"] == 20


def test_agreement_hand_values():
    a = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]])  # 10 cells → top 10 % = 1 cell
    r = D.agreement(a, -a)
    assert r["pearson"] == pytest.approx(-1.0)
    assert r["iou"] == 0.0  # top cell of a is 9 (index 9), of -a is 0 (index 0)
    b = a.copy()
    b[0, 0] = 100.0  # b's top cell moves; correlation computed by hand below
    assert D.agreement(a, b)["iou"] == 0.0
    x, y = a.ravel(), b.ravel()
    expected = np.sum((x - x.mean()) * (y - y.mean())) / np.sqrt(np.sum((x - x.mean()) ** 2) * np.sum((y - y.mean()) ** 2))
    assert D.agreement(a, b)["pearson"] == pytest.approx(expected)
    # top 20 %: a → {8, 9}, c → {9, 7}: IoU = 1 / 3
    c = a.copy()
    c[1, 3] = 0.0
    assert D.agreement(a, c, fraction=0.2)["iou"] == pytest.approx(1 / 3)


def test_agreement_constant_map_and_shape_mismatch():
    assert np.isnan(D.agreement(np.ones((3, 3)), np.arange(9.0).reshape(3, 3))["pearson"])
    with pytest.raises(D.DataError):
        D.agreement(np.ones((2, 3)), np.ones((3, 2)))


def test_top_mask_counts_and_ties():
    m = D.top_mask(np.arange(100.0))
    assert m.sum() == 10 and m[90:].all()
    assert D.top_mask(np.zeros(7), 0.1).sum() == 1  # ceil(0.7) = 1, ties broken by position
    assert D.top_mask(np.zeros(7), 0.1)[0]


def test_token_indices_for_span():
    # "[CLS] warm ridge over europe [SEP]" with offsets as a fast tokenizer reports them
    offsets = [(0, 0), (0, 4), (5, 10), (11, 15), (16, 22), (0, 0)]
    assert D.token_indices_for_span(offsets, 5, 15) == [2, 3]
    assert D.token_indices_for_span(offsets, 0, 22) == [1, 2, 3, 4]  # specials never count
    assert D.token_indices_for_span(offsets, 7, 8) == [2]  # inside a word → that word piece
    assert D.token_indices_for_span(offsets, 30, 40) == []


def test_phrase_span_is_case_and_space_tolerant():
    text = "A blocking  High over Scandinavia."
    assert D.phrase_span(text, "blocking high") == (2, 16)  # "blocking  High"
    assert D.phrase_span(text, "nothing like it") is None
    assert D.phrase_span(text, "  ") is None


def test_split_phrases():
    text = "Winter at 18 UTC. A trough over Europe, a ridge over Asia; calm elsewhere."
    assert D.split_phrases(text) == ["Winter at 18 UTC.", "A trough over Europe, a ridge over Asia; calm elsewhere.",
                                     "A trough over Europe", "a ridge over Asia", "calm elsewhere"]


def test_relative_difference_signs():
    vals = {"student-none": [2.0, 4.0], "a": [1.0, 5.0], "b": [None, 0.0]}
    rel = D.relative_difference(vals, "student-none")
    assert rel["a"] == [pytest.approx(-0.5), pytest.approx(0.25)]
    assert rel["student-none"] == [0.0, 0.0]
    assert rel["b"] == [None, pytest.approx(-1.0)]
    higher = D.relative_difference(vals, "student-none", higher_is_better=True)
    assert higher["a"] == [pytest.approx(0.5), pytest.approx(-0.25)]  # still: negative = better
    assert D.relative_difference(vals, "missing") == {}


def test_upsample_block_and_bilinear():
    m = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(D.upsample(m, (4, 6)), np.kron(m, np.ones((2, 3))))
    up = D.upsample(m, (3, 3))
    assert up.shape == (3, 3) and up.min() >= 1.0 and up.max() <= 4.0
    assert up[1, 1] == pytest.approx(2.5)  # the centre is the mean of the four cells


def test_thin_polyline_keeps_ends_and_drops_specks():
    x = np.array([0.0, 0.1, 0.2, 5.0, 10.0, np.nan, 20.0, 20.05, np.nan, 30.0, 31.0])
    y = np.zeros_like(x)
    tx, ty = D.thin_polyline(x, y, 1.0)
    assert tx.dtype == np.float32
    finite = tx[np.isfinite(tx)].tolist()
    assert finite == [0.0, 5.0, 10.0, 30.0, 31.0]  # 20–20.05 is a speck below the step: dropped
    assert np.isnan(tx).sum() == 1


# ------------------------------------------------------------------------------------------ discovery
def _fake_run(path: Path, name: str = "student", root: str = "data/x") -> None:
    path.mkdir(parents=True)
    (path / "model.json").write_text(json.dumps({"model": {"name": name, "config": {}},
                                                 "data": {"grid": "latlon", "kind": "weather", "root": root}}))


def test_find_run_sets_nested_and_results(tmp_path):
    _fake_run(tmp_path / "a" / "set1" / "teacher-s2", "teacher-s2")
    _fake_run(tmp_path / "a" / "set1" / "student-none")
    _fake_run(tmp_path / "a" / "set1" / "student-s2kd")
    _fake_run(tmp_path / "b" / "deep" / "set2" / "student-none")
    (tmp_path / "a" / "results.json").write_text(json.dumps(
        {"datasets": {"other": {"models": {}}, "set1": {"models": {"student-none": {"params": 7}}}}}))
    found = D.find_run_sets([tmp_path / "a", tmp_path / "b"])
    assert [rs.name for rs in found] == ["set1", "set2"]
    s1 = found[0]
    assert s1.models == ["teacher-s2", "student-s2kd", "student-none"]  # display order
    assert s1.results_path == str(tmp_path / "a" / "results.json")
    assert D.results_for(s1)["models"]["student-none"]["params"] == 7
    assert found[1].results_path is None and D.results_for(found[1]) is None
    # a root that is itself a run set is found too; the same folder twice is listed once
    assert len(D.find_run_sets([tmp_path / "a" / "set1", tmp_path / "a"])) == 1
    assert D.find_run_sets([tmp_path / "nothing-here"]) == []


def test_run_roots_env_first(tmp_path, monkeypatch):
    monkeypatch.setenv(D.RUN_ROOTS_ENV, f"{tmp_path / 'x'}{__import__('os').pathsep}{tmp_path / 'y'}")
    roots = D.run_roots()
    assert roots[:2] == [tmp_path / "x", tmp_path / "y"]
    assert D.PROJECT_ROOT / "assets" / "runs" in roots


# ------------------------------------------------------------------------------------------ the Dashboard
@pytest.fixture(scope="module")
def weather(tiny_app_env, tmp_path_factory):  # noqa: F811
    rs = next(r for r in D.find_run_sets([tiny_app_env["runs"]]) if r.name == "weather-tiny")
    return D.Dashboard(rs, cache_dir=tmp_path_factory.mktemp("dash-cache"))


@pytest.fixture(scope="module")
def city(tiny_app_env):  # noqa: F811
    rs = next(r for r in D.find_run_sets([tiny_app_env["runs"]]) if r.name == "taxibj-tiny")
    return D.Dashboard(rs, cache_dir="off")


def test_forecast_all_leads_once_and_lead_slices(weather):
    d = weather
    i = d.init_index(d.init_times()[1])
    b = d.forecast(i)
    assert d.forecast(i) is b  # memoised: a lead change never recomputes
    assert set(b.preds) == {"teacher-s2", "student-s2kd", "student-none", "persistence"}
    c, h, w = len(d.channels), d.ycoord.size, d.xcoord.size
    for p in b.preds.values():
        assert p.shape == (d.t_out, c, h, w) and np.isfinite(p).all()
    g = d.region("Global")
    for lead in (1, 5):
        v = d.field_view(i, lead, "t850", g, ["student-none"])
        ci = d.channels.index("t850")
        got = dict(v.panels)
        np.testing.assert_array_equal(got["student-none"], b.preds["student-none"][lead - 1, ci])
        np.testing.assert_array_equal(got[f"truth {d.lead_label(lead)}"], b.truth[lead - 1, ci])
        np.testing.assert_allclose(dict(v.differences)["student-none − truth"],
                                   b.preds["student-none"][lead - 1, ci] - b.truth[lead - 1, ci])
    # persistence = the last input frame, in physical units (z500 in m² s⁻², thousands)
    np.testing.assert_array_equal(b.preds["persistence"][3], b.x[-1])
    assert 4e4 < float(b.truth[0, d.channels.index("z500")].mean()) < 7e4


def test_climatology_baseline_is_the_training_mean_of_the_month_and_hour(weather):
    d = weather
    i = d.init_index(None)
    clim = d.preds(i, ["climatology"])["climatology"]  # fitted on first request
    train = d.data.splits["train"]
    _, target = d.data.dataset.window_times(i)
    t = np.datetime64(target[2], "h").astype(object)
    sel = (train["time"].dt.month == t.month) & (train["time"].dt.hour == t.hour)
    np.testing.assert_allclose(clim[2], train.isel(time=np.flatnonzero(sel.values)).mean("time").values,
                               rtol=1e-5)
    assert "climatology" in d.forecast(i).preds  # kept with the init time's forecasts


def test_teacher_gets_the_context_narrative(weather):
    d = weather
    i = d.init_index(None)
    nar = d.narrative(i)
    assert nar.provenance.backend == "diagnostic" and nar.provenance.scope == "context"
    rows = dict(D.provenance_rows(nar))
    assert rows["backend"].startswith("diagnostic narrator")
    # the teacher forecast used this narrative: re-run it by hand through the public forecaster API
    import torch

    fc = d.models["teacher-s2"]
    b = d.forecast(i)
    xn = torch.from_numpy(np.ascontiguousarray(fc.normalizer.apply(b.x), dtype=np.float32)[None])
    y = fc.normalizer.invert(fc.predict(xn, nar.text)[0].numpy())
    np.testing.assert_allclose(b.preds["teacher-s2"], y, rtol=1e-5, atol=1e-3)


def test_region_across_the_seam(weather):
    d = weather
    i = d.init_index(None)
    na = d.region("North Atlantic")  # 280° → 20°
    v = d.field_view(i, 2, "z500", na)
    assert np.all(np.diff(v.x) > 0)  # contiguous across 0°/360°
    assert v.x[0] >= 280 and v.x[-1] > 360 and v.x[-1] <= 380
    assert v.y.min() >= 20 and v.y.max() <= 70
    ox = v.outlines[0][np.isfinite(v.outlines[0])]
    assert ox.min() >= 280 - 6.5 and ox.max() <= 380 + 6.5  # coastlines in the same display window
    # the values are the original grid's columns in eastward order
    b = d.forecast(i)
    lon = d.xcoord
    cols = [int(np.flatnonzero(np.isclose(lon, x % 360))[0]) for x in v.x]
    rows = [int(np.flatnonzero(np.isclose(d.ycoord, y))[0]) for y in v.y]
    np.testing.assert_array_equal(dict(v.panels)["student-none"],
                                  b.preds["student-none"][1, 0][np.ix_(rows, cols)])
    custom = d.check_region("20,70,280,20")
    assert d.field_view(i, 2, "z500", custom).panels[0][1].shape == v.panels[0][1].shape
    with pytest.raises(D.UserError):
        d.check_region("px:0,4,0,4")  # a pixel box on a lat-lon grid


def test_phrase_tokens_and_phrase_attention(weather):
    d = weather
    i = d.init_index(None)
    text = d.narrative(i).text
    phrase = d.phrases(i)[2]
    idx = d.phrase_tokens(text, phrase)
    toks, offsets = d.tokens(text)
    assert idx and all(offsets[k][1] > offsets[k][0] for k in idx)
    start, end = D.phrase_span(text, phrase)
    covered = "".join(text[offsets[k][0]:offsets[k][1]] for k in idx).lower()
    assert covered == "".join(text[start:end].split()).lower()  # exactly the phrase's word pieces
    att = d.attention_view(i, "z500", d.region("Global"), phrase=phrase)
    assert att.phrase_tokens == [toks[k] for k in idx]
    per_tok = d.forecast(i).attention_tokens["teacher-s2"]
    expected = D.upsample(per_tok[idx].sum(0), (d.ycoord.size, d.xcoord.size))
    expected = expected / expected.sum()
    np.testing.assert_allclose(att.phrase, expected, rtol=1e-5, atol=1e-8)
    assert att.teacher.sum() == pytest.approx(1.0, rel=1e-4)
    assert set(att.students) == {"student-s2kd", "student-none"}
    for s, a in att.agreement.items():
        assert a == D.agreement(att.teacher, att.students[s])


def test_scores_from_results_json_and_computed(weather):
    d = weather
    g = d.region("Global")
    t = d.scores("rmse", g, "test")
    assert t.source.startswith("results.json")
    for name, base in RESULTS_BASE.items():
        assert t.values[name] == [base + k + 1 for k in range(d.t_out)]
    card = d.scorecard("rmse", g, "test")
    assert card.loc["student-none"].abs().max() == 0.0
    assert card.loc["teacher-s2"].iloc[0] == pytest.approx((901 - 1001) / 1001)
    csv = t.to_csv_bytes().decode()
    assert csv.startswith("# metric=rmse; region=Global") and "1001.0" in csv
    # a region not in results.json → computed here with core.evaluate on the same windows for every model
    eu = d.region("Europe")
    te = d.scores("rmse", eu, "test")
    assert te.source.startswith("computed here")
    assert set(te.values) >= {"teacher-s2", "student-s2kd", "student-none", "persistence"}
    # independent check of persistence's RMSE at lead 1 over the scoring windows, region only
    idx = d._score_windows()
    x, y = d.data.frames(idx)
    m = d.region_mask(eu)
    err = (x[:, -1] - y[:, 0])[..., m]  # (n, C, cells)
    rmse_per_channel = np.sqrt((err ** 2).mean(axis=(0, 2)))
    got = te.values["persistence"][0]
    assert got == pytest.approx(float(rmse_per_channel.mean()), rel=1e-4) or \
        got == pytest.approx(float(np.sqrt((err ** 2).mean())), rel=1e-4)
    cost = d.cost_table()
    assert cost.loc["student-none", "params"] == 10000 and cost.loc["teacher-s2", "latency b1 (ms)"] == 9.0


def test_spectra_and_high_band_ratio(weather):
    d = weather
    i = d.init_index(None)
    sp = d.spectra(i, 3, "z500", d.region("Europe"))
    assert sp["k"].size == d.xcoord.size // 2 + 1  # zonal spectrum of full circles
    assert set(sp["spectra"]) == {"truth", "teacher-s2", "student-s2kd", "student-none", "persistence", "climatology"}
    ratio = d.high_band_ratio(i, "z500", d.region("Global"))
    assert len(ratio["persistence"]) == d.t_out
    # persistence's ratio at lead k: high-band power of the last input frame over the truth's
    from core.metrics import lat_weights
    from core.spectral import high_band_power

    b = d.forecast(i)
    w = lat_weights(d.ycoord)[:, None] * np.ones((1, d.xcoord.size))
    expected = high_band_power(b.x[-1, 0], 0.25, (False, True), w) / high_band_power(b.truth[4, 0], 0.25, (False, True), w)
    assert ratio["persistence"][4] == pytest.approx(float(expected), rel=1e-6)
    bands = d.teacher_bands(i, d.region("Global"))
    assert bands["model"] == "teacher-s2" and bands["low"].shape == (d.ycoord.size, d.xcoord.size)


def test_netcdf_export_round_trip(weather):
    import xarray as xr

    d = weather
    i = d.init_index(None)
    eu = d.region("Europe")
    blob = d.netcdf_bytes(i, eu, ["student-s2kd"])
    ds = xr.open_dataset(io.BytesIO(blob))
    b = d.forecast(i)
    rows, cols = d._region_indices(eu)
    np.testing.assert_allclose(ds["student_s2kd"].values, b.preds["student-s2kd"][..., rows[:, None], cols[None, :]])
    np.testing.assert_allclose(ds["truth"].values, b.truth[..., rows[:, None], cols[None, :]])
    assert list(ds["channel"].values) == d.channels and ds.attrs["region"] == "Europe"
    assert "student_none" not in ds


def test_disk_cache_reopens_without_loading_models(weather, tmp_path):
    first = D.Dashboard(weather.run_set, cache_dir=tmp_path)
    i = first.init_index(None)
    b1 = first.forecast(i)
    again = D.Dashboard(weather.run_set, cache_dir=tmp_path)
    b2 = again.forecast(i)
    assert again._models is None  # served from the disk cache
    for name in b1.preds:
        np.testing.assert_array_equal(b1.preds[name], b2.preds[name])
    assert b2.narrative.text == b1.narrative.text
    np.testing.assert_array_equal(b1.attention_tokens["teacher-s2"], b2.attention_tokens["teacher-s2"])


def test_warm_cache_fills_the_disk_cache(tiny_app_env, tmp_path):  # noqa: F811
    keys = D.warm_cache([tiny_app_env["runs"]], inits=1, cache_dir=tmp_path)
    assert len(keys) == 2
    rs = next(r for r in D.find_run_sets([tiny_app_env["runs"]]) if r.name == "taxibj-tiny")
    d = D.Dashboard(rs, cache_dir=tmp_path)
    d.forecast(d.init_index(None))
    assert d._models is None


def test_a_warm_default_view_needs_no_torch(tiny_app_env, tmp_path):  # noqa: F811
    """After ``make app``'s warm-up, a new server process shows every run set's default Forecasts view (data,
    narrative, forecasts, baselines) without importing torch: its first page does not wait for it."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    assert len(D.warm_cache([tiny_app_env["runs"]], inits=1, cache_dir=cache)) == 2
    code = ("import sys\n"
            "from core import dashboard as D\n"
            f"for rs in D.find_run_sets([{str(tiny_app_env['runs'])!r}]):\n"
            f"    d = D.Dashboard(rs, cache_dir={str(cache)!r})\n"
            "    v = d.warm_default_view()\n"
            "    assert d._models is None and len(v.panels) >= 4, rs.key\n"
            "    assert d.teacher is None or d.narrative(d.init_index(None)).text\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_preload_waits_while_the_app_is_busy_unless_a_page_waits(monkeypatch):
    import time

    monkeypatch.setattr(D, "PRELOAD_YIELD_S", 0.4)
    D.note_activity()
    t0 = time.monotonic()
    D._wait_until_idle()
    assert time.monotonic() - t0 >= 0.35  # idle only 0.4 s after the last script run
    D.note_activity()
    D._PRELOAD_WAITERS[0] += 1  # a page is waiting in take_preloaded: no pause
    try:
        t0 = time.monotonic()
        D._wait_until_idle()
        assert time.monotonic() - t0 < 0.2
    finally:
        D._PRELOAD_WAITERS[0] -= 1


def test_city_grid_districts_and_psd(city):
    d = city
    names = [r.name for r in d.regions()]
    assert names[0] == "Whole city" and "CBD (Guomao)" in names
    i = d.init_index(None)
    cbd = d.region("CBD (Guomao)")
    v = d.field_view(i, 2, "inflow", cbd)
    assert not v.geo and v.panels[0][1].shape == (cbd.y1 - cbd.y0, cbd.x1 - cbd.x0)
    assert v.outlines is not None and np.isfinite(v.outlines[0]).sum() > 4
    sp = d.spectra(i, 2, "outflow", d.region("Whole city"))
    assert sp["k"].size == d.ycoord.size // 2 + 1 and "radial" in sp["xlabel"]
    assert d.check_region("px:0,8,0,8").is_pixel
    with pytest.raises(D.UserError):
        d.check_region("20,70,280,20")
    assert "historical-average" not in d.baselines or d.forecast(i).preds.get("historical-average") is not None


def test_static_map_png_uses_only_shipped_files(weather):
    d = weather
    i = d.init_index(None)
    v = d.field_view(i, 1, "t2m", d.region("Europe"), ["student-none"])
    png = d.static_map_png(v)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    dl = D.cartopy_download_dir()
    assert not dl.exists() or not any(dl.rglob("*.shp"))


def test_missing_data_is_an_empty_state(tiny_app_env, tmp_path):  # noqa: F811
    import shutil

    src = tiny_app_env["weather"] / "student-none"
    dst = tmp_path / "orphans" / "student-none"
    shutil.copytree(src, dst)
    meta = json.loads((dst / "model.json").read_text())
    meta["data"]["root"] = str(tmp_path / "no-such-data")
    (dst / "model.json").write_text(json.dumps(meta))
    rs = D.find_run_sets([tmp_path])[0]
    with pytest.raises(D.DashboardUnavailable) as info:
        D.Dashboard(rs, cache_dir="off")
    assert "missing" in info.value.state.title and "s2kd data synth" in info.value.state.command


def test_pretty_units():
    assert D.pretty_units("m**2 s**-2") == "m² s⁻²"
    assert D.pretty_units("kg kg**-1") == "kg kg⁻¹"
    assert D.pretty_units("trips / 30 min") == "trips / 30 min"


def test_scores_json_files_and_a_saved_baseline_run(tiny_app_env, tmp_path):  # noqa: F811
    import shutil

    from core.baselines import fit_baseline

    src = tiny_app_env["taxibj"]
    dst = tmp_path / "set" / "taxibj-tiny"
    for name in ("teacher-s2", "student-none"):
        shutil.copytree(src / name, dst / name)
    d0 = D.Dashboard(D.find_run_sets([tmp_path])[0], cache_dir="off")
    # a persistence baseline saved as a run of the set is used as such (not as a trained model)
    fit_baseline("persistence", d0.data.splits["train"], d0.data.t_in, d0.data.t_out).save(dst / "persistence")
    for k, name in enumerate(("teacher-s2", "student-none", "persistence")):
        (dst / name / "scores.json").write_text(json.dumps(
            {"region": None, "n_windows": {"test": 5}, "test": {"mse": [10.0 * (k + 1) + j for j in range(4)]}}))
    d = D.Dashboard(D.find_run_sets([tmp_path])[0], cache_dir="off")
    assert d.model_names == ["teacher-s2", "student-none"] and d.baselines["persistence"][0] == "run"
    t = d.scores("mse", d.region("Whole city"), "test")
    assert t.source.startswith("scores.json")
    assert t.values == {"teacher-s2": [10.0, 11.0, 12.0, 13.0], "student-none": [20.0, 21.0, 22.0, 23.0],
                        "persistence": [30.0, 31.0, 32.0, 33.0]}
    assert d.headline().values == t.values
    i = d.init_index(None)
    b = d.forecast(i)
    np.testing.assert_array_equal(b.preds["persistence"][2], b.x[-1])
    # a district is not in the files: computed here
    assert d.scores("mse", d.region("CBD (Guomao)"), "test").source.startswith("computed here")


# ------------------------------------------------------------------------------------------ start-up (make app)
def test_default_view_models_and_lead(weather):
    d = weather
    assert d.default_models() == ["teacher-s2", "student-s2kd", "student-none", "persistence"]
    assert d.default_lead() == min(3, d.t_out)


def _copy_run_set(tiny_app_env, tmp_path, name="weather-tiny"):  # noqa: F811
    import shutil

    dst = tmp_path / "runs" / name
    shutil.copytree(tiny_app_env["runs"] / name, dst)
    return dst


def test_warm_cache_skips_a_warm_run_set_until_its_runs_change(tiny_app_env, tmp_path, monkeypatch):  # noqa: F811
    runs = _copy_run_set(tiny_app_env, tmp_path)
    cache = tmp_path / "cache"
    lines: list[str] = []
    assert D.warm_cache([runs.parent], cache_dir=cache, log=lines.append) == [D._rel(runs)]
    assert "warmed" in lines[-1]

    class Refused(D.Dashboard):
        def __init__(self, *a, **k):
            raise AssertionError("a warm run set was opened")

    with monkeypatch.context() as m:
        m.setattr(D, "Dashboard", Refused)
        assert D.warm_cache([runs.parent], cache_dir=cache, log=lines.append) == [D._rel(runs)]
    assert lines[-1].endswith("already warm")
    # a changed model.json (new weights, other narrator...) is another content key: warmed again
    meta = runs / "student-none" / "model.json"
    meta.write_text(meta.read_text() + "\n")
    D.warm_cache([runs.parent], cache_dir=cache, log=lines.append)
    assert "warmed" in lines[-1]
    D.warm_cache([runs.parent], cache_dir=cache, log=lines.append, force=True)
    assert "warmed" in lines[-1]


def test_data_prepare_warm_dashboard_command(tiny_app_env, tmp_path, monkeypatch, capsys):  # noqa: F811
    from core.cli import main

    monkeypatch.setenv(D.RUN_ROOTS_ENV, str(tiny_app_env["runs"]))
    monkeypatch.setattr(D, "DEFAULT_RUN_ROOTS", ())
    monkeypatch.setenv("S2KD_DASHBOARD_CACHE", str(tmp_path / "cache"))
    assert main(["data", "prepare", "--kinds", "", "--root", str(tmp_path / "data"), "--warm-dashboard"]) == 0
    out = capsys.readouterr().out
    assert "weather-tiny warmed" in out and "taxibj-tiny warmed" in out
    rs = next(r for r in D.find_run_sets() if r.name == "weather-tiny")
    d = D.Dashboard(rs)
    d.forecast(d.init_index(None))
    assert d._models is None  # the app's first view loads no model
    assert main(["data", "prepare", "--kinds", "", "--root", str(tmp_path / "data"), "--warm-dashboard"]) == 0
    assert "weather-tiny already warm" in capsys.readouterr().out
    assert main(["data", "prepare", "--kinds", "", "--warm-dashboard", "--warm-inits", "0"]) == 2


def test_preload_hands_each_dashboard_out_once(tiny_app_env, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(D, "PRELOAD_YIELD_S", 0.0)
    sets = [r for r in D.find_run_sets([tiny_app_env["runs"]])]
    ready: list[str] = []
    thread = D.preload(sets, cache_dir=tmp_path, on_ready=lambda d: ready.append(d.run_set.key))
    assert thread is not None
    weather_rs = next(r for r in sets if r.name == "weather-tiny")
    d = D.take_preloaded(weather_rs)
    assert isinstance(d, D.Dashboard) and d.run_set == weather_rs
    # the default Forecasts view is memoised: the page computes nothing
    assert ("forecast", int(d.init_indices[0])) in d._memo
    assert D.take_preloaded(weather_rs) is None  # handed out once
    thread.join(timeout=300)
    assert sorted(ready) == sorted(r.key for r in sets)
    city_rs = next(r for r in sets if r.name == "taxibj-tiny")
    changed = D.RunSet(**{**city_rs.__dict__, "signature": "other"})
    assert D.take_preloaded(changed) is None  # preloaded for other runs: the app builds it itself
    assert not D._PRELOADS and not D._PRELOAD_QUEUE


def test_preload_reports_a_run_set_that_cannot_be_shown(tiny_app_env, tmp_path):  # noqa: F811
    runs = _copy_run_set(tiny_app_env, tmp_path)
    meta = json.loads((runs / "teacher-s2" / "model.json").read_text())
    for sub in [p for p in runs.iterdir() if p.is_dir()]:  # every run points at a data folder that does not exist
        m = json.loads((sub / "model.json").read_text())
        m["data"]["root"] = str(tmp_path / "missing")
        (sub / "model.json").write_text(json.dumps(m))
    assert meta["data"]["root"] != str(tmp_path / "missing")
    rs = D.find_run_sets([runs.parent])[0]
    D.preload([rs], cache_dir="off").join(timeout=120)
    with pytest.raises(D.DashboardUnavailable):
        D.take_preloaded(rs)


def test_map_contrast_is_the_coefficient_of_variation():
    assert D.map_contrast(np.full((4, 8), 0.25)) == 0.0
    m = np.array([[1.0, 3.0], [1.0, 3.0]])  # mean 2, std 1
    assert D.map_contrast(m) == pytest.approx(0.5)
    assert np.isnan(D.map_contrast(np.zeros((2, 2))))
    assert D.map_contrast(np.array([1.0, np.nan, 3.0])) == pytest.approx(0.5)  # NaN cells ignored
