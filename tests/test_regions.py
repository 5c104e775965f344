"""Regions: named and custom lat/lon boxes (incl. across the 0°/360° seam), pixel boxes, parsing."""

import numpy as np
import pytest
import xarray as xr

from core.data.regions import NAMED_REGIONS, Region, get_region, list_regions, parse_region, register_region
from core.errors import DataError, UserError

LAT = -87.1875 + 5.625 * np.arange(32)
LON = 5.625 * np.arange(64)


def wb_grid(lon=LON):
    """WeatherBench 5.625° grid; the value at (ilat, ilon) is 1000·ilat + ilon of the 0…360 grid."""
    ilon = np.rint(np.mod(lon, 360) / 5.625).astype(int)
    vals = 1000 * np.arange(32)[:, None] + ilon[None, :]
    data = np.broadcast_to(vals, (2, 1, 32, lon.size)).astype(np.float32)
    return xr.DataArray(data, dims=("time", "channel", "lat", "lon"),
                        coords={"time": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
                                "channel": ["t2m"], "lat": LAT, "lon": lon}, attrs={"grid": "latlon"})


def city_grid(n=8):
    data = np.arange(n * n, dtype=np.float32).reshape(1, 1, n, n)
    return xr.DataArray(data, dims=("time", "channel", "y", "x"),
                        coords={"time": np.array(["2020-01-01"], dtype="datetime64[ns]"), "channel": ["inflow"]},
                        attrs={"grid": "city"})


def test_north_atlantic_across_the_seam():
    da = wb_grid()
    na = get_region("North Atlantic")
    assert na.crosses_seam and (na.lon_min, na.lon_max) == (280, 20)
    sub = na.select(da)
    # lon 280…20 eastward: 281.25 (index 50) … 354.375 (63), then 0 … 16.875 (indices 0…3)
    expected_lon = list(range(50, 64)) + [0, 1, 2, 3]
    assert sub.lon.values.tolist() == [5.625 * k for k in expected_lon]
    # lat 20…70: 25.3125 (index 20) … 64.6875 (index 27)
    assert sub.lat.values.tolist() == LAT[20:28].tolist()
    np.testing.assert_array_equal(sub.values[0, 0], 1000 * np.arange(20, 28)[:, None] + np.array(expected_lon))
    assert sub.attrs["region"] == "North Atlantic" and sub.attrs["grid"] == "latlon"
    m = na.mask(da)
    assert m.dims == ("lat", "lon") and m.dtype == bool and int(m.sum()) == 8 * 18
    assert m.values[20:28][:, expected_lon].all()
    assert not m.values[19].any() and not m.values[:, 4:50].any()


def test_same_box_on_a_minus180_to_180_grid():
    lon = np.concatenate([LON[32:] - 360, LON[:32]])  # −180 … 174.375
    sub = get_region("North Atlantic").select(wb_grid(lon))
    assert sub.lon.values.tolist() == [5.625 * k - 360 for k in range(50, 64)] + [0, 5.625, 11.25, 16.875]
    np.testing.assert_array_equal(sub.values[0, 0, 0], 20000 + np.array(list(range(50, 64)) + [0, 1, 2, 3]))


def test_europe_negative_west_bound_and_east_asia():
    da = wb_grid()
    eu = get_region("europe").select(da)
    # −12.5 ≡ 347.5 → 348.75 (62), 354.375 (63); then 0 … 39.375 (7)
    assert eu.values[0, 0, 0].tolist() == [1000 * 22 + k for k in [62, 63, 0, 1, 2, 3, 4, 5, 6, 7]]
    assert eu.lat.values.min() == pytest.approx(36.5625) and eu.lat.values.max() == pytest.approx(70.3125)
    ea = get_region("East Asia").select(da)
    assert not get_region("East Asia").crosses_seam
    assert (ea.lon.values / 5.625).round().astype(int).tolist() == list(range(19, 27))


