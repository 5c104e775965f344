"""Readers on small files written in each real archive layout (tests/factories.py)."""

from __future__ import annotations

import dask.array as dska
import numpy as np
import pytest

from core.data import SOURCES, get_source, open_source, register_source
from core.data.base import (FieldSource, check_times, duration_seconds, infer_cadence, iso_duration, regular_latlon,
                            validate_fields)
from core.data.inspect import format_summary, summarize
from core.data.taxibj import load_taxibj_npz, parse_slots
from core.data.taxibjplus import load_taxibjplus_npy
from core.errors import DataError
from tests import factories as fx

WB_LAT, WB_LON = regular_latlon(5.625)


def _canonical(da, grid="latlon"):
    validate_fields(da)
    assert da.name == "fields"
    assert da.dtype == np.float32
    assert da["time"].dtype == np.dtype("datetime64[ns]")
    assert da.attrs["grid"] == grid
    assert {"source", "grid", "root", "cadence"} <= set(da.attrs)
    if grid == "latlon":
        assert da.dims == ("time", "channel", "lat", "lon")
    else:
        assert da.dims == ("time", "channel", "y", "x")


# ------------------------------------------------------------------------------------------------ base


def test_registry_names_and_protocol():
    assert list(SOURCES) == ["weatherbench", "wb2", "taxibj", "taxibj-npz", "taxibj+", "netcdf"]
    for name in SOURCES:
        reader = get_source(name)
        assert isinstance(reader, FieldSource) and reader.name == name
    with pytest.raises(ValueError, match="twice"):
        register_source("wb2", "core.data.wb2:WB2Source")
    with pytest.raises(DataError, match="unknown data source"):
        get_source("grib")


def test_random_source_is_a_canonical_test_double():
    from core.data.base import RandomSource

    src = RandomSource()
    assert isinstance(src, FieldSource)
    da = src.open(variables=["t2m"], n_times=30, cadence="P1D", start="2016-12-20", years=[2017])
    _canonical(da)
    assert da.sizes == {"time": 18, "channel": 1, "lat": 32, "lon": 64}
    np.testing.assert_allclose(da.lat.values, WB_LAT)
    city = src.open(grid="city", shape=(4, 5), cadence="PT30M")
    _canonical(city, grid="city")
    assert city.attrs["cadence"] == "PT30M" and city.sizes["y"] == 4


def test_grid_and_duration_helpers():
    assert WB_LAT.size == 32 and WB_LON.size == 64
    assert WB_LAT[0] == -87.1875 and WB_LAT[-1] == 87.1875 and WB_LON[-1] == 354.375
    assert iso_duration(3600) == "PT1H" and iso_duration(1800) == "PT30M"
    assert iso_duration(86400) == "P1D" and iso_duration(90061) == "P1DT1H1M1S"
    for s in (60, 1800, 3600, 21600, 86400, 90061):
        assert duration_seconds(iso_duration(s)) == s
    t = np.array(["2016-01-01T00", "2016-01-01T01", "2016-01-01T02", "2016-01-01T05", "2016-01-01T06"],
                 dtype="datetime64[ns]")
    assert infer_cadence(t) == (3600, 1)
    with pytest.raises(DataError, match="duplicated time 2016-01-01T01:00:00"):
        check_times(t[[0, 1, 1, 2]], "f.nc")
    with pytest.raises(DataError, match="unsorted"):
        check_times(t[[0, 2, 1]], "f.nc")


# ------------------------------------------------------------------------------------------ WeatherBench


def test_weatherbench_single_level_dirs_and_hpa_quirk(tmp_path):
    w = fx.write_weatherbench(tmp_path, years=(2016, 2017), variables=("z500", "t850", "t2m"), n_times_per_year=5)
    assert (tmp_path / "geopotential_500" / "geopotential_500hPa_2016_5.625deg.nc").is_file()
    assert (tmp_path / "2m_temperature" / "2m_temperature_2017_5.625deg.nc").is_file()
    da = open_source("weatherbench", tmp_path, variables=["z500", "t850", "t2m"])
    _canonical(da)
    assert isinstance(da.data, dska.Array)  # lazy until loaded
    assert list(da.channel.values) == ["z500", "t850", "t2m"]
    assert list(da.units.values) == ["m**2 s**-2", "K", "K"]
    np.testing.assert_array_equal(da.time.values, w["times"])
    np.testing.assert_allclose(da.lat.values, WB_LAT)
    np.testing.assert_allclose(da.lon.values, WB_LON)
    loaded = da.load()
    for c in ("z500", "t850", "t2m"):
        np.testing.assert_array_equal(loaded.sel(channel=c).values, w["values"][c])
    assert da.attrs["cadence"] == "PT1H" and da.attrs["source"] == "weatherbench"


