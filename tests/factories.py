"""Write small files in each REAL archive layout, for tests (any engineer may reuse them).

Each writer mimics the published archive: file and directory names, variable names, dims order,
coordinate values and dtypes, attrs.  Values are smooth, realistic-magnitude fields plus seeded
noise, so tests can compare what a reader returns against what was written (each writer returns the
values it wrote).  Every file goes through :mod:`core.io` (atomic write).

Writers
-------
* :func:`write_weatherbench` -- WeatherBench v1 ``{root}/{dir}/{dir}[hPa]_{year}_5.625deg.nc``
* :func:`write_wb2_zarr` -- WeatherBench 2 zarr store (``time, level, longitude, latitude``)
* :func:`write_taxibj` -- ``BJ{yy}_M32x32_T30_InOut.h5`` + ``BJ_Meteorology.h5`` + ``BJ_Holiday.txt``
  (``size=128`` gives the TaxiBJ+ HDF5 layout ``*_M128x128_T30_InOut.h5``)
* :func:`write_taxibj_npz` -- OpenSTL ``dataset.npz`` (``X_train, Y_train, X_test, Y_test``)
* :func:`write_taxibjplus_npy` -- TaxiBJ+ ``{train,val,test}_{input,output}_data_reshaped.npy``
* :func:`write_cf_netcdf` -- a generic CF NetCDF file (lat/lon or y/x grid)
* :func:`write_garbage`, :func:`truncate_file` -- broken files for bad-input tests
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from core.io import atomic_path, atomic_write_bytes, atomic_write_text

WB_LEVELS: tuple[int, ...] = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)

#: channel → (directory, variable, units, long_name, base value, amplitude) for WeatherBench files.
_WB_SINGLE = {
    "t2m": ("2m_temperature", "t2m", "K", "2 metre temperature", 278.0, 25.0),
    "u10": ("10m_u_component_of_wind", "u10", "m s**-1", "10 metre U wind component", 0.0, 6.0),
    "v10": ("10m_v_component_of_wind", "v10", "m s**-1", "10 metre V wind component", 0.0, 5.0),
    "tcc": ("total_cloud_cover", "tcc", "(0 - 1)", "Total cloud cover", 0.5, 0.3),
    "tp": ("total_precipitation", "tp", "m", "Total precipitation", 1e-4, 1e-4),
    "tisr": ("toa_incident_solar_radiation", "tisr", "J m**-2", "TOA incident solar radiation", 1.2e6, 1.0e6),
}
#: short name → (3-D directory, variable, units, long_name, base, amplitude) for pressure levels.
_WB_LEVEL = {
    "z": ("geopotential", "z", "m**2 s**-2", "Geopotential", 54000.0, 3000.0),
    "t": ("temperature", "t", "K", "Temperature", 265.0, 20.0),
    "r": ("relative_humidity", "r", "%", "Relative humidity", 60.0, 25.0),
    "q": ("specific_humidity", "q", "kg kg**-1", "Specific humidity", 4e-3, 3e-3),
    "u": ("u_component_of_wind", "u", "m s**-1", "U component of wind", 5.0, 10.0),
    "v": ("v_component_of_wind", "v", "m s**-1", "V component of wind", 0.0, 8.0),
}


def wb_grid(resolution: float = 5.625) -> tuple[np.ndarray, np.ndarray]:
    """WeatherBench cell centres: lat ascending (−87.1875…87.1875 at 5.625°), lon 0…354.375."""
    n_lat, n_lon = int(round(180 / resolution)), int(round(360 / resolution))
    return -90 + resolution / 2 + resolution * np.arange(n_lat), resolution * np.arange(n_lon)


def _smooth_field(rng: np.random.Generator, n_t: int, lat: np.ndarray, lon: np.ndarray, base: float, amp: float,
                  t0: int = 0) -> np.ndarray:
    """(n_t, lat, lon) float32: base + amp·cos(lat)·(travelling wave) + 1 % noise."""
    t = (t0 + np.arange(n_t))[:, None, None]
    la = np.deg2rad(lat)[None, :, None]
    lo = np.deg2rad(lon)[None, None, :]
    wave = np.cos(la) * (0.6 + 0.4 * np.sin(3 * lo - 2 * np.pi * t / 24.0))
    noise = rng.standard_normal((n_t, lat.size, lon.size)) * 0.01
    return (base + amp * (wave + noise)).astype(np.float32)


def _wb_time_encoding() -> dict:
    return {"units": "hours since 1979-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}


def write_weatherbench(root: str | os.PathLike, years: Sequence[int] = (2016,),
                       variables: Sequence[str] = ("z500", "t850", "t2m"), n_times_per_year: int = 24, *,
                       freq_hours: int = 1, resolution: float = 5.625, levels: Sequence[int] = (500, 850),
                       lat_descending: bool = False, seed: int = 0, hpa_suffix: bool = True) -> dict:
    """Write a WeatherBench v1 tree under ``root``.

    ``variables``: single-level channels (``t2m``, ``u10``, ``v10``, ``tcc``, ``tp``, ``tisr``) go to
    ``{dir}/{dir}_{year}_5.625deg.nc`` with dims ``(time, lat, lon)``; ``z500``/``t850``-style names go to
    the single-level directory ``geopotential_500/geopotential_500hPa_{year}_5.625deg.nc`` (the real
    quirk; ``hpa_suffix=False`` gives ``geopotential_500_{year}_...``) with a scalar ``level`` coord;
    bare ``z``/``t``/``r``/``q``/``u``/``v`` go to the 3-D directory ``geopotential/geopotential_{year}_...``
    with dims ``(time, level, lat, lon)`` and ``levels``.
    Each year has ``n_times_per_year`` steps of ``freq_hours`` from ``{year}-01-01T00``.

    Returns ``{"times": datetime64[ns] (T,), "values": {channel: float32 (T, lat, lon)}, "files":
    {channel: [Path, ...]}, "lat": ascending lat, "lon": lon}`` where 3-D variables give one channel per
    level (``z500``...) and values are on the ascending-lat grid whatever ``lat_descending`` is.
    """
    import pandas as pd
    import xarray as xr

    root = Path(root)
    rng = np.random.default_rng(seed)
    lat, lon = wb_grid(resolution)
    res_tag = f"{resolution:g}deg"
    out_values: dict[str, list[np.ndarray]] = {}
    out_files: dict[str, list[Path]] = {}
    all_times = []
    for year in years:
        times = pd.date_range(f"{year}-01-01", periods=n_times_per_year, freq=f"{freq_hours}h").to_numpy()
        all_times.append(times.astype("datetime64[ns]"))
        t0 = (year - 1979) * 8760
        for name in variables:
            if name in _WB_SINGLE:
                directory, var, units, long_name, base, amp = _WB_SINGLE[name]
                vals = {name: _smooth_field(rng, times.size, lat, lon, base, amp, t0)}
                data = vals[name]
                dims, coords = ("time", "lat", "lon"), {}
                fname = f"{directory}_{year}_{res_tag}.nc"
            elif name in _WB_LEVEL:
                directory, var, units, long_name, base, amp = _WB_LEVEL[name]
                data = np.stack([_smooth_field(rng, times.size, lat, lon, base - 0.01 * base * i, amp, t0)
                                 for i, _ in enumerate(levels)], axis=1)
                vals = {f"{name}{lv}": data[:, i] for i, lv in enumerate(levels)}
                dims, coords = ("time", "level", "lat", "lon"), {"level": ("level", np.asarray(levels, np.int32))}
                fname = f"{directory}_{year}_{res_tag}.nc"
            else:
                short = name.rstrip("0123456789")
                level = int(name[len(short):])
                directory0, var, units, long_name, base, amp = _WB_LEVEL[short]
                directory = f"{directory0}_{level}"
                data = _smooth_field(rng, times.size, lat, lon, base, amp, t0)
                vals = {name: data}
                dims, coords = ("time", "lat", "lon"), {"level": np.int32(level)}
                fname = f"{directory}{'hPa' if hpa_suffix else ''}_{year}_{res_tag}.nc"
            lat_w = lat[::-1] if lat_descending else lat
            data_w = data[..., ::-1, :] if lat_descending else data
            ds = xr.Dataset(
                {var: (dims, data_w, {"units": units, "long_name": long_name})},
                coords={"time": ("time", times), "lat": ("lat", lat_w, {"units": "degrees_north"}),
                        "lon": ("lon", lon, {"units": "degrees_east"}), **coords},
                attrs={"Conventions": "CF-1.6", "history": "regridded to 5.625deg (WeatherBench v1 layout)"},
            )
            path = root / directory / fname
            with atomic_path(path) as tmp:
                ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding={"time": _wb_time_encoding()})
            for ch, v in vals.items():
                out_values.setdefault(ch, []).append(np.asarray(v, np.float32))
                out_files.setdefault(ch, []).append(path)
    return {"times": np.concatenate(all_times), "values": {k: np.concatenate(v) for k, v in out_values.items()},
            "files": out_files, "lat": lat, "lon": lon}


#: WB2 long name → (units, base, amplitude, has_level, short_name attr)
_WB2_VARS = {
    "2m_temperature": ("K", 278.0, 25.0, False, "t2m"),
    "10m_u_component_of_wind": ("m s**-1", 0.0, 6.0, False, "u10"),
    "10m_v_component_of_wind": ("m s**-1", 0.0, 5.0, False, "v10"),
    "mean_sea_level_pressure": ("Pa", 101325.0, 1500.0, False, "msl"),
    "geopotential": ("m**2 s**-2", 54000.0, 3000.0, True, "z"),
    "temperature": ("K", 265.0, 20.0, True, "t"),
    "specific_humidity": ("kg kg**-1", 4e-3, 3e-3, True, "q"),
    "u_component_of_wind": ("m s**-1", 5.0, 10.0, True, "u"),
}


def write_wb2_zarr(path: str | os.PathLike, n_times: int = 8, *, start: str = "2016-01-01", freq_hours: int = 6,
                   variables: Sequence[str] = ("2m_temperature", "geopotential", "temperature"),
                   levels: Sequence[int] = (500, 850), resolution: float = 5.625, latitude_ascending: bool = True,
                   seed: int = 0) -> dict:
    """Write a WeatherBench 2 style zarr store (zarr format 2, consolidated) at ``path``.

    Like ``1959-2023_01_10-6h-64x32_equiangular_conservative.zarr``: dims ``time``, ``level`` (int64
    hPa), ``longitude`` (0…354.375), ``latitude`` (ascending −87.1875…87.1875 unless
    ``latitude_ascending=False``); variables by long name with dims ``(time, [level,] longitude,
    latitude)`` float32 and attrs ``long_name``, ``short_name``, ``units``.

    Returns ``{"times", "values": {canonical channel (t2m, z500...): float32 (T, lat, lon) on the
    ascending-lat grid}, "lat", "lon", "levels"}``.
    """
    import pandas as pd
    import xarray as xr

    path = Path(path)
    rng = np.random.default_rng(seed)
    lat, lon = wb_grid(resolution)
    times = pd.date_range(start, periods=n_times, freq=f"{freq_hours}h").to_numpy().astype("datetime64[ns]")
    data_vars, values = {}, {}
    for name in variables:
        units, base, amp, has_level, short = _WB2_VARS[name]
        if has_level:
            arr = np.stack([_smooth_field(rng, n_times, lat, lon, base * (1 - 0.01 * i), amp)
                            for i, _ in enumerate(levels)], axis=1)  # (T, level, lat, lon)
            for i, lv in enumerate(levels):
                values[f"{short}{lv}"] = arr[:, i]
            dims = ("time", "level", "longitude", "latitude")
            stored = np.swapaxes(arr, -1, -2)
        else:
            arr = _smooth_field(rng, n_times, lat, lon, base, amp)
            values[short] = arr
            dims = ("time", "longitude", "latitude")
            stored = np.swapaxes(arr, -1, -2)
        if not latitude_ascending:
            stored = stored[..., ::-1]
        data_vars[name] = (dims, np.ascontiguousarray(stored),
                           {"long_name": name.replace("_", " "), "short_name": short, "units": units})
    ds = xr.Dataset(data_vars, coords={
        "time": ("time", times),
        "level": ("level", np.asarray(levels, np.int64), {"units": "millibars", "long_name": "pressure_level"}),
        "longitude": ("longitude", lon, {"units": "degrees_east", "long_name": "longitude"}),
        "latitude": ("latitude", lat if latitude_ascending else lat[::-1],
                     {"units": "degrees_north", "long_name": "latitude"}),
    })
    _atomic_dir(path, lambda tmp: ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True))
    return {"times": times, "values": values, "lat": lat, "lon": lon, "levels": list(levels)}


def _atomic_dir(path: Path, write) -> None:
    """Write a directory store into a temporary sibling, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        target = tmp / "store"
        write(target)
        if path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def taxibj_slots(day: str, n_days: int) -> list[str]:
    """The ``YYYYMMDDNN`` strings of ``n_days`` full days from ``day`` (NN = 01…48)."""
    import pandas as pd

    out = []
    for d in pd.date_range(day, periods=n_days, freq="D"):
        out.extend(f"{d:%Y%m%d}{nn:02d}" for nn in range(1, 49))
    return out


