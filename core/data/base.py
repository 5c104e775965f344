"""The canonical field form, the :class:`FieldSource` protocol, and the checks every reader shares.

Canonical form (docs/ARCHITECTURE.md, "Canonical data form"): an ``xarray.DataArray`` named
``fields`` with

* dims ``("time", "channel", "lat", "lon")`` (lat-lon grids) or ``("time", "channel", "y", "x")``
  (city grids), dtype ``float32``;
* ``time``: ``datetime64[ns]``, strictly increasing (sorted, unique); a missing step is a *gap* in an
  otherwise regular axis, never filled or shifted;
* ``channel``: short names (``z500``, ``t2m``, ``inflow``...), with a non-index coordinate ``units``
  along ``channel``;
* ``lat`` ascending, ``lon`` in ``[0, 360)`` ascending (lat-lon grids); ``y``/``x`` integer pixel
  indices (city grids);
* attrs ``source`` (reader name), ``grid`` (``"latlon"``/``"city"``), ``root`` (path read),
  ``cadence`` (ISO 8601 duration of the regular step, e.g. ``"PT1H"``, ``"PT30M"``);
* exogenous, known-ahead context as extra coordinates along ``time``.

Readers build it with :func:`make_fields` and the helpers below; bad input raises
:class:`core.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

LATLON_DIMS: tuple[str, ...] = ("time", "channel", "lat", "lon")
CITY_DIMS: tuple[str, ...] = ("time", "channel", "y", "x")
FIELDS_NAME = "fields"


@runtime_checkable
class FieldSource(Protocol):
    """A reader of one archive format.

    ``open(root, variables, years, **kw)`` returns the canonical ``fields`` DataArray (see module
    docstring): ``variables`` are channel names (``None`` = everything found), ``years`` an iterable
    of calendar years (``None`` = all).  Dask-backed where the format allows, so that subsetting
    happens before ``.load()``.  Bad input raises :class:`core.errors.DataError`.
    """

    name: str

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, **kw: Any) -> "xr.DataArray": ...


# --------------------------------------------------------------------------------------------------
# time axis


def to_datetime64ns(values: Any, path: str | os.PathLike | None = None) -> np.ndarray:
    """Return ``values`` as a ``datetime64[ns]`` numpy array (any datetime-like input)."""
    import pandas as pd

    try:
        arr = np.asarray(values)
        if np.issubdtype(arr.dtype, np.datetime64):
            return arr.astype("datetime64[ns]")
        return pd.to_datetime(arr).to_numpy().astype("datetime64[ns]")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"time values cannot be read as dates ({exc})", path=path) from None


def check_times(times: np.ndarray, path: str | os.PathLike | None = None, what: str = "time") -> np.ndarray:
    """Check that ``times`` (datetime64) is strictly increasing; return it as ``datetime64[ns]``.

    Duplicated or unsorted times raise :class:`DataError` naming ``path`` and the first offending value.
    """
    times = to_datetime64ns(times, path)
    if times.ndim != 1:
        raise DataError(f"{what} axis must be 1-D, got shape {times.shape}", path=path)
    if np.isnat(times).any():
        raise DataError(f"{what} axis contains missing (NaT) values", path=path)
    if times.size > 1:
        d = np.diff(times.astype("int64"))
        if (d == 0).any():
            i = int(np.flatnonzero(d == 0)[0]) + 1
            raise DataError(f"duplicated time {iso(times[i])} in {what} axis", path=path)
        if (d < 0).any():
            i = int(np.flatnonzero(d < 0)[0]) + 1
            raise DataError(f"unsorted {what} axis: {iso(times[i])} comes after {iso(times[i - 1])}", path=path)
    return times


def iso(t: Any) -> str:
    """ISO 8601 text of one timestamp, to the second (``2016-01-01T00:00:00``)."""
    return str(np.datetime64(t, "s"))


_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}



def parse_cadence(text: str) -> np.timedelta64:
    """Parse an ISO 8601 duration without years/months (``"PT1H"``, ``"PT30M"``, ``"P1D"``, ``"PT6H"``).

    Returns a ``timedelta64[ns]``; raises :class:`DataError` for anything else or a zero duration.
    """
    m = _ISO_DURATION.match(str(text).strip().upper()) if isinstance(text, str) else None
    if m is None or str(text).strip().upper() in ("P", "PT") or str(text).strip().upper().endswith("T"):
        raise DataError(f"cadence {text!r} is not an ISO 8601 duration like 'PT1H' or 'PT30M'")
    seconds = sum(float(v) * _UNIT_SECONDS[k] for k, v in m.groupdict().items() if v is not None)
    ns = int(round(seconds * 1e9))
    if ns <= 0:
        raise DataError(f"cadence {text!r} must be a positive duration")
    return np.timedelta64(ns, "ns")


def format_cadence(delta: np.timedelta64) -> str:
    """Inverse of :func:`parse_cadence` for whole seconds: ``3600 s → "PT1H"``, ``1 day → "P1D"``."""
    ns = int(np.timedelta64(delta, "ns").astype(np.int64))
    if ns <= 0:
        raise DataError(f"cadence {delta} must be a positive duration")
    total, frac_ns = divmod(ns, 10**9)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    sec = f"{seconds}.{frac_ns:09d}".rstrip("0") if frac_ns else str(seconds)
    out = "P" + (f"{days}D" if days else "")
    if hours or minutes or seconds or frac_ns:
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (
            f"{sec}S" if seconds or frac_ns else "")
    return out


def iso_duration(seconds: int) -> str:
    """ISO 8601 duration of a positive number of seconds: 3600 → ``"PT1H"``, 1800 → ``"PT30M"``."""
    seconds = int(seconds)
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds} s")
    return format_cadence(np.timedelta64(seconds, "s"))


def duration_seconds(text: str) -> int:
    """Inverse of :func:`iso_duration`: whole seconds of an ISO 8601 duration (``"PT30M"`` → 1800)."""
    try:
        return int(parse_cadence(text) // np.timedelta64(1, "s"))
    except DataError as exc:
        raise ValueError(str(exc)) from None


def infer_cadence(times: np.ndarray) -> tuple[int | None, int]:
    """Regular step of a sorted time axis and the number of gaps in it.

    Returns ``(step_seconds, n_gaps)``: the step is the most common difference between consecutive
    times (``None`` for fewer than two times); a gap is any difference larger than the step.
    """
    times = np.asarray(times).astype("datetime64[ns]")
    if times.size < 2:
        return None, 0
    d = np.diff(times.astype("int64")) // 1_000_000_000
    step = Counter(d.tolist()).most_common(1)[0][0]
    return int(step), int((d > step).sum())


# --------------------------------------------------------------------------------------------------
# values


def _check_block_finite(block: np.ndarray, path: str, what: str) -> np.ndarray:
    if block.dtype.kind not in "biuf":  # strings, objects, dates: np.isfinite would raise TypeError
        raise DataError(f"{what} has dtype {block.dtype}, not numbers", path=path)
    if not np.isfinite(block).all():
        kind = "NaN" if np.isnan(block).any() else "Inf"
        raise DataError(f"{what} contains {kind} values", path=path)
    return block


def guard_finite(data: Any, path: str | os.PathLike | None, what: str = "data") -> Any:
    """Check that ``data`` holds only finite numbers, raising :class:`DataError` naming ``path``.

    A numpy array is checked now; a dask array is wrapped so that each block is checked when it is
    computed (lazy archives are not read in full just to open them).
    """
    path_s = os.fspath(path) if path is not None else "<data>"
    try:
        import dask.array as dska

        if isinstance(data, dska.Array):
            return data.map_blocks(_check_block_finite, path_s, what, dtype=data.dtype)
    except ImportError:  # pragma: no cover
        pass
    return _check_block_finite(np.asarray(data), path_s, what)


# --------------------------------------------------------------------------------------------------
# lazy reading with file-named errors


def short_error(exc: BaseException) -> str:
    """One line, at most ~160 characters, of an exception's message (for DataError texts)."""
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def file_kind(path: str | os.PathLike) -> str | None:
    """``"netcdf3"``, ``"hdf5"`` (NetCDF-4 or HDF5), ``"zip"`` (npz) or ``None`` from a file's first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head.startswith(b"CDF"):
        return "netcdf3"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(b"PK"):
        return "zip"
    return None


def open_error(exc: BaseException, path: str | os.PathLike, kind: str = "NetCDF") -> DataError:
    """A one-line DataError for a file that a backend could not open: unrecognised bytes or damaged."""
    article = "an" if kind.startswith("HDF") else "a"
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return DataError(f"empty file, not {article} {kind} file", path=path)
    if os.path.isfile(path) and file_kind(path) is None:
        return DataError(f"not {article} {kind} file (unrecognised header bytes)", path=path)
    text = short_error(exc).replace(os.fspath(path), "").replace("''", "").strip(" :")
    return DataError(f"cannot open {kind} file: truncated or damaged ({type(exc).__name__}: {text})", path=path)


class LazyVariable:
    """A lazily read view of one xarray ``Variable`` in a fixed dims order, for ``dask.array.from_array``.

    ``variable`` is a lazy (backend-backed, not yet loaded) ``xarray.Variable``; ``dims`` the order of
    the returned blocks (e.g. ``("time", "lat", "lon")``).  Indexing reads only the requested block,
    re-raises any read error (truncated file, broken chunk...) as :class:`DataError` naming ``path``,
    rejects NaN/Inf (also naming ``path``), and returns float32.
    """

    def __init__(self, variable: Any, dims: Sequence[str], path: str | os.PathLike, what: str):
        missing = [d for d in dims if d not in variable.dims] + [d for d in variable.dims if d not in dims]
        if missing:
            raise ValueError(f"dims {tuple(dims)} do not match the variable's {tuple(variable.dims)}")
        kind = np.dtype(variable.dtype).kind
        if kind not in "biuf":  # strings, objects, datetimes, complex: not a field of numbers
            raise DataError(f"{what!r} has dtype {variable.dtype}, not a numeric field", path=path)
        self.variable = variable
        self.dims = tuple(dims)
        self.path = path
        self.what = what
        self.shape = tuple(int(variable.sizes[d]) for d in self.dims)
        self.dtype = np.dtype("float32")
        self.ndim = len(self.dims)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        try:
            sub = self.variable.isel({d: k for d, k in zip(self.dims, key)})
            block = np.asarray(sub.transpose(*[d for d in self.dims if d in sub.dims]).values)
        except DataError:
            raise
        except Exception as exc:  # any backend error while reading means a damaged file
            raise DataError(f"cannot read {self.what!r} ({type(exc).__name__}: {short_error(exc)})",
                            path=self.path) from None
        if not np.isfinite(block).all():
            kind = "NaN" if np.isnan(block).any() else "Inf"
            raise DataError(f"{self.what!r} contains {kind} values", path=self.path)
        return block.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------------
# grids


def regular_latlon(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre lat (ascending, no poles) and lon (0 ≤ lon < 360) of an equiangular grid.

    ``regular_latlon(5.625)`` gives the WeatherBench grid: 32 lats −87.1875…87.1875, 64 lons 0…354.375.
    """
    n_lat = int(round(180.0 / resolution))
    n_lon = int(round(360.0 / resolution))
    lat = -90.0 + resolution / 2 + resolution * np.arange(n_lat)
    lon = resolution * np.arange(n_lon)
    return lat, lon