def test_weatherbench_years_selection_and_plain_naming(tmp_path):
    w = fx.write_weatherbench(tmp_path, years=(2015, 2016, 2017), variables=("z500", "t2m"), n_times_per_year=3,
                              hpa_suffix=False)
    assert (tmp_path / "geopotential_500" / "geopotential_500_2016_5.625deg.nc").is_file()
    da = open_source("weatherbench", tmp_path, variables="t2m,z500", years=[2017, 2015])
    years = da.time.values.astype("datetime64[Y]").astype(int) + 1970
    assert sorted(set(years)) == [2015, 2017] and da.sizes["time"] == 6
    np.testing.assert_array_equal(da.sel(channel="z500").values, np.concatenate(
        [w["values"]["z500"][:3], w["values"]["z500"][6:]]))
    # the gap between 2015 and 2017 is kept, not closed
    assert summarize(da, stats=False)["n_gaps"] == 1


def test_weatherbench_levels_from_3d_files(tmp_path):
    w = fx.write_weatherbench(tmp_path, years=(2016,), variables=("z", "t"), levels=(250, 500, 850),
                              n_times_per_year=4)
    assert (tmp_path / "geopotential" / "geopotential_2016_5.625deg.nc").is_file()
    da = open_source("weatherbench", tmp_path, variables=["z500", "t850"]).load()
    np.testing.assert_array_equal(da.sel(channel="z500").values, w["values"]["z500"])
    np.testing.assert_array_equal(da.sel(channel="t850").values, w["values"]["t850"])
    every = open_source("weatherbench", tmp_path, variables=["z"])
    assert list(every.channel.values) == ["z250", "z500", "z850"]
    with pytest.raises(DataError, match="level 700 not found"):
        open_source("weatherbench", tmp_path, variables=["z700"])


def test_weatherbench_prefers_single_level_dir_and_discovers_all(tmp_path):
    fx.write_weatherbench(tmp_path, years=(2016,), variables=("z500", "t2m", "u10", "z"), levels=(500, 850),
                          n_times_per_year=2)
    da = open_source("weatherbench", tmp_path)
    assert list(da.channel.values) == ["z500", "z850", "t2m", "u10"]
    # z500 must come from geopotential_500/, which holds different values than geopotential/
    w2 = fx.write_weatherbench(tmp_path / "only3d", years=(2016,), variables=("z",), levels=(500,),
                               n_times_per_year=2, seed=5)
    assert not np.array_equal(da.sel(channel="z500").values,
                              open_source("weatherbench", tmp_path / "only3d", variables=["z500"]).values)
    np.testing.assert_array_equal(open_source("weatherbench", tmp_path / "only3d").values[:, 0],
                                  w2["values"]["z500"])


def test_weatherbench_descending_lat_is_flipped(tmp_path):
    w = fx.write_weatherbench(tmp_path, years=(2016,), variables=("t2m",), n_times_per_year=2, lat_descending=True)
    da = open_source("weatherbench", tmp_path, variables=["t2m"])
    assert (np.diff(da.lat.values) > 0).all()
    np.testing.assert_array_equal(da.values[:, 0], w["values"]["t2m"])
    # north pole row really is the northern one: the factory's field is ~cos(lat), symmetric, so check noise
    assert not np.array_equal(da.values[:, 0, 0], da.values[:, 0, -1])


def test_weatherbench_time_chunks(tmp_path):
    fx.write_weatherbench(tmp_path, years=(2016, 2017), variables=("t2m",), n_times_per_year=6)
    da = open_source("weatherbench", tmp_path, time_chunk=4)
    assert da.data.chunks[0] == (4, 2, 4, 2)
    assert float(da.isel(time=slice(3, 9)).mean()) == pytest.approx(float(da.load().isel(time=slice(3, 9)).mean()))


# ------------------------------------------------------------------------------------------------ WB2


def test_wb2_long_names_levels_and_values(tmp_path):
    store = tmp_path / "era5_64x32.zarr"
    w = fx.write_wb2_zarr(store, n_times=6)
    da = open_source("wb2", store, variables=["z500", "t850", "2m_temperature"])
    _canonical(da)
    assert isinstance(da.data, dska.Array)
    assert list(da.channel.values) == ["z500", "t850", "t2m"]
    assert list(da.units.values) == ["m**2 s**-2", "K", "K"]
    assert da.attrs["cadence"] == "PT6H"
    loaded = da.load()
    for c in ("z500", "t850", "t2m"):
        np.testing.assert_array_equal(loaded.sel(channel=c).values, w["values"][c])
    every = open_source("wb2", store)
    assert list(every.channel.values) == ["t2m", "z500", "z850", "t500", "t850"]
    assert list(open_source("wb2", store, variables=["geopotential"]).channel.values) == ["z500", "z850"]