def slot_time(slot: str) -> np.datetime64:
    """``"2013070103"`` → ``2013-07-01T01:00``: slot NN starts at (NN−1)·30 min."""
    day = np.datetime64(f"{slot[:4]}-{slot[4:6]}-{slot[6:8]}", "ns")
    return day + np.timedelta64((int(slot[8:]) - 1) * 30, "m")


def write_taxibj(root: str | os.PathLike, starts: Mapping[int, str] | None = None, n_days: int = 1, *,
                 size: int = 32, drop: Iterable[str] = (), duplicate: Iterable[str] = (), shuffle: bool = False,
                 meteorology: bool = True, holidays: Sequence[str] = ("20130701",), seed: int = 0) -> dict:
    """Write TaxiBJ files under ``root``.

    ``starts`` maps a file tag (13, 14, 15, 16) to its first day (default ``{13: "2013-07-01"}``); each
    file ``BJ{tag}_M{size}x{size}_T30_InOut.h5`` holds ``n_days`` of 48 half-hour slots: ``data``
    float64 ``(N, 2, size, size)`` (channel 0 inflow, 1 outflow; non-negative counts) and ``date``
    bytes ``|S10`` ``YYYYMMDDNN``.  ``drop``: slot strings left out (gaps), ``duplicate``: slot strings
    written twice, ``shuffle``: swap the first two slots (unsorted).  ``meteorology`` writes
    ``BJ_Meteorology.h5`` (``date`` S10, ``Temperature`` float64, ``WindSpeed`` float64, ``Weather``
    float64 one-hot ``(N, 17)``) over every slot of every file; ``holidays`` (``YYYYMMDD``) go to
    ``BJ_Holiday.txt``.  ``size=128`` gives the TaxiBJ+ HDF5 layout.

    Returns ``{"times": datetime64[ns] (N,) sorted slot starts actually written (without duplicates),
    "data": {tag: float32 (N_tag, 2, size, size) as written}, "dates": {tag: [str, ...]},
    "files": {tag: Path}, "temperature": {slot: float}, "weather": {slot: int}, "wind_speed": {slot: float}}``.
    """
    import h5py

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    starts = dict(starts or {13: "2013-07-01"})
    drop, duplicate = set(drop), list(duplicate)
    result: dict = {"data": {}, "dates": {}, "files": {}, "temperature": {}, "weather": {}, "wind_speed": {}}
    all_slots: list[str] = []
    written_times = []
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    hotspot = np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.05)
    for tag, day in sorted(starts.items()):
        slots = taxibj_slots(day, n_days)
        all_slots.extend(slots)
        kept = [s for s in slots if s not in drop]
        for s in duplicate:
            if s in kept:
                kept.insert(kept.index(s) + 1, s)
        if shuffle and len(kept) > 1:
            kept[0], kept[1] = kept[1], kept[0]
        n = len(kept)
        phase = np.array([int(s[8:]) for s in kept], dtype=float)
        daily = 1.0 + np.sin(2 * np.pi * (phase - 14) / 48.0)
        lam = 5 + 200 * hotspot[None, None] * daily[:, None, None, None] * np.array([1.0, 0.8])[None, :, None, None]
        data = rng.poisson(lam).astype(np.float64)  # (N, 2, size, size)
        path = root / f"BJ{tag}_M{size}x{size}_T30_InOut.h5"
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("data", data=data)
                f.create_dataset("date", data=np.array([s.encode() for s in kept], dtype="S10"))
        result["data"][tag] = data.astype(np.float32)
        result["dates"][tag] = kept
        result["files"][tag] = path
        written_times.extend(slot_time(s) for s in dict.fromkeys(kept))
    result["times"] = np.array(sorted(written_times), dtype="datetime64[ns]")
    if meteorology:
        n = len(all_slots)
        temp = np.round(15 + 10 * rng.standard_normal(n), 1)
        wind = np.round(np.abs(3 + 2 * rng.standard_normal(n)), 1)
        cat = rng.integers(0, 17, n)
        weather = np.zeros((n, 17))
        weather[np.arange(n), cat] = 1.0
        with atomic_path(root / "BJ_Meteorology.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("date", data=np.array([s.encode() for s in all_slots], dtype="S10"))
                f.create_dataset("Temperature", data=temp)
                f.create_dataset("WindSpeed", data=wind)
                f.create_dataset("Weather", data=weather)
        result["temperature"] = dict(zip(all_slots, temp.tolist()))
        result["wind_speed"] = dict(zip(all_slots, wind.tolist()))
        result["weather"] = dict(zip(all_slots, cat.tolist()))
    if holidays is not None:
        atomic_write_text(root / "BJ_Holiday.txt", "".join(f"{d}\n" for d in holidays))
    return result


def write_taxibj_npz(path: str | os.PathLike, n_train: int = 5, n_test: int = 3, *, t_in: int = 4, t_out: int = 4,
                     size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Write OpenSTL's TaxiBJ ``dataset.npz``: ``X_train (n_train, t_in, 2, size, size)``, ``Y_train
    (n_train, t_out, 2, ...)``, ``X_test``, ``Y_test`` float32 scaled to [-1, 1] (as OpenSTL stores it).
    Returns the four arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "X_train": rng.uniform(-1, 1, (n_train, t_in, 2, size, size)).astype(np.float32),
        "Y_train": rng.uniform(-1, 1, (n_train, t_out, 2, size, size)).astype(np.float32),
        "X_test": rng.uniform(-1, 1, (n_test, t_in, 2, size, size)).astype(np.float32),
        "Y_test": rng.uniform(-1, 1, (n_test, t_out, 2, size, size)).astype(np.float32),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays


def write_taxibjplus_npy(root: str | os.PathLike, n: Mapping[str, int] | None = None, *, frames: int = 12,
                         size: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """Write TaxiBJ+ ``{split}_{input,output}_data_reshaped.npy`` of shape ``(N, frames, 2, size, size)``
    float32 (non-negative flows) for ``n = {"train": 3, "val": 2, "test": 2}``.  Returns
    ``{"train_input": array, "train_output": array, ...}``."""
    rng = np.random.default_rng(seed)
    n = dict(n or {"train": 3, "val": 2, "test": 2})
    out = {}
    for split, count in n.items():
        for part in ("input", "output"):
            arr = rng.poisson(20, (count, frames, 2, size, size)).astype(np.float32)
            path = Path(root) / f"{split}_{part}_data_reshaped.npy"
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)
            out[f"{split}_{part}"] = arr
    return out


def write_cf_netcdf(path: str | os.PathLike, variables: Mapping[str, str] | Sequence[str] = ("tas",), n_times: int = 6,
                    *, grid: str = "latlon", shape: tuple[int, int] = (8, 16), start: str = "2020-01-01",
                    freq: str = "3h", lat_descending: bool = False, lon_180: bool = False,
                    levels: Sequence[int] | None = None, names: tuple[str, str] = ("lat", "lon"),
                    seed: int = 0) -> dict:
    """Write a CF-1.8 NetCDF file: ``variables`` (name → units, or names with units ``"1"``) with dims
    ``(time, [level,] lat, lon)`` (``grid="latlon"``, coordinate names ``names``, e.g.
    ``("latitude", "longitude")``; ``lat_descending`` / ``lon_180`` flip conventions) or
    ``(time, [level,] y, x)`` (``grid="yx"``).  ``time`` is encoded as ``hours since 1970-01-01``.

    Returns ``{"times", "values": {channel: float32 (T, H, W) in ascending-lat / 0..360-lon order},
    "lat", "lon"}`` (channel = ``{var}{level}`` when ``levels`` is given).
    """
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(seed)
    if not isinstance(variables, Mapping):
        variables = {v: "1" for v in variables}
    times = pd.date_range(start, periods=n_times, freq=freq).to_numpy().astype("datetime64[ns]")
    ny, nx = shape
    coords: dict = {"time": ("time", times, {"standard_name": "time", "axis": "T"})}
    if grid == "latlon":
        dlat, dlon = 180.0 / ny, 360.0 / nx
        lat = -90 + dlat / 2 + dlat * np.arange(ny)
        lon = dlon * np.arange(nx)
        lon_w = np.where(lon >= 180, lon - 360, lon) if lon_180 else lon
        lon_order = np.argsort(lon_w)
        lat_w = lat[::-1] if lat_descending else lat
        coords[names[0]] = (names[0], lat_w, {"standard_name": "latitude", "units": "degrees_north"})
        coords[names[1]] = (names[1], lon_w[lon_order], {"standard_name": "longitude", "units": "degrees_east"})
        sdims = names
    else:
        lat = lon = None
        coords["y"] = ("y", np.arange(ny), {"axis": "Y"})
        coords["x"] = ("x", np.arange(nx), {"axis": "X"})
        sdims = ("y", "x")
    if levels is not None:
        coords["level"] = ("level", np.asarray(levels, np.int32), {"units": "hPa", "axis": "Z"})
    data_vars, values = {}, {}
    for i, (name, units) in enumerate(variables.items()):
        n_lev = 1 if levels is None else len(levels)
        arr = (10 * i + rng.standard_normal((n_times, n_lev, ny, nx))).astype(np.float32)
        if levels is None:
            values[name] = arr[:, 0]
        else:
            for j, lv in enumerate(levels):
                values[f"{name}{lv}"] = arr[:, j]
        stored = arr
        if grid == "latlon":
            stored = stored[..., ::-1, :] if lat_descending else stored
            stored = stored[..., lon_order]
        dims = ("time",) + (("level",) if levels is not None else ()) + tuple(sdims)
        stored = stored if levels is not None else stored[:, 0]
        data_vars[name] = (dims, np.ascontiguousarray(stored), {"units": units, "long_name": name})
    ds = xr.Dataset(data_vars, coords=coords, attrs={"Conventions": "CF-1.8"})
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding={"time": {"units": "hours since 1970-01-01", "dtype": "int64"}})
    return {"times": times, "values": values, "lat": lat, "lon": lon}


def write_garbage(path: str | os.PathLike, text: bytes = b"this is not a NetCDF or HDF5 file\n") -> Path:
    """Write non-NetCDF/HDF5 bytes to ``path``."""
    atomic_write_bytes(path, text)
    return Path(path)


def truncate_file(path: str | os.PathLike, keep: float = 0.5) -> Path:
    """Cut ``path`` to the first ``keep`` fraction of its bytes (a download that stopped half-way)."""
    path = Path(path)
    data = path.read_bytes()
    atomic_write_bytes(path, data[: int(len(data) * keep)])
    return path


def set_netcdf_values(path: str | os.PathLike, var: str, index: tuple, value: float | None = None,
                      times: Sequence | None = None) -> Path:
    """Rewrite a NetCDF file atomically with ``var[index] = value`` (e.g. NaN/Inf) and/or a new ``time``
    axis ``times`` (e.g. duplicated or unsorted), keeping everything else (for bad-input tests)."""
    import xarray as xr

    path = Path(path)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    if value is not None:
        arr = ds[var].values.copy()
        arr[index] = value
        ds[var] = (ds[var].dims, arr, ds[var].attrs)
    if times is not None:
        ds = ds.assign_coords(time=("time", np.asarray(times, dtype="datetime64[ns]")))
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding={"time": {"units": "hours since 1979-01-01", "dtype": "int64"}})
    return path


def set_h5_values(path: str | os.PathLike, name: str, index: tuple | slice, value) -> Path:
    """Rewrite an HDF5 file atomically with dataset ``name[index] = value`` (for bad-input tests)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        contents = {k: np.asarray(f[k][()]) for k in f.keys()}
    contents[name][index] = value
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in contents.items():
                f.create_dataset(k, data=v)
    return path