def test_global_and_bands():
    da = wb_grid()
    assert get_region("Global").select(da).shape == da.shape
    assert int(get_region("Global").mask(da).sum()) == 32 * 64
    tr = get_region("Tropics").select(da)
    assert tr.lat.values.tolist() == LAT[np.abs(LAT) <= 20].tolist() and tr.sizes["lon"] == 64
    assert tr.lat.values.tolist() == LAT[12:20].tolist()
    sh = get_region("Southern Hemisphere extratropics").select(da)
    assert sh.lat.values.max() < -20 and sh.sizes["lat"] == 12
    assert get_region("Arctic").select(da).lat.values.min() > 60
    # Global also means "the whole grid" on a city grid
    city = city_grid()
    assert get_region("Global").select(city).identical(city.assign_attrs(region="Global"))


def test_descending_latitude_grid():
    da = wb_grid().isel(lat=slice(None, None, -1))
    sub = get_region("Tropics").select(da)
    assert sub.lat.values.tolist() == LAT[12:20][::-1].tolist()


def test_pixel_boxes_on_city_grid():
    city = city_grid()
    r = parse_region("px:2,5,3,7")
    assert r.is_pixel and (r.y0, r.y1, r.x0, r.x1) == (2, 5, 3, 7)
    sub = r.select(city)
    assert sub.shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(sub.values[0, 0], np.arange(64).reshape(8, 8)[2:5, 3:7])
    m = r.mask(city)
    assert m.dims == ("y", "x") and int(m.sum()) == 12 and m.values[2:5, 3:7].all()
    with pytest.raises(DataError, match="exceeds the 8×8 grid"):
        parse_region("px:0,9,0,2").select(city)
    with pytest.raises(DataError, match="city grid"):
        get_region("Europe").select(city)


def test_register_district_and_duplicates():
    district = Region("Test CBD", y0=1, y1=3, x0=1, x1=3)
    try:
        register_region(district)
        assert parse_region("test-cbd") is district and parse_region("TEST_CBD") is district
        assert district in list_regions(pixel=True)
        assert district.spec == "Test CBD"
        register_region(district)  # same region again is fine
        with pytest.raises(UserError, match="already registered"):
            register_region(Region("test cbd", y0=0, y1=2, x0=0, x1=2))
        register_region(Region("test cbd", y0=0, y1=2, x0=0, x1=2), replace=True)
        assert parse_region("Test CBD").y0 == 0
    finally:
        NAMED_REGIONS.pop("test cbd", None)
    assert all(not r.is_pixel for r in list_regions())


def test_parse_region_forms_and_spec_roundtrip():
    assert parse_region("North Atlantic") is get_region("north_atlantic")
    box = parse_region(" 30, 60 , 280, 20 ")
    assert (box.lat_min, box.lat_max, box.lon_min, box.lon_max) == (30, 60, 280, 20) and box.crosses_seam
    assert box.spec == "30,60,280,20" and parse_region(box.spec) == box
    assert parse_region("px:0,4,0,4").spec == "px:0,4,0,4"
    assert parse_region("Europe").spec == "Europe"
    assert parse_region("-10.5,10,-30,30e0").lon_min == -30


@pytest.mark.parametrize(
    "text, message",
    [
        ("Atlantis", "unknown region 'Atlantis'"),
        ("100,120,0,10", "latitudes must lie in"),
        ("60,30,0,10", "lat_min 60.0 must be below lat_max 30.0"),
        ("10,20,5,5", "empty box"),
        ("10,20,0,400", "longitudes must lie in"),
        ("10,20,30", "four numbers"),
        ("px:5,2,0,1", "empty pixel box"),
        ("px:1,2,3", "px:y0,y1,x0,x1"),
        ("", "expected a name or a box"),
    ],
)
def test_parse_region_errors(text, message):
    with pytest.raises(UserError, match=message):
        parse_region(text)


def test_box_without_grid_points_and_bad_construction():
    with pytest.raises(DataError, match="contains no grid point"):
        parse_region("0,1,1,2").select(wb_grid())
    with pytest.raises(UserError, match="either"):
        Region("both", 0, 10, 0, 10, y0=0, y1=1, x0=0, x1=1)
    with pytest.raises(UserError, match="all needed"):
        Region("half", lat_min=0, lat_max=10)
    with pytest.raises(DataError, match="no \\(lat, lon\\) or \\(y, x\\)"):
        get_region("Global").select(wb_grid().rename(lat="a"))