def test_wb2_descending_latitude_region_and_time_subset(tmp_path):
    store = tmp_path / "wb2.zarr"
    w = fx.write_wb2_zarr(store, n_times=8, latitude_ascending=False)
    full = open_source("wb2", store, variables=["t2m"])
    assert (np.diff(full.lat.values) > 0).all()
    np.testing.assert_array_equal(full.values[:, 0], w["values"]["t2m"])
    # a box across the 0°/360° seam: 20°W..30°E, 30..60°N
    sub = open_source("wb2", store, variables=["t2m"], region=(30, 60, -20, 30),
                      time=("2016-01-01T06", "2016-01-02T00"))
    lon = sub.lon.values
    assert lon[0] > 300 and lon[-1] < 40 and set(np.round(lon, 4)) == {
        x for x in np.round(WB_LON, 4) if x >= 340 or x <= 30}
    assert ((sub.lat.values >= 30) & (sub.lat.values <= 60)).all() and sub.sizes["lat"] == 6
    assert sub.sizes["time"] == 4
    ilat = np.flatnonzero((WB_LAT >= 30) & (WB_LAT <= 60))
    ilon = [int(np.argmin(np.abs(WB_LON - x))) for x in lon]
    np.testing.assert_array_equal(sub.values[:, 0], w["values"]["t2m"][1:5][:, ilat][:, :, ilon])
    # a core.data.regions.Region works as well, and the whole globe keeps every point
    from core.data.regions import Region

    same = open_source("wb2", store, variables=["t2m"], region=Region("box", 30, 60, 340, 30),
                       time=("2016-01-01T06", "2016-01-02T00"))
    np.testing.assert_array_equal(same.values, sub.values)
    assert open_source("wb2", store, region=Region("Global", -90, 90, 0, 360)).sizes["lon"] == 64
    assert open_source("wb2", store, region=(-90, 90, -180, 180)).sizes["lon"] == 64
    assert open_source("wb2", store, years=[2016]).sizes["time"] == 8
    with pytest.raises(DataError, match="no times left"):
        open_source("wb2", store, years=[2019])


# ------------------------------------------------------------------------------------------------ TaxiBJ


def test_taxibj_slots_to_times():
    t = parse_slots([b"2013070101", b"2013070102", b"2013070148"])
    assert [str(x)[:16] for x in t] == ["2013-07-01T00:00", "2013-07-01T00:30", "2013-07-01T23:30"]
    with pytest.raises(DataError, match="NN in 01..48"):
        parse_slots([b"2013070149"], "BJ13.h5")


def test_taxibj_h5_gaps_kept_and_context_aligned(tmp_path):
    w = fx.write_taxibj(tmp_path, starts={13: "2013-07-01", 14: "2014-03-01"}, n_days=1,
                        drop=["2013070105", "2013070106", "2014030110"], holidays=["20130701"])
    da = open_source("taxibj", tmp_path)
    _canonical(da, grid="city")
    assert list(da.channel.values) == ["inflow", "outflow"]
    assert list(da.units.values) == ["trips / 30 min"] * 2
    assert da.attrs["cadence"] == "PT30M"
    assert da.sizes["time"] == 96 - 3
    np.testing.assert_array_equal(da.time.values, w["times"])
    # dropped slots are absent, neighbours keep their own timestamps (never shifted)
    times = set(da.time.values.astype("datetime64[m]").astype(str))
    assert "2013-07-01T02:00" not in times and "2013-07-01T02:30" not in times
    assert "2013-07-01T01:30" in times and "2013-07-01T03:00" in times
    loaded = da.load()
    np.testing.assert_array_equal(loaded.values, np.concatenate([w["data"][13], w["data"][14]]))
    t = np.datetime64("2013-07-01T03:00", "ns")
    np.testing.assert_array_equal(loaded.sel(time=t).values, w["data"][13][w["dates"][13].index("2013070107")])
    # exogenous context along time, matched by slot
    assert loaded.sel(time=t)["temperature"].item() == pytest.approx(w["temperature"]["2013070107"])
    assert loaded.sel(time=t)["wind_speed"].item() == pytest.approx(w["wind_speed"]["2013070107"])
    assert loaded.sel(time=t)["weather"].item() == w["weather"]["2013070107"]
    assert da["holiday"].dtype == bool
    assert da["holiday"].values[:46].all() and not da["holiday"].values[46:].any()
    s = summarize(da, stats=False)
    assert s["n_gaps"] == 3  # two dropped runs + the jump between files
    assert s["time_coords"] == ["holiday", "temperature", "weather", "wind_speed"]


