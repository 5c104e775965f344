"""WindowDataset: valid starts on regular and gappy time axes, stride/step, normalisation, lazy arrays."""

import numpy as np
import pytest
import torch
import xarray as xr

from core.data.normalize import Normalizer
from core.data.windows import WindowDataset, format_cadence, parse_cadence
from core.errors import DataError

T0 = np.datetime64("2020-01-01T00:00", "ns")
HOUR = np.timedelta64(1, "h")


def make_fields(hours, n_chan=2, ny=3, nx=4, grid="latlon", cadence="PT1H", coords=None):
    """Canonical fields whose value encodes (time row, channel): 100·row + channel + 0.01·pixel."""
    hours = np.asarray(hours, dtype=float)
    times = T0 + (hours * 3600).astype("timedelta64[s]").astype("timedelta64[ns]")
    n = len(hours)
    pix = np.arange(ny * nx, dtype=np.float32).reshape(ny, nx) * 0.01
    data = (100 * np.arange(n, dtype=np.float32)[:, None, None, None]
            + np.arange(n_chan, dtype=np.float32)[None, :, None, None] + pix[None, None])
    ydim, xdim = ("lat", "lon") if grid == "latlon" else ("y", "x")
    chans = [f"c{i}" for i in range(n_chan)]
    da = xr.DataArray(
        data.astype(np.float32), dims=("time", "channel", ydim, xdim), name="fields",
        coords={"time": times, "channel": chans, "units": ("channel", ["K"] * n_chan),
                ydim: np.arange(ny, dtype=float), xdim: np.arange(nx, dtype=float)},
        attrs={"source": "test", "grid": grid, "root": "/nowhere"},
    )
    if cadence is not None:
        da.attrs["cadence"] = cadence
    for name, values in (coords or {}).items():
        da = da.assign_coords({name: ("time", np.asarray(values))})
    return da


def rows_of(ds, i):
    """Time rows of window i, read back from the encoded values of x and y (channel 0, pixel 0)."""
    item = ds[i]
    return (np.rint(item["x"][:, 0, 0, 0].numpy() / 100).astype(int).tolist(),
            np.rint(item["y"][:, 0, 0, 0].numpy() / 100).astype(int).tolist())


def test_regular_axis_all_starts():
    ds = WindowDataset(make_fields(range(10)), t_in=2, t_out=3)
    assert len(ds) == 6  # 10 − 5 + 1
    assert ds.starts.tolist() == [0, 1, 2, 3, 4, 5]
    item = ds[0]
    assert item["x"].shape == (2, 2, 3, 4) and item["y"].shape == (3, 2, 3, 4)
    assert item["x"].dtype == torch.float32 and item["y"].dtype == torch.float32
    assert item["index"] == 0 and item["t0"] == "2020-01-01T02:00:00"
    assert rows_of(ds, 0) == ([0, 1], [2, 3, 4])
    assert rows_of(ds, 5) == ([5, 6], [7, 8, 9])
    # channel and pixel layout preserved: value = 100·row + channel + 0.01·pixel
    np.testing.assert_allclose(ds[1]["y"][0, 1].numpy(), 300 + 1 + 0.01 * np.arange(12).reshape(3, 4),
                               rtol=0, atol=1e-4)
    tin, tout = ds.window_times(-1)
    assert tin.tolist() == (T0 + np.array([5, 6]) * HOUR).astype("datetime64[ns]").tolist()
    assert tout[-1] == T0 + 9 * HOUR


def test_step_and_stride():
    f = make_fields(range(12))
    ds = WindowDataset(f, t_in=2, t_out=3, step=2)  # span (2+3−1)·2+1 = 9 slots
    assert len(ds) == 4
    assert rows_of(ds, 0) == ([0, 2], [4, 6, 8])
    assert rows_of(ds, 3) == ([3, 5], [7, 9, 11])
    ds = WindowDataset(f, t_in=2, t_out=3, stride=3)  # starts 0,3,6 (span 5, last start 7)
    assert ds.starts.tolist() == [0, 3, 6]
    ds = WindowDataset(f, t_in=1, t_out=1, stride=4, step=3)  # span 4: starts 0,4,8
    assert ds.starts.tolist() == [0, 4, 8]
    assert rows_of(ds, 2) == ([8], [11])


