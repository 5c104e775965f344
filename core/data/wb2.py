"""WeatherBench 2 reader: one zarr store with long variable names.

Layout (e.g. ``gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr``,
copied locally): coordinates ``time`` (datetime64), ``level`` (hPa), ``latitude`` (ascending in the
WB2 stores; descending is flipped), ``longitude`` (0…360 or −180…180); variables by long name such as
``2m_temperature (time, longitude, latitude)`` and ``geopotential (time, level, longitude, latitude)``
(any dims order is accepted).

Channels: canonical short names (``t2m``, ``u10``, ``v10``, ``msl``, ``z500``, ``t850``, ``q700``…);
a long name (``2m_temperature``) is accepted too, and a long pressure-level name (``geopotential``)
asks for every level.  A variable not in :data:`LONG_TO_SHORT` keeps its own name.

Everything stays lazy: the store is opened without loading, then subset by ``years``, ``time=(start,
end)`` (inclusive ISO strings), level (from the channels) and ``region=(lat_min, lat_max, lon_min,
lon_max)`` before any value is read.  A region with ``lon_min > lon_max`` crosses the 0°/360° seam: its
``lon`` coordinate then runs ``lon_min…360`` followed by ``0…lon_max`` (geographic order, not sorted).

Output: canonical ``fields`` ``(time, channel, lat, lon)`` float32, dask-backed; NaN/Inf and damaged
chunks raise :class:`DataError` naming the store when computed.  Attrs: ``source="wb2"``, ``grid``,
``root``, ``cadence``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import (LazyVariable, check_times, make_fields, normalize_latlon, select_years, short_error,
                            to_datetime64ns)
from core.errors import DataError

#: WB2 long name → canonical short name (pressure-level variables get ``{short}{level}`` channels).
LONG_TO_SHORT: dict[str, str] = {
    "2m_temperature": "t2m",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "10m_wind_speed": "ws10",
    "mean_sea_level_pressure": "msl",
    "surface_pressure": "sp",
    "total_cloud_cover": "tcc",
    "total_precipitation_6hr": "tp6h",
    "total_precipitation_24hr": "tp24h",
    "toa_incident_solar_radiation": "tisr",
    "sea_surface_temperature": "sst",
    "geopotential": "z",
    "temperature": "t",
    "specific_humidity": "q",
    "relative_humidity": "r",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "vertical_velocity": "w",
    "vorticity": "vo",
    "potential_vorticity": "pv",
}

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")


def parse_region(region: Any) -> tuple[float, float, float, float] | None:
    """``(lat_min, lat_max, lon_min, lon_max)`` from a tuple, a dict or an object with those attributes."""
    if region is None:
        return None
    keys = ("lat_min", "lat_max", "lon_min", "lon_max")
    try:
        if isinstance(region, dict):
            vals = [region[k] for k in keys]
        elif all(hasattr(region, k) for k in keys):
            vals = [getattr(region, k) for k in keys]
        else:
            vals = list(region)
        lat_min, lat_max, lon_min, lon_max = (float(v) for v in vals)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"region must be (lat_min, lat_max, lon_min, lon_max), got {region!r}") from None
    if lat_min > lat_max:
        raise DataError(f"region lat_min {lat_min} > lat_max {lat_max}")
    if lon_max - lon_min >= 360.0:
        return lat_min, lat_max, 0.0, 360.0
    return lat_min, lat_max, lon_min % 360.0, lon_max % 360.0


def region_indices(lat: np.ndarray, lon: np.ndarray, region: tuple[float, float, float, float] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ascending ``lat`` and ``lon`` (0…360) inside ``region`` (seam-aware, see module doc)."""
    if region is None:
        return np.arange(lat.size), np.arange(lon.size)
    lat_min, lat_max, lon_min, lon_max = region
    ilat = np.flatnonzero((lat >= lat_min) & (lat <= lat_max))
    if lon_min <= lon_max:
        ilon = np.flatnonzero((lon >= lon_min) & (lon <= lon_max))
    else:
        ilon = np.concatenate([np.flatnonzero(lon >= lon_min), np.flatnonzero(lon <= lon_max)])
    return ilat, ilon