def test_taxibj_years_and_variables(tmp_path):
    fx.write_taxibj(tmp_path, starts={15: "2015-12-31", 13: "2013-07-01"}, n_days=2, meteorology=False,
                    holidays=None)
    da = open_source("taxibj", tmp_path, variables=["outflow"], years=[2016])
    assert list(da.channel.values) == ["outflow"]
    assert da.sizes["time"] == 48 and str(da.time.values[0])[:10] == "2016-01-01"
    assert "temperature" not in da.coords and "holiday" not in da.coords
    with pytest.raises(DataError, match="variable 'speed' not found"):
        open_source("taxibj", tmp_path, variables=["speed"])


def test_taxibj_npz_arrays_and_synthetic_time(tmp_path):
    arrays = fx.write_taxibj_npz(tmp_path / "dataset.npz", n_train=3, n_test=2)
    loaded = load_taxibj_npz(tmp_path)
    for k, v in arrays.items():
        assert loaded[k].dtype == np.float32 and loaded[k].shape == v.shape
        np.testing.assert_array_equal(loaded[k], v)
    da = open_source("taxibj-npz", tmp_path)
    _canonical(da, grid="city")
    assert da.sizes["time"] == 5 * 8 and da.attrs["t_in"] == 4 and da.attrs["t_out"] == 4
    assert set(da.attrs["splits"]) == {"train", "test"}
    # test sample 1 = frames X_test[1] then Y_test[1], all with split "test", sample 1
    sel = da.where((da.split == "test") & (da["sample"] == 1), drop=True)
    np.testing.assert_array_equal(sel.values, np.concatenate([arrays["X_test"][1], arrays["Y_test"][1]]))
    assert list(sel.frame.values) == list(range(8))
    # one missing step between samples → each 8-frame window is one sample
    assert summarize(da, stats=False)["n_gaps"] == 4
    assert np.diff(sel.time.values).max() == np.timedelta64(30, "m")
    with pytest.raises(DataError, match="no calendar times"):
        open_source("taxibj-npz", tmp_path, years=[2015])


def test_taxibjplus_npy_and_h5_layouts(tmp_path):
    arrays = fx.write_taxibjplus_npy(tmp_path / "npy", n={"train": 2, "val": 1, "test": 1}, size=128)
    assert load_taxibjplus_npy(tmp_path / "npy")["val_input"].shape == (1, 12, 2, 128, 128)
    da = open_source("taxibj+", tmp_path / "npy")
    _canonical(da, grid="city")
    assert da.sizes == {"time": 4 * 24, "channel": 2, "y": 128, "x": 128}
    assert list(da.attrs["splits"]) == ["train", "val", "test"]
    val = da.where(da.split == "val", drop=True)
    np.testing.assert_array_equal(val.values, np.concatenate([arrays["val_input"][0], arrays["val_output"][0]]))
    w = fx.write_taxibj(tmp_path / "h5", size=128, n_days=1, drop=["2013070110"])
    assert (tmp_path / "h5" / "BJ13_M128x128_T30_InOut.h5").is_file()
    h5 = open_source("taxibj+", tmp_path / "h5")
    assert h5.sizes == {"time": 47, "channel": 2, "y": 128, "x": 128} and h5.attrs["source"] == "taxibj+"
    np.testing.assert_array_equal(h5.values, w["data"][13])
    with pytest.raises(DataError, match="M32x32"):
        open_source("taxibj", tmp_path / "h5")
    # both layouts in one folder (as the simulator writes them): HDF5 by default, npy on request
    fx.write_taxibjplus_npy(tmp_path / "h5", n={"train": 1, "val": 1, "test": 1}, size=128)
    assert open_source("taxibj+", tmp_path / "h5").sizes["time"] == 47
    both = open_source("taxibj+", tmp_path / "h5", layout="npy")
    assert both.sizes["time"] == 72 and both.attrs["synthetic_time"] == 1


# ------------------------------------------------------------------------------------------ generic NetCDF


