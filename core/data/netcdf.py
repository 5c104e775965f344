"""Bring-your-own-data reader: any CF NetCDF file(s) or zarr store with a time axis and a lat/lon or y/x grid.

``root`` may be one NetCDF file, a folder of ``*.nc`` / ``*.nc4`` files (joined along time, ordered
by their first time; overlapping files are an error), a glob pattern (``data/era5_*.nc``) or a zarr
store (a folder ending in ``.zarr`` or holding ``.zgroup``/``zarr.json``).

Axes are found by name or CF attributes:

* time: the dimension ``time``, or a 1-D coordinate with ``standard_name="time"`` or ``axis="T"``;
* lat/lon: coordinates named ``lat``/``latitude``/``lon``/``longitude`` or with ``standard_name``
  ``latitude``/``longitude`` or ``units`` ``degrees_north``/``degrees_east`` (1-D only) → grid
  ``"latlon"`` (lat made ascending, lon mapped to ``[0, 360)`` and sorted);
* otherwise ``y``/``x`` (by name or ``axis="Y"``/``"X"``) → grid ``"city"``; the ``y``/``x`` coordinate
  values are kept.

``variables`` are the file's own variable names (``None`` = every variable on (time, grid)); a variable
with one extra dimension (e.g. ``level``) gives one channel per value, named ``{var}{value}``
(``ta500``).  Channel units come from the variables' ``units`` attribute (``""`` if absent).  ``years``
and ``time=(start, end)`` (inclusive ISO strings) subset time before anything is read.

Output: canonical ``fields`` (``(time, channel, lat, lon)`` or ``(time, channel, y, x)``) float32,
dask-backed, NaN/Inf and read errors raising :class:`DataError` naming the file when computed.
"""

from __future__ import annotations

import glob as _glob
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import (LazyVariable, check_times, make_fields, normalize_latlon, open_error, select_years,
                            short_error, to_datetime64ns)
from core.errors import DataError

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")


def is_zarr(path: Path) -> bool:
    """A folder that is a zarr store (v2 or v3)."""
    return path.is_dir() and (path.suffix == ".zarr" or (path / ".zgroup").exists() or (path / "zarr.json").exists())


def list_inputs(root: str | os.PathLike) -> list[Path]:
    """The files (or the one zarr store) that ``root`` names; DataError if none."""
    text = os.fspath(root)
    if any(ch in text for ch in "*?["):
        paths = [Path(p) for p in sorted(_glob.glob(text))]
        if not paths:
            raise DataError("no file matches the pattern", path=text)
        return paths
    path = Path(text)
    if not path.exists():
        raise DataError("file or folder not found", path=path)
    if path.is_file() or is_zarr(path):
        return [path]
    paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in NETCDF_SUFFIXES)
    if not paths:
        zarrs = sorted(p for p in path.iterdir() if is_zarr(p))
        if len(zarrs) == 1:
            return zarrs
        raise DataError(f"no NetCDF files ({', '.join('*' + s for s in NETCDF_SUFFIXES[:2])}) or zarr store",
                        path=path)
    return paths


def open_any(path: Path):
    """Open one NetCDF file or zarr store lazily with xarray; unreadable → DataError naming it."""
    import xarray as xr

    try:
        if is_zarr(path):
            return xr.open_zarr(path, chunks=None)
        return xr.open_dataset(path, cache=False)
    except Exception as exc:  # backend errors of every kind mean the same thing to the user
        if is_zarr(path):
            raise DataError(f"not a readable zarr store ({type(exc).__name__}: {short_error(exc)})", path=path) \
                from None
        raise open_error(exc, path, "NetCDF") from None


def _find_axis(ds, names: Sequence[str], standard_names: Sequence[str], axis: str | None,
               units: Sequence[str] = ()) -> str | None:
    """Name of the 1-D coordinate (a dimension) that is this axis, or None."""
    for n in names:
        if n in ds.dims:
            return n
    for name, c in ds.coords.items():
        if c.ndim != 1 or c.dims[0] not in ds.dims:
            continue
        a = c.attrs
        if a.get("standard_name") in standard_names or (axis and a.get("axis") == axis) or a.get("units") in units:
            return str(c.dims[0])
    return None


def describe_axes(ds, path: Path) -> tuple[str, str, str, str]:
    """``(time_dim, grid, ydim, xdim)`` of a dataset, grid ``"latlon"`` or ``"city"``."""
    tdim = _find_axis(ds, ("time",), ("time",), "T")
    if tdim is None:
        raise DataError(f"no time axis (dims: {', '.join(map(str, ds.dims))})", path=path)
    lat = _find_axis(ds, ("lat", "latitude"), ("latitude",), None, ("degrees_north", "degree_north"))
    lon = _find_axis(ds, ("lon", "longitude"), ("longitude",), None, ("degrees_east", "degree_east"))
    if lat and lon:
        return tdim, "latlon", lat, lon
    y = _find_axis(ds, ("y",), ("projection_y_coordinate",), "Y")
    x = _find_axis(ds, ("x",), ("projection_x_coordinate",), "X")
    if y and x:
        return tdim, "city", y, x
    raise DataError(f"no lat/lon or y/x grid (dims: {', '.join(map(str, ds.dims))})", path=path)


