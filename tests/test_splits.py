"""Splits by years, by inclusive date ranges (s2kd_dataset.json) and by last N days."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from core.data.splits import (
    WEATHERBENCH_YEARS,
    read_dataset_manifest,
    split_by_dates,
    split_by_last_days,
    split_by_years,
    split_from_manifest,
)
from core.errors import DataError


def series(start, n, step, holiday=False):
    times = np.datetime64(start, "ns") + np.arange(n) * pd.Timedelta(step).to_timedelta64()
    da = xr.DataArray(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), dims=("time", "channel", "y", "x"),
                      coords={"time": times, "channel": ["v"]}, attrs={"cadence": "PT1H"})
    if holiday:
        da = da.assign_coords(holiday=("time", np.arange(n) % 7 == 0))
    return da


def test_weatherbench_years():
    assert dict(WEATHERBENCH_YEARS) == {"train": (2010, 2015), "val": (2016, 2016), "test": (2017, 2018)}
    da = series("2009-12-31", 365 * 10 + 4, "1D")  # 2009-12-31 … 2019-01-02 daily
    s = split_by_years(da)
    assert list(s) == ["train", "val", "test"]
    # 2010–2015: 6 years incl. leap 2012 = 2191 days; 2016 leap = 366; 2017–2018 = 730
    assert [s[k].sizes["time"] for k in s] == [2191, 366, 730]
    assert str(s["train"].time.values[0])[:10] == "2010-01-01"
    assert str(s["train"].time.values[-1])[:10] == "2015-12-31"
    assert str(s["test"].time.values[-1])[:10] == "2018-12-31"
    s2 = split_by_years(da, {"train": 2012, "test": [2013, 2014]})
    assert s2["train"].sizes["time"] == 366 and s2["test"].sizes["time"] == 730


def test_year_split_errors():
    da = series("2010-01-01", 365 * 7, "1D")  # 2010 … 2016
    with pytest.raises(DataError, match=r"'test' .*2017-01-01.* selects no time step"):
        split_by_years(da)
    with pytest.raises(DataError, match="overlap"):
        split_by_years(da, {"train": (2010, 2013), "val": (2013, 2014)})
    with pytest.raises(DataError, match="after last year"):
        split_by_years(da, {"train": (2013, 2010)})
    with pytest.raises(DataError, match="years must be"):
        split_by_years(da, {"train": "2010"})


def test_date_ranges_are_inclusive_of_the_whole_end_day():
    da = series("2020-01-01T00:00", 24 * 10, "1h", holiday=True)  # Jan 1..10 hourly
    s = split_by_dates(da, {"train": ["2020-01-01", "2020-01-06"], "val": ["2020-01-07", "2020-01-08"],
                            "test": ["2020-01-09", "2020-01-10"]})
    assert [s[k].sizes["time"] for k in ("train", "val", "test")] == [144, 48, 48]
    assert str(s["train"].time.values[-1]) .startswith("2020-01-06T23:00")
    # exogenous time coordinates stay aligned
    np.testing.assert_array_equal(s["val"].holiday.values, np.arange(144, 192) % 7 == 0)
    # a date-time end is inclusive to the instant
    s = split_by_dates(da, {"train": ["2020-01-01", "2020-01-01T05:00"], "test": ["2020-01-02", "2020-01-10"]})
    assert s["train"].sizes["time"] == 6
    # a UTC offset is converted to UTC (the time axis is naive UTC): 05:00+01:00 = 04:00
    s = split_by_dates(da, {"train": ["2020-01-01", "2020-01-01T05:00+01:00"], "test": ["2020-01-02", "2020-01-03"]})
    assert s["train"].sizes["time"] == 5
    with pytest.raises(DataError, match="overlap"):
        split_by_dates(da, {"train": ["2020-01-01", "2020-01-05"], "test": ["2020-01-05", "2020-01-06"]})
    with pytest.raises(DataError, match="not an ISO 8601"):
        split_by_dates(da, {"train": ["2020-13-01", "2020-01-05"]})
    with pytest.raises(DataError, match="'2020' is not an ISO 8601"):
        split_by_dates(da, {"train": ["2020", "2020-01-05"]})
    with pytest.raises(DataError, match="selects no time step"):
        split_by_dates(da, {"train": ["2020-01-01", "2020-01-05"], "test": ["2021-01-01", "2021-02-01"]})


def write_manifest(folder, **over):
    obj = {"kind": "taxibj", "source": "taxibj", "preset": "tiny", "seed": 0, "cadence": "PT30M",
           "t_in": 4, "t_out": 4,
           "splits": {"train": ["2020-01-01", "2020-01-06"], "val": ["2020-01-07", "2020-01-08"],
                      "test": ["2020-01-09", "2020-01-10"]},
           "nonstationary_rule": "…", "generator": {}, "created_with": "s2kd 0.1.0"}
    obj.update(over)
    (folder / "s2kd_dataset.json").write_text(json.dumps(obj))
    return obj


def test_manifest_split(tmp_path):
    obj = write_manifest(tmp_path)
    assert read_dataset_manifest(tmp_path) == obj
    assert read_dataset_manifest(tmp_path / "s2kd_dataset.json") == obj
    da = series("2020-01-01T00:00", 48 * 10, "30min")
    s = split_from_manifest(da, tmp_path)
    assert [s[k].sizes["time"] for k in ("train", "val", "test")] == [288, 96, 96]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"splits": {"train": ["2020-01-01", "2020-01-06"], "test": ["2020-01-07", "2020-01-08"]}},
         r"lacks \['val'\]"),
        ({"splits": {"train": ["2020-01-01", "2020-01-06"], "val": ["2020-01-06", "2020-01-08"],
                     "test": ["2020-01-09", "2020-01-10"]}}, "'train' and 'val' overlap"),
        ({"splits": {"train": ["2020-01-01"], "val": ["2020-01-07", "2020-01-08"],
                     "test": ["2020-01-09", "2020-01-10"]}}, "must be \\[start, end\\]"),
        ({"splits": {"train": ["2020-01-06", "2020-01-01"], "val": ["2020-01-07", "2020-01-08"],
                     "test": ["2020-01-09", "2020-01-10"]}}, "is after end"),
        ({"splits": {"train": ["yesterday", "2020-01-01"], "val": ["2020-01-07", "2020-01-08"],
                     "test": ["2020-01-09", "2020-01-10"]}}, "not an ISO 8601"),
        ({"cadence": "30 minutes"}, "not an ISO 8601 duration"),
        ({"t_in": 0}, "'t_in' must be a positive integer"),
        ({"source": ""}, "'source' must be a non-empty string"),
    ],
)
def test_manifest_errors(tmp_path, override, message):
    write_manifest(tmp_path, **override)
    with pytest.raises(DataError, match=message) as err:
        read_dataset_manifest(tmp_path)
    assert "s2kd_dataset.json" in str(err.value) and "\n" not in str(err.value)


def test_manifest_missing_or_broken(tmp_path):
    with pytest.raises(DataError, match="s2kd_dataset.json not found"):
        read_dataset_manifest(tmp_path)
    (tmp_path / "s2kd_dataset.json").write_text("{")
    with pytest.raises(DataError, match="invalid JSON"):
        read_dataset_manifest(tmp_path)
    (tmp_path / "s2kd_dataset.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must be a JSON object"):
        read_dataset_manifest(tmp_path)
    (tmp_path / "s2kd_dataset.json").write_text('{"kind": "weather"}')
    with pytest.raises(DataError, match=r"missing key\(s\) \['source', 'splits'\]"):
        read_dataset_manifest(tmp_path)


def test_last_days_taxibj():
    # 70 days of half-hour slots from 2015-01-01 00:00; drop a few slots in the test period
    da = series("2015-01-01T00:00", 48 * 70, "30min")
    da = da.isel(time=np.r_[0:48 * 60, 48 * 60 + 5:48 * 70])
    s = split_by_last_days(da)
    assert s["test"].sizes["time"] == 48 * 28 - 5
    assert s["val"].sizes["time"] == 48 * 28
    assert s["train"].sizes["time"] == 48 * 14
    assert str(s["test"].time.values[0]).startswith("2015-02-12T00:00")  # day 43 = 70 − 28 + 1
    assert str(s["val"].time.values[0]).startswith("2015-01-15T00:00")
    s = split_by_last_days(da, test_days=7, val_days=0)
    assert list(s) == ["train", "test"] and s["test"].sizes["time"] == 48 * 7
    assert s["train"].sizes["time"] == da.sizes["time"] - 48 * 7
    with pytest.raises(DataError, match="too short"):
        split_by_last_days(da, test_days=40, val_days=30)
    with pytest.raises(DataError, match="test_days"):
        split_by_last_days(da, test_days=0)