class WB2Source:
    """:class:`core.data.base.FieldSource` for WeatherBench 2 zarr stores (see module docstring)."""

    name = "wb2"

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, time: tuple[str, str] | None = None, region: Any = None,
             time_chunk: int | None = None, **kw: Any):
        """Open the zarr store ``root`` lazily and subset it (see module docstring)."""
        import dask.array as dska
        import xarray as xr

        if kw:
            raise DataError(f"wb2: unknown option(s) {', '.join(sorted(kw))}")
        root = Path(root)
        if not root.exists():
            raise DataError("zarr store not found", path=root)
        try:
            ds = xr.open_zarr(root, chunks=None, decode_timedelta=False)
        except Exception as exc:  # zarr/xarray raise many types for a non-store
            raise DataError(f"not a readable zarr store ({type(exc).__name__}: {short_error(exc)})", path=root) \
                from None
        lat_name = next((n for n in LAT_NAMES if n in ds.coords or n in ds.dims), None)
        lon_name = next((n for n in LON_NAMES if n in ds.coords or n in ds.dims), None)
        if "time" not in ds.dims or lat_name is None or lon_name is None:
            raise DataError(f"expected dims time, latitude, longitude; store has {tuple(ds.dims)}", path=root)
        times = check_times(to_datetime64ns(ds["time"].values, root), root)
        keep = select_years(times, years)
        if time is not None:
            try:
                t_lo, t_hi = (np.datetime64(str(t), "ns") for t in time)
            except (TypeError, ValueError):
                raise DataError(f"time range must be two ISO dates, got {time!r}", path=root) from None
            keep &= (times >= t_lo) & (times <= t_hi)
        itime = np.flatnonzero(keep)
        if itime.size == 0:
            raise DataError(f"no times left after selecting years={years} time={time}", path=root)
        lat_s, lon_s, lat_order, lon_order = normalize_latlon(ds[lat_name].values, ds[lon_name].values, root)
        ilat, ilon = region_indices(lat_s, lon_s, parse_region(region))
        if ilat.size == 0 or ilon.size == 0:
            raise DataError(f"region {region!r} selects no grid point", path=root)

        channels = self._channels(ds, variables, root, lat_name, lon_name)
        columns, names, units = [], [], []
        for channel, var, level in channels:
            v = ds[var].variable
            if level is not None:
                levels = np.asarray(ds["level"].values).astype(float)
                hits = np.flatnonzero(levels == level)
                if not hits.size:
                    raise DataError(f"level {level} of {var!r} not found (levels: "
                                    f"{', '.join(str(int(x)) for x in levels)})", path=root)
                v = v.isel(level=int(hits[0]))
            extra = [d for d in v.dims if d not in ("time", lat_name, lon_name)]
            if extra:
                raise DataError(f"variable {var!r} has unexpected dims {extra}", path=root)
            v = v.isel({"time": itime, lat_name: lat_order[ilat], lon_name: lon_order[ilon]})
            lazy = LazyVariable(v, ("time", lat_name, lon_name), root, var)
            store_chunks = ds[var].encoding.get("chunks") or ()
            tc = time_chunk or (store_chunks[0] if store_chunks else None) or 64
            columns.append(dska.from_array(lazy, chunks=(min(tc, itime.size), ilat.size, ilon.size),
                                           asarray=False, fancy=False, name=False))
            names.append(channel)
            units.append(str(ds[var].attrs.get("units", "")))
        data = dska.stack(columns, axis=1)
        return make_fields(data, times[itime], names, units, grid="latlon", source=self.name, root=root,
                           lat=lat_s[ilat], lon=lon_s[ilon])

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _channels(ds, variables: Sequence[str] | None, root: Path, lat_name: str, lon_name: str
                  ) -> list[tuple[str, str, int | None]]:
        """``[(channel, store variable, level or None), ...]`` for the requested names."""
        short_to_long = {s: l for l, s in LONG_TO_SHORT.items() if l in ds.data_vars}

        def gridded(var: str) -> bool:
            dims = ds[var].dims
            return "time" in dims and lat_name in dims and lon_name in dims

        def expand(var: str) -> list[tuple[str, str, int | None]]:
            short = LONG_TO_SHORT.get(var, var)
            if "level" in ds[var].dims:
                return [(f"{short}{int(lv)}", var, int(lv)) for lv in np.asarray(ds["level"].values)]
            return [(short, var, None)]

        if variables is None:
            out = [c for var in ds.data_vars if gridded(var) for c in expand(str(var))]
            if not out:
                raise DataError("no variable with dims (time, latitude, longitude) in the store", path=root)
            return out
        out: list[tuple[str, str, int | None]] = []
        for name in variables:
            if name in ds.data_vars:
                if not gridded(name):
                    raise DataError(f"variable {name!r} has dims {tuple(ds[name].dims)}, not (time, latitude, "
                                    f"longitude)", path=root)
                out.extend(expand(name))
                continue
            if name in short_to_long and "level" not in ds[short_to_long[name]].dims:
                out.append((name, short_to_long[name], None))
                continue
            m = re.fullmatch(r"([a-z]+)(\d+)", name)
            if m and m.group(1) in short_to_long and "level" in ds[short_to_long[m.group(1)]].dims:
                out.append((name, short_to_long[m.group(1)], int(m.group(2))))
                continue
            raise DataError(f"variable {name!r} not found (store has: {', '.join(map(str, ds.data_vars))})",
                            path=root)
        return out