class NetCDFSource:
    """:class:`core.data.base.FieldSource` for generic CF NetCDF / zarr data (see module docstring)."""

    name = "netcdf"

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, time: tuple[str, str] | None = None,
             time_chunk: int | None = None, **kw: Any):
        import dask.array as dska

        if kw:
            raise DataError(f"netcdf: unknown option(s) {', '.join(sorted(kw))}")
        paths = list_inputs(root)
        parts = []  # (path, ds, times, keep indices)
        axes = None
        for path in paths:
            ds = open_any(path)
            this = describe_axes(ds, path)
            if axes is None:
                axes = this
            elif this != axes:
                raise DataError(f"axes {this} differ from those of {paths[0].name} {axes}", path=path)
            tdim = this[0]
            tvals = ds[tdim].values if tdim in ds.coords else None
            if tvals is None or np.asarray(tvals).dtype.kind in "biufc":
                # no coordinate, or numbers without CF units ("hours since ..."): not dates
                what = "no coordinate values" if tvals is None else f"{np.asarray(tvals).dtype} values without CF " \
                       "time units (e.g. 'hours since 1970-01-01')"
                raise DataError(f"time axis {tdim!r} has {what}: cannot read dates", path=path)
            times = check_times(to_datetime64ns(tvals, path), path)
            keep = select_years(times, years)
            if time is not None:
                try:
                    lo, hi = (np.datetime64(str(t), "ns") for t in time)
                except (TypeError, ValueError):
                    raise DataError(f"time range must be two ISO dates, got {time!r}") from None
                keep &= (times >= lo) & (times <= hi)
            idx = np.flatnonzero(keep)
            if idx.size:
                parts.append((path, ds, times[idx], idx))
        if not parts:
            raise DataError(f"no time steps left after selecting years={years} time={time}", path=root)
        parts.sort(key=lambda p: p[2][0])
        for prev, cur in zip(parts, parts[1:]):
            if cur[2][0] <= prev[2][-1]:
                raise DataError(f"times overlap with those of {prev[0].name}", path=cur[0])
        tdim, grid, ydim, xdim = axes
        ds0, path0 = parts[0][1], parts[0][0]
        if grid == "latlon":
            for dim in (ydim, xdim):
                if dim not in ds0.coords:  # xarray would number the cells 0, 1, 2...: not degrees
                    raise DataError(f"dimension {dim!r} has no coordinate values (degrees)", path=path0)
            ys, xs, yorder, xorder = normalize_latlon(ds0[ydim].values, ds0[xdim].values, path0)
        else:
            ys, xs = np.asarray(ds0[ydim].values), np.asarray(ds0[xdim].values)
            yorder, xorder = np.arange(ys.size), np.arange(xs.size)
        channels = self._channels(ds0, variables, path0, axes)

        columns = []
        for channel, var, extra_dim, extra_idx in channels:
            pieces = []
            for path, ds, _, idx in parts:
                if var not in ds.data_vars:
                    raise DataError(f"variable {var!r} not found (has: {', '.join(map(str, ds.data_vars))})", path=path)
                if ds.sizes[ydim] != ys.size or ds.sizes[xdim] != xs.size:
                    raise DataError(f"grid {ds.sizes[ydim]}×{ds.sizes[xdim]} differs from {path0.name} "
                                    f"({ys.size}×{xs.size})", path=path)
                v = ds[var].variable
                if extra_dim is not None:
                    v = v.isel({extra_dim: extra_idx})
                v = v.isel({tdim: idx, ydim: yorder, xdim: xorder})
                lazy = LazyVariable(v, (tdim, ydim, xdim), path, var)
                tc = min(time_chunk or 256, idx.size)
                pieces.append(dska.from_array(lazy, chunks=(tc, ys.size, xs.size), asarray=False, fancy=False,
                                              name=False))
            columns.append(dska.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0])
        data = dska.stack(columns, axis=1)
        times = np.concatenate([p[2] for p in parts])
        units = [str(ds0[var].attrs.get("units", "")) for _, var, _, _ in channels]
        root_s = os.fspath(root)
        if grid == "latlon":
            return make_fields(data, times, [c[0] for c in channels], units, grid="latlon", source=self.name,
                               root=root_s, lat=ys, lon=xs, path=path0)
        da = make_fields(data, times, [c[0] for c in channels], units, grid="city", source=self.name, root=root_s,
                         path=path0)
        return da.assign_coords(y=("y", ys), x=("x", xs))

    @staticmethod
    def _channels(ds, variables: Sequence[str] | None, path: Path, axes: tuple[str, str, str, str]
                  ) -> list[tuple[str, str, str | None, int | None]]:
        """``[(channel, variable, extra dim or None, index along it), ...]``."""
        tdim, _, ydim, xdim = axes
        core_dims = {tdim, ydim, xdim}

        def expand(var: str) -> list[tuple[str, str, str | None, int | None]]:
            dims = ds[var].dims
            missing = core_dims - set(dims)
            if missing:
                raise DataError(f"variable {var!r} has dims {tuple(dims)}, lacking {', '.join(sorted(missing))}",
                                path=path)
            extra = [d for d in dims if d not in core_dims]
            if not extra:
                return [(var, var, None, None)]
            if len(extra) > 1:
                raise DataError(f"variable {var!r} has more than one extra dimension {extra}", path=path)
            d = extra[0]
            values = np.asarray(ds[d].values) if d in ds.coords else np.arange(ds.sizes[d])
            out = []
            for i, val in enumerate(values):
                label = str(int(val)) if np.issubdtype(np.asarray(val).dtype, np.number) and float(val).is_integer() \
                    else str(val)
                out.append((f"{var}{label}", var, d, i))
            return out

        if variables is None:
            names = [str(v) for v in ds.data_vars if core_dims <= set(ds[v].dims)]
            if not names:
                raise DataError("no variable on the (time, grid) axes", path=path)
        else:
            names = list(variables)
        out = []
        for name in names:
            if name not in ds.data_vars:
                raise DataError(f"variable {name!r} not found (has: {', '.join(map(str, ds.data_vars))})", path=path)
            out.extend(expand(name))
        return out
