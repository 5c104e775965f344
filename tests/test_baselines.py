"""Persistence, climatology and historical average against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from core.baselines import (BASELINES, Climatology, HistoricalAverage, Persistence, fit_baseline,
                            load_baseline)
from core.errors import DataError, UserError


def fields(times, values, cadence):
    values = np.asarray(values, dtype=np.float32)
    n = len(times)
    data = np.broadcast_to(values[:, None, None, None], (n, 1, 2, 3)).copy()
    return xr.DataArray(data, dims=("time", "channel", "lat", "lon"), name="fields",
                        coords={"time": np.asarray(times, dtype="datetime64[ns]"), "channel": ["t2m"],
                                "lat": [-10.0, 10.0], "lon": [0.0, 120.0, 240.0], "units": ("channel", ["K"])},
                        attrs={"cadence": cadence, "grid": "latlon", "source": "test"})


def test_persistence_repeats_the_last_frame():
    import torch

    p = Persistence(t_in=3, t_out=2, channels=["t2m"])
    x = torch.arange(2 * 3 * 1 * 2 * 2, dtype=torch.float32).reshape(2, 3, 1, 2, 2)
    y = p.predict(x)
    assert y.shape == (2, 2, 1, 2, 2)
    assert torch.equal(y[:, 0], x[:, 2]) and torch.equal(y[:, 1], x[:, 2])
    times = np.datetime64("2020-01-01T00") + np.arange(3).astype("timedelta64[h]")
    out = p.predict(fields(times, [1.0, 2.0, 7.0], "PT1H"))
    assert np.all(out.values == 7.0)
    assert [str(t)[:13] for t in out["time"].values] == ["2020-01-01T03", "2020-01-01T04"]


def test_climatology_is_the_month_hour_mean_with_fallbacks():
    # training: Jan 00 UTC values 1 and 3 (two years), Jan 12 UTC value 10, Feb 00 UTC value 20
    times = ["2015-01-05T00", "2016-01-07T00", "2015-01-05T12", "2015-02-01T00"]
    train = fields(times, [1.0, 3.0, 10.0, 20.0], "PT12H")
    clim = fit_baseline("climatology", train, t_in=1, t_out=1)
    f = clim.forecast_times(np.array(["2017-01-20T00", "2017-01-20T12", "2017-02-03T12", "2017-03-01T00"],
                                     dtype="datetime64[ns]"))
    assert f[:, 0, 0, 0].tolist() == pytest.approx([2.0, 10.0, 20.0, 8.5])  # (month,hour) / month / overall
    window = fields(["2017-01-19T12"], [99.0], "PT12H")
    out = clim.predict(window)
    assert str(out["time"].values[0])[:13] == "2017-01-20" + "T00" and float(out.values.mean()) == 2.0


def test_historical_average_by_weekday_and_slot():
    # 2024-01-01 is a Monday. Monday 08:00 (slot 16 of 30 min): 4 and 6; Tuesday 08:00: 100; Monday 08:30: 1
    times = ["2024-01-01T08:00", "2024-01-08T08:00", "2024-01-02T08:00", "2024-01-01T08:30"]
    train = fields(times, [4.0, 6.0, 100.0, 1.0], "PT30M")
    ha = fit_baseline("historical-average", train, t_in=1, t_out=1, description={"cadence": "PT30M"})
    f = ha.forecast_times(np.array(["2024-01-15T08:00", "2024-01-17T08:00", "2024-01-15T09:00"],
                                   dtype="datetime64[ns]"))
    # Monday slot 16: mean(4, 6) = 5; Wednesday slot 16: slot mean (4+6+100)/3; slot 18 unseen: overall mean
    assert f[:, 0, 0, 0].tolist() == pytest.approx([5.0, 110 / 3, 111 / 4])


@pytest.mark.parametrize("name", ["climatology", "historical-average", "persistence"])
def test_save_and_load_round_trip(tmp_path, name):
    from core.forecaster import load_forecaster

    times = np.datetime64("2024-01-01T00") + np.arange(96).astype("timedelta64[30m]")
    rng = np.random.default_rng(0)
    train = fields(times, rng.normal(size=96), "PT30M")
    model = fit_baseline(name, train, t_in=2, t_out=3, description={"cadence": "PT30M"})
    model.save(tmp_path / "run")
    back = load_forecaster(tmp_path / "run")
    assert back.name == name and back.t_in == 2 and back.t_out == 3
    window = train.isel(time=slice(10, 12))
    np.testing.assert_array_equal(back.predict(window).values, model.predict(window).values)
    with pytest.raises(DataError):
        back.predict(window.assign_coords(channel=["u10"]))
    with pytest.raises(UserError):
        back.predict(window, "a narrative")


def test_fit_uses_only_what_it_is_given_and_rejects_bad_input():
    assert set(BASELINES) == {"persistence", "climatology", "historical-average"}
    times = ["2015-01-05T00", "2015-01-06T00"]
    bad = fields(times, [1.0, np.nan], "P1D")
    with pytest.raises(DataError, match="NaN"):
        Climatology(1, 1, ["t2m"]).fit(bad)
    with pytest.raises(UserError, match="not fitted"):
        HistoricalAverage(1, 1, ["t2m"]).forecast_times(np.array(["2015-01-01"], dtype="datetime64[ns]"))
    with pytest.raises(UserError, match="unknown baseline"):
        fit_baseline("oracle", fields(times, [1.0, 2.0], "P1D"), 1, 1)
    with pytest.raises(DataError):
        load_baseline("/nonexistent/run")