def test_netcdf_latlon_conventions_and_levels(tmp_path):
    w = fx.write_cf_netcdf(tmp_path / "era.nc", {"ta": "K", "hus": "1"}, levels=[500, 850], lat_descending=True,
                           lon_180=True, names=("latitude", "longitude"))
    da = open_source("netcdf", tmp_path / "era.nc")
    _canonical(da)
    assert list(da.channel.values) == ["ta500", "ta850", "hus500", "hus850"]
    assert list(da.units.values) == ["K", "K", "1", "1"]
    np.testing.assert_allclose(da.lat.values, w["lat"])
    np.testing.assert_allclose(da.lon.values, w["lon"])
    for c in da.channel.values:
        np.testing.assert_array_equal(da.sel(channel=c).values, w["values"][str(c)])
    assert da.attrs["cadence"] == "PT3H"
    one = open_source("netcdf", tmp_path / "era.nc", variables=["hus"], time=("2020-01-01T03", "2020-01-01T09"))
    assert list(one.channel.values) == ["hus500", "hus850"] and one.sizes["time"] == 3


def test_netcdf_city_grid_multifile_glob_and_zarr(tmp_path):
    a = fx.write_cf_netcdf(tmp_path / "d" / "part_b.nc", ["flow"], grid="yx", n_times=4, start="2020-01-02")
    b = fx.write_cf_netcdf(tmp_path / "d" / "part_a.nc", ["flow"], grid="yx", n_times=4, start="2020-01-01")
    da = open_source("netcdf", tmp_path / "d")
    _canonical(da, grid="city")
    assert da.sizes["time"] == 8
    np.testing.assert_array_equal(da.values[:, 0], np.concatenate([b["values"]["flow"], a["values"]["flow"]]))
    assert open_source("netcdf", str(tmp_path / "d" / "part_*.nc"), years=[2020]).sizes["time"] == 8
    import xarray as xr

    with xr.open_dataset(tmp_path / "d" / "part_a.nc") as ds:
        ds.load().to_zarr(tmp_path / "z.zarr", zarr_format=2)
    z = open_source("netcdf", tmp_path / "z.zarr")
    np.testing.assert_array_equal(z.values[:, 0], b["values"]["flow"])


def test_summary_fields(tmp_path):
    w = fx.write_weatherbench(tmp_path, years=(2016,), variables=("t2m",), n_times_per_year=4)
    s = summarize(open_source("weatherbench", tmp_path))
    assert s["variables"] == ["t2m"] and s["units"] == {"t2m": "K"}
    assert s["dims"] == {"time": 4, "channel": 1, "lat": 32, "lon": 64}
    assert (s["time_start"], s["time_end"]) == ("2016-01-01T00:00:00", "2016-01-01T03:00:00")
    assert s["stats"]["t2m"]["min"] == pytest.approx(float(w["values"]["t2m"].min()))
    assert s["stats"]["t2m"]["mean"] == pytest.approx(float(w["values"]["t2m"].astype(np.float64).mean()))
    text = format_summary(s)
    assert "t2m" in text and "PT1H" in text and "32" in text


def test_npz_windows_are_exactly_the_original_samples(tmp_path):
    """The synthetic time axis makes each T_in → T_out window one OpenSTL sample (none spans two)."""
    from core.data.windows import WindowDataset

    arrays = fx.write_taxibj_npz(tmp_path / "dataset.npz", n_train=3, n_test=2)
    ds = WindowDataset(open_source("taxibj-npz", tmp_path).load(), t_in=4, t_out=4)
    assert len(ds) == 5
    order = [("train", i) for i in range(3)] + [("test", i) for i in range(2)]
    for k, (split, i) in enumerate(order):
        item = ds[k]
        np.testing.assert_array_equal(item["x"].numpy(), arrays[f"X_{split}"][i])
        np.testing.assert_array_equal(item["y"].numpy(), arrays[f"Y_{split}"][i])


def test_taxibj_windows_never_span_a_missing_slot(tmp_path):
    from core.data.windows import WindowDataset

    fx.write_taxibj(tmp_path, n_days=1, drop=["2013070110"], meteorology=False, holidays=None)
    ds = WindowDataset(open_source("taxibj", tmp_path).load(), t_in=2, t_out=1)
    # 48 slots, slot 10 missing: runs of 9 and 38 slots give 7 + 36 windows of 3 slots
    assert len(ds) == 7 + 36
    for k in range(len(ds)):
        x_times, y_times = ds.window_times(k)
        span = np.concatenate([np.asarray(x_times), np.asarray(y_times)]).astype("datetime64[m]")
        assert (np.diff(span) == np.timedelta64(30, "m")).all()
