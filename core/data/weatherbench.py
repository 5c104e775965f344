"""WeatherBench (v1) reader: one NetCDF file per variable directory and year.

Layout (Rasp et al. 2020, the published ``5.625deg`` archive)::

    {root}/2m_temperature/2m_temperature_{year}_5.625deg.nc            t2m (time, lat, lon)
    {root}/geopotential_500/geopotential_500hPa_{year}_5.625deg.nc     z   (time, lat, lon), scalar level=500
    {root}/temperature_850/temperature_850hPa_{year}_5.625deg.nc       t   (time, lat, lon), scalar level=850
    {root}/geopotential/geopotential_{year}_5.625deg.nc                z   (time, level, lat, lon)
    ...

Both ``{dir}_{year}_{res}.nc`` and the real ``{dir}hPa_{year}_{res}.nc`` naming are accepted.  Each file
has ``lat`` (32 values −87.1875…87.1875, ascending in the archive; descending is flipped), ``lon``
(64 values 0…354.375) and an hourly ``time``.

Channels (canonical short names): ``t2m``, ``u10``, ``v10``, ``tcc``, ``tp``, ``tisr`` (single-level
directories) and ``{var}{level}`` for pressure-level variables ``z``, ``t``, ``r``, ``q``, ``u``, ``v``,
``vo``, ``pv`` (e.g. ``z500``, ``t850``, ``r700``).  A level channel comes from the single-level
directory (``geopotential_500``) when present, otherwise from the 3-D directory (``geopotential``) with
a ``level`` dimension.  A bare ``z``/``t``/``r``... asks for every level found.

Output: the canonical ``fields`` DataArray ``(time, channel, lat, lon)`` float32, dask-backed (one chunk
per file and channel by default, ``time_chunk=`` to change); values are read, checked for NaN/Inf and
cast to float32 only when computed.  Attrs: ``source="weatherbench"``, ``grid="latlon"``, ``root``,
``cadence``, ``resolution``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import (LazyVariable, check_grid, check_times, make_fields, normalize_latlon, open_error,
                            to_datetime64ns)
from core.errors import DataError

#: Single-level channels: channel → (directory, NetCDF variable, default units).
SINGLE_LEVEL: dict[str, tuple[str, str, str]] = {
    "t2m": ("2m_temperature", "t2m", "K"),
    "u10": ("10m_u_component_of_wind", "u10", "m s**-1"),
    "v10": ("10m_v_component_of_wind", "v10", "m s**-1"),
    "tcc": ("total_cloud_cover", "tcc", "(0 - 1)"),
    "tp": ("total_precipitation", "tp", "m"),
    "tisr": ("toa_incident_solar_radiation", "tisr", "J m**-2"),
}

#: Pressure-level variables: short name → (3-D directory, NetCDF variable, default units).
PRESSURE_LEVEL: dict[str, tuple[str, str, str]] = {
    "z": ("geopotential", "z", "m**2 s**-2"),
    "t": ("temperature", "t", "K"),
    "r": ("relative_humidity", "r", "%"),
    "q": ("specific_humidity", "q", "kg kg**-1"),
    "u": ("u_component_of_wind", "u", "m s**-1"),
    "v": ("v_component_of_wind", "v", "m s**-1"),
    "vo": ("vorticity", "vo", "s**-1"),
    "pv": ("potential_vorticity", "pv", "K m**2 kg**-1 s**-1"),
}

_LEVEL_RE = re.compile(r"^(" + "|".join(sorted(PRESSURE_LEVEL, key=len, reverse=True)) + r")(\d+)$")


@dataclass
class _Plan:
    """Where one channel comes from."""

    channel: str
    directory: Path
    var: str
    level: int | None
    units: str
    files: dict[int, Path] = field(default_factory=dict)


def year_files(directory: Path, resolution: str = "5.625deg") -> dict[int, Path]:
    """Map year → file for ``{dir}_{year}_{res}.nc`` and ``{dir}hPa_{year}_{res}.nc`` in ``directory``."""
    pattern = re.compile(rf"^{re.escape(directory.name)}(?:hPa)?_(\d{{4}})_{re.escape(resolution)}\.nc$")
    out: dict[int, Path] = {}
    if directory.is_dir():
        for p in sorted(directory.iterdir()):
            m = pattern.match(p.name)
            if m:
                year = int(m.group(1))
                if year in out:
                    raise DataError(f"two files for year {year}: {out[year].name} and {p.name}", path=directory)
                out[year] = p
    return out


def parse_resolution(resolution: str) -> float:
    """``"5.625deg"`` → 5.625."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)deg", resolution)
    if not m:
        raise DataError(f"resolution {resolution!r} is not like '5.625deg'")
    return float(m.group(1))


class _Files:
    """Opened datasets, one per path (xarray, lazy), with bad files turned into DataError."""

    def __init__(self) -> None:
        self._open: dict[Path, Any] = {}

    def get(self, path: Path):
        import xarray as xr

        if path not in self._open:
            if not path.is_file():
                raise DataError("file not found", path=path)
            try:
                self._open[path] = xr.open_dataset(path, cache=False)
            except Exception as exc:  # netCDF4/h5netcdf/backend errors: any of them means unreadable
                raise open_error(exc, path, "NetCDF") from None
        return self._open[path]