def test_gappy_axis_never_spans_missing_duplicated_or_off_grid_slots():
    # hour 5 missing, hour 8 duplicated, a stray sample at 03:30 off the hourly grid
    hours = [0, 1, 2, 3, 3.5, 4, 6, 7, 8, 8, 9, 10, 11]
    f = make_fields(hours)
    ds = WindowDataset(f, t_in=1, t_out=1)
    starts_h = ((ds.start_times - T0) / HOUR).tolist()
    assert starts_h == [0, 1, 2, 3, 6, 9, 10]
    for i in range(len(ds)):
        tin, tout = ds.window_times(i)
        all_t = np.concatenate([tin, tout])
        assert np.all(np.diff(all_t) == HOUR)
    # rows map to the right samples even with the stray and duplicated rows in the array
    assert rows_of(ds, 4) == ([6], [7])  # 06:00 is row 6, 07:00 row 7
    assert rows_of(ds, 5) == ([10], [11])  # 09:00 is row 10 (after the two 08:00 rows)

    ds = WindowDataset(f, t_in=2, t_out=1)  # span 3
    assert ((ds.start_times - T0) / HOUR).tolist() == [0, 1, 2, 9]
    # stride anchored at the time origin: even hours only, gaps do not shift the phase
    ds = WindowDataset(f, t_in=1, t_out=1, stride=2)
    assert ((ds.start_times - T0) / HOUR).tolist() == [0, 2, 6, 10]
    # with step 2 the skipped slots must exist too (strict rule): 3→5 spans the missing 05:00
    ds = WindowDataset(f, t_in=1, t_out=1, step=2)
    assert ((ds.start_times - T0) / HOUR).tolist() == [0, 1, 2, 9]


def test_unsorted_axis_uses_times_not_rows():
    order = [3, 0, 2, 1, 4]
    f = make_fields(order)
    ds = WindowDataset(f, t_in=2, t_out=1)
    # windows in time order: hours (0,1→2), (1,2→3), (2,3→4); rows of hours 0..4 are 1,3,2,0,4
    assert ((ds.start_times - T0) / HOUR).tolist() == [0, 1, 2]
    assert rows_of(ds, 0) == ([1, 3], [2])


def test_cadence_attribute_and_inference():
    hourly = make_fields(range(6), cadence=None)
    assert WindowDataset(hourly, 1, 1).cadence == np.timedelta64(3600, "s")
    # 30-min cadence declared on hourly data: every other slot is missing, no window fits
    with pytest.raises(DataError, match="no window of 1\\+1 frames"):
        WindowDataset(make_fields(range(6), cadence="PT30M"), 1, 1)
    # a cadence of 2 h on hourly data: the dominant phase keeps even hours
    ds = WindowDataset(make_fields(range(6), cadence="PT2H"), 1, 1)
    assert ((ds.start_times - T0) / HOUR).tolist() == [0, 2]
    with pytest.raises(DataError, match="cadence 'hourly'"):
        WindowDataset(make_fields(range(6), cadence="hourly"), 1, 1)


def test_parse_and_format_cadence():
    assert parse_cadence("PT1H") == np.timedelta64(3600, "s")
    assert parse_cadence("PT30M") == np.timedelta64(1800, "s")
    assert parse_cadence("P1D") == np.timedelta64(86400, "s")
    assert parse_cadence("PT1H30M") == np.timedelta64(5400, "s")
    assert parse_cadence("pt6h") == np.timedelta64(6, "h")
    for bad in ("1H", "P1M", "PT", "P", "PT0S", "P1DT", ""):
        with pytest.raises(DataError):
            parse_cadence(bad)
    for text in ("PT1H", "PT30M", "P1D", "PT1H30M", "P1DT6H", "PT0.5S"):
        assert format_cadence(parse_cadence(text)) == text


def test_normalizer_applied_to_items():
    f = make_fields(range(8))
    norm = Normalizer.fit(f.isel(time=slice(0, 4)))
    ds = WindowDataset(f, 2, 2, normalizer=norm)
    raw = f.values.astype(np.float64)
    expected = (raw[2:4] - norm.mean[None, :, None, None]) / norm.std[None, :, None, None]
    np.testing.assert_allclose(ds[0]["y"].numpy(), expected, rtol=1e-5, atol=1e-5)
    # hand check: channel 0 of the training rows 0..3 has mean 150 + 0.01·mean(pixel) = 150.055
    assert norm.mean[0] == pytest.approx(150 + 0.055, abs=1e-4)
    with pytest.raises(DataError, match="do not match"):
        WindowDataset(f.isel(channel=[1, 0]), 2, 2, normalizer=norm)