def normalize_latlon(lat: np.ndarray, lon: np.ndarray, path: str | os.PathLike | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check a lat/lon grid and return ``(lat_sorted, lon_sorted, lat_order, lon_order)``.

    ``lat`` may be ascending or descending, ``lon`` in ``[-180, 180)`` or ``[0, 360)``; the orders are
    index arrays that put the data into ascending lat and lon in ``[0, 360)``.  Non-unique or
    out-of-range coordinates raise :class:`DataError`.
    """
    try:
        lat = np.asarray(lat, dtype="float64")
        lon = np.asarray(lon, dtype="float64")
    except (TypeError, ValueError):
        raise DataError(f"lat/lon coordinates are not numbers (dtypes {np.asarray(lat).dtype}, "
                        f"{np.asarray(lon).dtype})", path=path) from None
    if lat.ndim != 1 or lon.ndim != 1 or lat.size == 0 or lon.size == 0:
        raise DataError(f"lat/lon must be non-empty 1-D coordinates, got shapes {lat.shape} and {lon.shape}", path=path)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise DataError("lat/lon coordinates contain NaN or Inf", path=path)
    if lat.min() < -90 or lat.max() > 90:
        raise DataError(f"latitudes outside [-90, 90]: {lat.min()}..{lat.max()}", path=path)
    if lon.min() < -180 or lon.max() >= 360:
        raise DataError(f"longitudes outside [-180, 360): {lon.min()}..{lon.max()}", path=path)
    lon360 = np.mod(lon, 360.0)
    lat_order = np.argsort(lat, kind="stable")
    lon_order = np.argsort(lon360, kind="stable")
    lat_s, lon_s = lat[lat_order], lon360[lon_order]
    if lat_s.size > 1 and (np.diff(lat_s) == 0).any():
        raise DataError("duplicated latitude values", path=path)
    if lon_s.size > 1 and (np.diff(lon_s) == 0).any():
        raise DataError("duplicated longitude values", path=path)
    return lat_s, lon_s, lat_order, lon_order


def check_grid(lat: np.ndarray, lon: np.ndarray, resolution: float, path: str | os.PathLike | None = None) -> None:
    """Raise :class:`DataError` unless sorted ``lat``/``lon`` are the equiangular grid of ``resolution``°."""
    exp_lat, exp_lon = regular_latlon(resolution)
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    if lat.shape != exp_lat.shape or lon.shape != exp_lon.shape or not (
            np.allclose(lat, exp_lat, atol=1e-3) and np.allclose(lon, exp_lon, atol=1e-3)):
        raise DataError(
            f"wrong grid: lat {lat.size} values {_span(lat)}, lon {lon.size} values {_span(lon)}; "
            f"expected the {resolution}° grid with lat {exp_lat.size} values {_span(exp_lat)} "
            f"and lon {exp_lon.size} values {_span(exp_lon)}", path=path)


def _span(a: np.ndarray) -> str:
    return f"{a.min():g}..{a.max():g}" if a.size else "(none)"


# --------------------------------------------------------------------------------------------------
# assembling the canonical DataArray


def make_fields(data: Any, times: Any, channels: Sequence[str], units: Sequence[str], *,
                grid: str, source: str, root: str | os.PathLike,
                lat: Any = None, lon: Any = None, ny: int | None = None, nx: int | None = None,
                cadence: str | None = None, time_coords: Mapping[str, Any] | None = None,
                attrs: Mapping[str, Any] | None = None, path: str | os.PathLike | None = None) -> "xr.DataArray":
    """Build the canonical ``fields`` DataArray.

    ``data`` is a numpy or dask array of shape ``(time, channel, lat, lon)`` (``grid="latlon"``, with
    ``lat``/``lon`` values, already ascending) or ``(time, channel, y, x)`` (``grid="city"``).  It is
    cast to float32 (lazily for dask).  ``times`` must be strictly increasing (checked here).
    ``cadence`` defaults to the inferred step (:func:`infer_cadence`).  ``time_coords`` are extra 1-D
    coordinates along ``time``.  ``path`` names the file in error messages (default ``root``).
    """
    import xarray as xr

    where = path if path is not None else root
    times = check_times(times, where)
    if grid not in ("latlon", "city"):
        raise ValueError(f"grid must be 'latlon' or 'city', got {grid!r}")
    channels = [str(c) for c in channels]
    if len(set(channels)) != len(channels):
        raise DataError(f"duplicated channel names {channels}", path=where)
    if len(units) != len(channels):
        raise ValueError("one unit per channel")
    if data.ndim != 4:
        raise DataError(f"expected 4-D (time, channel, ...) data, got shape {tuple(data.shape)}", path=where)
    if data.shape[0] != times.size or data.shape[1] != len(channels):
        raise DataError(f"data shape {tuple(data.shape)} does not match {times.size} times × {len(channels)} channels",
                        path=where)
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    coords: dict[str, Any] = {"time": ("time", times), "channel": ("channel", channels),
                              "units": ("channel", [str(u) for u in units])}
    if grid == "latlon":
        dims = LATLON_DIMS
        lat = np.asarray(lat, dtype="float64")
        lon = np.asarray(lon, dtype="float64")
        if data.shape[2:] != (lat.size, lon.size):
            raise DataError(f"data shape {tuple(data.shape)} does not match grid {lat.size}×{lon.size}", path=where)
        coords["lat"] = ("lat", lat)
        coords["lon"] = ("lon", lon)
    else:
        dims = CITY_DIMS
        ny = data.shape[2] if ny is None else ny
        nx = data.shape[3] if nx is None else nx
        coords["y"] = ("y", np.arange(ny))
        coords["x"] = ("x", np.arange(nx))
    for name, values in (time_coords or {}).items():
        values = np.asarray(values)
        if values.shape != (times.size,):
            raise ValueError(f"time coordinate {name!r} has shape {values.shape}, expected ({times.size},)")
        coords[name] = ("time", values)
    if cadence is None:
        step, _ = infer_cadence(times)
        cadence = iso_duration(step) if step else ""
    all_attrs = {"source": source, "grid": grid, "root": os.fspath(root), "cadence": cadence}
    all_attrs.update(attrs or {})
    return xr.DataArray(data, dims=dims, coords=coords, name=FIELDS_NAME, attrs=all_attrs)


def validate_fields(da: "xr.DataArray", path: str | os.PathLike | None = None) -> "xr.DataArray":
    """Check that ``da`` is in canonical form (dims, dtype, time axis, channel units, grid, attrs).

    Returns ``da`` unchanged; raises :class:`DataError` (naming ``path`` or ``da.attrs["root"]``)
    otherwise.  Values are not scanned here (see :func:`guard_finite`).
    """
    where = path if path is not None else da.attrs.get("root")
    if tuple(da.dims) not in (LATLON_DIMS, CITY_DIMS):
        raise DataError(f"dims {tuple(da.dims)} are not {LATLON_DIMS} or {CITY_DIMS}", path=where)
    if da.dtype != np.float32:
        raise DataError(f"dtype {da.dtype} is not float32", path=where)
    check_times(da["time"].values, where)
    if "units" not in da.coords or da["units"].dims != ("channel",):
        raise DataError("missing 'units' coordinate along channel", path=where)
    if tuple(da.dims) == LATLON_DIMS:
        lat = da["lat"].values
        lon = da["lon"].values
        if lat.size > 1 and not (np.diff(lat) > 0).all():
            raise DataError("lat is not strictly ascending", path=where)
        if lon.size and (lon.min() < 0 or lon.max() >= 360):
            raise DataError("lon is not within [0, 360)", path=where)
    for key in ("source", "grid", "root", "cadence"):
        if key not in da.attrs:
            raise DataError(f"missing attribute {key!r}", path=where)
    return da


def select_years(times: np.ndarray, years: Iterable[int] | None) -> np.ndarray:
    """Boolean mask of ``times`` whose calendar year is in ``years`` (all True for ``None``)."""
    times = np.asarray(times).astype("datetime64[ns]")
    if years is None:
        return np.ones(times.shape, dtype=bool)
    yrs = times.astype("datetime64[Y]").astype(int) + 1970
    return np.isin(yrs, np.asarray(sorted(set(int(y) for y in years)), dtype=int))


def normalize_years(years: Iterable[int] | int | None) -> list[int] | None:
    """``None`` → ``None``; an int or iterable of ints → sorted unique list (bad values → DataError)."""
    if years is None:
        return None
    if isinstance(years, (int, np.integer)):
        years = [int(years)]
    try:
        out = sorted({int(y) for y in years})
    except (TypeError, ValueError):
        raise DataError(f"years must be integers, got {years!r}") from None
    if not out:
        raise DataError("empty list of years")
    return out


def normalize_variables(variables: Sequence[str] | str | None) -> list[str] | None:
    """``None`` → ``None``; ``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]`` (duplicates removed, order kept)."""
    if variables is None:
        return None
    if isinstance(variables, str):
        variables = [v for v in variables.split(",")]
    out: list[str] = []
    for v in variables:
        v = str(v).strip()
        if v and v not in out:
            out.append(v)
    if not out:
        raise DataError("empty list of variables")
    return out


# --------------------------------------------------------------------------------------------------
# in-memory test double


class RandomSource:
    """In-memory :class:`FieldSource` (a test double, not in the registry): seeded Gaussian fields.

    ``open(root, variables, years, n_times=8, grid="latlon", shape=(32, 64), cadence="PT1H",
    start="2016-01-01", seed=0)`` returns canonical ``fields`` of ``n_times`` steps from ``start`` (the
    ``years`` argument keeps only those years), channels ``variables`` (default ``["a", "b"]``, units
    ``"1"``) on the WeatherBench grid for ``shape=(32, 64)`` (else an equiangular grid of that shape) or
    a ``y``/``x`` city grid.  ``root`` is only recorded in ``attrs``.
    """

    name = "random"

    def open(self, root: str | os.PathLike = "<memory>", variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, n_times: int = 8, grid: str = "latlon",
             shape: tuple[int, int] = (32, 64), cadence: str = "PT1H", start: str = "2016-01-01",
             seed: int = 0, **kw: Any) -> "xr.DataArray":
        if kw:
            raise DataError(f"random: unknown option(s) {', '.join(sorted(kw))}")
        channels = list(variables or ["a", "b"])
        step = np.timedelta64(duration_seconds(cadence), "s")
        times = (np.datetime64(start, "ns") + np.arange(n_times) * step).astype("datetime64[ns]")
        keep = select_years(times, years)
        rng = np.random.default_rng(seed)
        data = rng.standard_normal((int(keep.sum()), len(channels)) + tuple(shape)).astype(np.float32)
        if grid == "latlon":
            lat = -90 + 90.0 / shape[0] + (180.0 / shape[0]) * np.arange(shape[0])
            lon = (360.0 / shape[1]) * np.arange(shape[1])
            return make_fields(data, times[keep], channels, ["1"] * len(channels), grid="latlon", source=self.name,
                               root=root, lat=lat, lon=lon, cadence=cadence)
        return make_fields(data, times[keep], channels, ["1"] * len(channels), grid="city", source=self.name,
                           root=root, cadence=cadence)