class WeatherBenchSource:
    """:class:`core.data.base.FieldSource` for WeatherBench v1 directories (see module docstring)."""

    name = "weatherbench"

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, resolution: str = "5.625deg",
             time_chunk: int | None = None, **kw: Any):
        """Open ``root``; ``variables`` are channels (``["z500", "t850", "t2m"]``), ``years`` calendar years.

        ``years=None`` reads the years of the first channel's files (every channel must have them).
        ``resolution`` picks the file suffix and the expected grid (``"5.625deg"`` → 32×64).
        ``time_chunk``: time steps per dask chunk (default: one chunk per file).
        """
        import dask.array as dska

        if kw:
            raise DataError(f"weatherbench: unknown option(s) {', '.join(sorted(kw))}")
        root = Path(root)
        if not root.is_dir():
            raise DataError("data folder not found", path=root)
        res_deg = parse_resolution(resolution)
        files = _Files()
        plans = self._plan(root, variables, resolution, files)
        years = self._years(plans, years, resolution)

        columns = []
        times_ref: np.ndarray | None = None
        ref_dir: Path | None = None
        lat_ref = lon_ref = None
        for plan in plans:
            pieces, times_parts, prev = [], [], None
            for year in years:
                path = plan.files[year]
                arr, times, lat, lon = self._read_one(files, plan, path, res_deg, time_chunk)
                if prev is not None and times.size and times_parts and times_parts[-1].size \
                        and times[0] <= times_parts[-1][-1]:
                    raise DataError(f"times overlap or precede those of {prev.name}", path=path)
                pieces.append(arr)
                times_parts.append(times)
                prev = path
                if lat_ref is None:
                    lat_ref, lon_ref = lat, lon
            times = np.concatenate(times_parts) if times_parts else np.array([], dtype="datetime64[ns]")
            if times_ref is None:
                times_ref, ref_dir = times, plan.directory
            elif times.shape != times_ref.shape or not (times == times_ref).all():
                raise DataError(f"time axis of {plan.channel!r} ({times.size} steps) differs from that of "
                                f"{ref_dir.name} ({times_ref.size} steps)", path=plan.directory)
            columns.append(dska.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0])
        data = dska.stack(columns, axis=1)  # (time, channel, lat, lon)
        return make_fields(data, times_ref, [p.channel for p in plans], [p.units for p in plans],
                           grid="latlon", source=self.name, root=root, lat=lat_ref, lon=lon_ref,
                           attrs={"resolution": resolution, "years": list(years)})

    # ------------------------------------------------------------------------------------------
    def _plan(self, root: Path, variables: Sequence[str] | None, resolution: str, files: _Files) -> list[_Plan]:
        if variables is None:
            variables = self._discover(root, resolution, files)
            if not variables:
                raise DataError(f"no WeatherBench variable directories (e.g. 2m_temperature/*_{resolution}.nc) found",
                                path=root)
        plans: list[_Plan] = []
        for name in variables:
            for plan in self._resolve(root, name, resolution, files):
                if plan.channel in {p.channel for p in plans}:
                    continue
                plans.append(plan)
        return plans

    def _discover(self, root: Path, resolution: str, files: _Files) -> list[str]:
        found: list[str] = []
        for short, (directory, _, _) in PRESSURE_LEVEL.items():
            for d in sorted(root.glob(f"{directory}_*")):
                m = re.fullmatch(rf"{re.escape(directory)}_(\d+)", d.name)
                if m and year_files(d, resolution):
                    found.append(f"{short}{int(m.group(1))}")
            if year_files(root / directory, resolution):
                found.append(short)  # all levels of the 3-D file
        for channel, (directory, _, _) in SINGLE_LEVEL.items():
            if year_files(root / directory, resolution):
                found.append(channel)
        return found

    def _resolve(self, root: Path, name: str, resolution: str, files: _Files) -> list[_Plan]:
        if name in SINGLE_LEVEL:
            directory, var, units = SINGLE_LEVEL[name]
            return [self._single(root / directory, name, var, None, units, resolution)]
        m = _LEVEL_RE.match(name)
        if m:
            short, level = m.group(1), int(m.group(2))
            directory, var, units = PRESSURE_LEVEL[short]
            single = root / f"{directory}_{level}"
            if year_files(single, resolution):
                return [self._single(single, name, var, level, units, resolution)]
            if year_files(root / directory, resolution):
                plan = self._single(root / directory, name, var, level, units, resolution)
                return [plan]
            raise DataError(f"variable {name!r} not found: neither {single.name}/ nor {directory}/ holds "
                            f"*_{resolution}.nc files", path=root)
        if name in PRESSURE_LEVEL:
            directory, var, units = PRESSURE_LEVEL[name]
            d = root / directory
            yf = year_files(d, resolution)
            if yf:
                ds = files.get(next(iter(yf.values())))
                if var not in ds.data_vars:
                    raise DataError(f"variable {var!r} not found (has: {', '.join(map(str, ds.data_vars))})",
                                    path=next(iter(yf.values())))
                if "level" in ds[var].dims:
                    levels = [int(v) for v in np.asarray(ds["level"].values).ravel()]
                    return [self._single(d, f"{name}{lv}", var, lv, units, resolution) for lv in levels]
                level = int(ds["level"].values) if "level" in ds.coords and ds["level"].size == 1 else None
                if level is None:
                    raise DataError(f"{var!r} has no 'level' coordinate to name its channel", path=d)
                return [self._single(d, f"{name}{level}", var, level, units, resolution)]
            singles = sorted(root.glob(f"{directory}_*"))
            out = []
            for s in singles:
                m2 = re.fullmatch(rf"{re.escape(directory)}_(\d+)", s.name)
                if m2 and year_files(s, resolution):
                    out.append(self._single(s, f"{name}{int(m2.group(1))}", var, int(m2.group(1)), units, resolution))
            if out:
                return out
            raise DataError(f"variable {name!r} not found: no {directory}/ or {directory}_<level>/ directory",
                            path=root)
        known = ", ".join(list(SINGLE_LEVEL) + [f"{k}<level>" for k in PRESSURE_LEVEL])
        raise DataError(f"unknown WeatherBench variable {name!r} (known: {known})", path=root)

    @staticmethod
    def _single(directory: Path, channel: str, var: str, level: int | None, units: str, resolution: str) -> _Plan:
        if not directory.is_dir():
            raise DataError(f"variable {channel!r} not found: directory missing", path=directory)
        yf = year_files(directory, resolution)
        if not yf:
            raise DataError(f"variable {channel!r}: no {directory.name}_<year>_{resolution}.nc files", path=directory)
        return _Plan(channel, directory, var, level, units, yf)

    @staticmethod
    def _years(plans: list[_Plan], years: Iterable[int] | None, resolution: str) -> list[int]:
        if years is None:
            years = sorted(plans[0].files)
        years = sorted(set(int(y) for y in years))
        for plan in plans:
            for y in years:
                if y not in plan.files:
                    example = next(iter(plan.files.values())).name
                    expected = plan.directory / re.sub(r"_\d{4}_", f"_{y}_", example)
                    raise DataError(f"no file for year {y} of {plan.channel!r}", path=expected)
        return years

    def _read_one(self, files: _Files, plan: _Plan, path: Path, res_deg: float, time_chunk: int | None):
        """Lazy ``(time, lat, lon)`` dask array of one channel in one file, plus its time/lat/lon values."""
        import dask.array as dska

        ds = files.get(path)
        if plan.var not in ds.data_vars:
            raise DataError(f"variable {plan.var!r} not found (has: {', '.join(map(str, ds.data_vars)) or 'none'})",
                            path=path)
        v = ds[plan.var]
        for dim in ("time", "lat", "lon"):
            if dim not in v.dims:
                raise DataError(f"variable {plan.var!r} has dims {tuple(v.dims)}, expected 'time', 'lat', 'lon'",
                                path=path)
        if "level" in v.dims:
            levels = np.asarray(ds["level"].values).astype(float)
            if plan.level is None:
                if levels.size != 1:
                    raise DataError(f"variable {plan.var!r} has {levels.size} levels; name one (e.g. "
                                    f"{plan.var}{int(levels[0])})", path=path)
                idx = 0
            else:
                hits = np.flatnonzero(levels == plan.level)
                if not hits.size:
                    raise DataError(f"level {plan.level} not found (levels: {', '.join(str(int(x)) for x in levels)})",
                                    path=path)
                idx = int(hits[0])
            v = v.isel(level=idx)
        elif plan.level is not None and "level" in v.coords and v["level"].size == 1:
            if float(v["level"].values) != plan.level:
                raise DataError(f"file holds level {int(v['level'].values)}, expected {plan.level}", path=path)
        if v.attrs.get("units"):
            plan.units = str(v.attrs["units"])
        extra = [d for d in v.dims if d not in ("time", "lat", "lon")]
        if extra:
            raise DataError(f"variable {plan.var!r} has unexpected dims {extra}", path=path)
        lat_s, lon_s, lat_order, lon_order = normalize_latlon(ds["lat"].values, ds["lon"].values, path)
        check_grid(lat_s, lon_s, res_deg, path)
        times = check_times(to_datetime64ns(ds["time"].values, path), path)
        variable = v.variable
        if not (lat_order == np.arange(lat_order.size)).all():
            variable = variable.isel(lat=lat_order)
        if not (lon_order == np.arange(lon_order.size)).all():
            variable = variable.isel(lon=lon_order)
        lazy = LazyVariable(variable, ("time", "lat", "lon"), path, plan.var)
        chunk = (time_chunk or max(times.size, 1), lat_s.size, lon_s.size)
        arr = dska.from_array(lazy, chunks=chunk, asarray=False, fancy=False, name=False)
        return arr, times, lat_s, lon_s