def test_lazy_dask_items_equal_loaded_items():
    f = make_fields([0, 1, 2, 3, 5, 6, 7, 8, 9]).chunk({"time": 2})
    eager = WindowDataset(f, 2, 1)
    lazy = WindowDataset(f, 2, 1, load=False)
    assert lazy.loaded is False and len(lazy) == len(eager) == 5  # starts 0,1,5,6,7
    for i in range(len(eager)):
        a, b = eager[i], lazy[i]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"]) and a["t0"] == b["t0"]


def test_window_arrays_are_the_items_without_torch():
    f = make_fields(range(8))
    norm = Normalizer.fit(f.isel(time=slice(0, 4)))
    ds = WindowDataset(f, 2, 3, normalizer=norm)
    for i in range(len(ds)):
        x, y = ds.window_arrays(i)
        assert x.dtype == y.dtype == np.float32 and x.flags.c_contiguous
        np.testing.assert_array_equal(x, ds[i]["x"].numpy())
        np.testing.assert_array_equal(y, ds[i]["y"].numpy())
    x[:] = 0  # a fresh copy: the dataset is unchanged
    assert not np.array_equal(ds.window_arrays(len(ds) - 1)[0], x)
    with pytest.raises(IndexError):
        ds.window_arrays(len(ds))


def test_reading_windows_does_not_import_torch():
    """The dashboard's first page reads windows before torch is imported (a 3 s import on 2 cores)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, xarray as xr\n"
            "from core.data.windows import WindowDataset\n"
            "t = np.datetime64('2020-01-01T00') + np.arange(6) * np.timedelta64(1, 'h')\n"
            "f = xr.DataArray(np.zeros((6, 1, 2, 3), np.float32), dims=('time', 'channel', 'lat', 'lon'),\n"
            "                 coords={'time': t, 'channel': ['z500'], 'lat': [0.0, 1.0], 'lon': [0.0, 1.0, 2.0]})\n"
            "ds = WindowDataset(f, 2, 2)\n"
            "x, y = ds.window_arrays(0)\n"
            "assert x.shape == (2, 1, 2, 3), x.shape\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_city_grid_and_dataloader_collation():
    f = make_fields(range(6), grid="city", cadence="PT30M")
    f = f.assign_coords(time=T0 + np.arange(6) * np.timedelta64(30, "m"))
    ds = WindowDataset(f, 2, 2)
    assert ds.spatial_dims == ("y", "x") and len(ds) == 3
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["x"].shape == (3, 2, 2, 3, 4) and batch["y"].shape == (3, 2, 2, 3, 4)
    assert batch["index"].tolist() == [0, 1, 2]
    assert batch["t0"] == ["2020-01-01T01:00:00", "2020-01-01T01:30:00", "2020-01-01T02:00:00"]


def test_dims_in_other_order_are_transposed():
    f = make_fields(range(5))
    ds = WindowDataset(f.transpose("lat", "time", "lon", "channel"), 1, 1)
    assert rows_of(ds, 3) == ([3], [4])
    assert ds[0]["x"].shape == (1, 2, 3, 4)


def test_context_over_input_and_target():
    holiday = np.array([False] * 4 + [True] * 2)
    temp = np.arange(6, dtype=float) * 1.5
    f = make_fields(range(6), coords={"holiday": holiday, "temperature": temp})
    ds = WindowDataset(f, 2, 2)
    ctx = ds.context(1)  # inputs hours 1,2; targets 3,4
    assert set(ctx) == {"holiday", "temperature"} == set(ds.context_names)
    assert ctx["holiday"]["input"].tolist() == [False, False]
    assert ctx["holiday"]["target"].tolist() == [False, True]
    assert ctx["temperature"]["target"].tolist() == [4.5, 6.0]
    assert WindowDataset(make_fields(range(4)), 1, 1).context(0) == {}


def test_bad_input():
    f = make_fields(range(6))
    for kwargs in ({"t_in": 0, "t_out": 1}, {"t_in": 1, "t_out": 1, "stride": 0},
                   {"t_in": 1, "t_out": 1, "step": -1}, {"t_in": 1.5, "t_out": 1}):
        with pytest.raises(DataError, match="must be an integer"):
            WindowDataset(f, **kwargs)
    with pytest.raises(DataError, match="dims"):
        WindowDataset(f.isel(lat=0), 1, 1)
    with pytest.raises(DataError, match="DataArray"):
        WindowDataset(f.values, 1, 1)
    with pytest.raises(DataError, match="no window of 4\\+3"):
        WindowDataset(f, 4, 3)
    bad = f.copy(data=f.values.copy())
    bad.values[2, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        WindowDataset(bad, 1, 1)
    ds = WindowDataset(f, 1, 1)
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds[-1]["index"] == len(ds) - 1
