"""TaxiBJ readers: the DeepST/ST-ResNet HDF5 files and OpenSTL's ``dataset.npz``.

HDF5 layout (Zhang et al., ST-ResNet; one file per period)::

    {root}/BJ13_M32x32_T30_InOut.h5   data (N, 2, 32, 32) float64 [0 = inflow, 1 = outflow]
    {root}/BJ14_M32x32_T30_InOut.h5   date (N,) |S10  b"YYYYMMDDNN", NN = 01…48 half-hour slots
    {root}/BJ15_M32x32_T30_InOut.h5
    {root}/BJ16_M32x32_T30_InOut.h5
    {root}/BJ_Meteorology.h5          date (M,) |S10, Temperature (M,), WindSpeed (M,), Weather (M, 17) one-hot
    {root}/BJ_Holiday.txt             one YYYYMMDD per line

Slot NN starts at ``(NN − 1) × 30 min`` after midnight (``2013070101`` → 2013-07-01T00:00).  Missing
slots stay missing: the time axis keeps its real timestamps with *gaps* (``cadence="PT30M"``; the
window dataset never spans one) -- nothing is shifted or filled.  Duplicated or unsorted dates raise
:class:`DataError`.

``taxibj`` output: canonical ``fields`` ``(time, channel, y, x)`` float32 (channels ``inflow``,
``outflow``, units ``"trips / 30 min"``), dask-backed, with time coordinates ``temperature``
(float32 °C, NaN where the meteorology has no record), ``wind_speed`` (float32, NaN likewise),
``weather`` (int16 category 0…16 = argmax of the one-hot, −1 where missing) and ``holiday`` (bool)
when ``BJ_Meteorology.h5`` / ``BJ_Holiday.txt`` are present.  ``years`` selects by the timestamps'
calendar year (BJ16 spans 2015-11…2016-04).

OpenSTL ``dataset.npz`` (``X_train``, ``Y_train``, ``X_test``, ``Y_test``; ``(N, 4, 2, 32, 32)``,
already scaled to [-1, 1], no timestamps): :func:`load_taxibj_npz` returns the four arrays as float32
``(N, T, C, H, W)`` window arrays.  The ``taxibj-npz`` source gives the same data in canonical form on a
**synthetic time axis** (see :func:`samples_to_fields`): sample ``k`` (train samples first, then test)
becomes the ``T_in + T_out`` consecutive half-hour frames ``X[k]`` then ``Y[k]``, and one empty slot
separates consecutive samples, so a window of ``T_in → T_out`` frames is exactly one original sample and
never spans two.  Time coordinates ``split`` (``"train"``/``"test"``), ``sample`` (index within its
split) and ``frame`` (0…T_in+T_out−1) locate each frame; attrs ``synthetic_time=1``, ``t_in``, ``t_out``
and ``splits`` (``{"train": [first ISO time, last ISO time], "test": [...]}``, usable as date-range
splits) describe it.  Units are ``"1"`` (values as stored).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import check_times, guard_finite, iso, make_fields, open_error, select_years, short_error
from core.errors import DataError

CHANNELS: tuple[str, str] = ("inflow", "outflow")
FLOW_UNITS = "trips / 30 min"
SLOT_MINUTES = 30
SLOTS_PER_DAY = 48
N_WEATHER = 17
SYNTHETIC_EPOCH = "2000-01-01T00:00"

_DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})$")


def parse_slots(dates: Sequence[Any], path: str | os.PathLike | None = None) -> np.ndarray:
    """``[b"2013070101", ...]`` → ``datetime64[ns]`` slot starts; a malformed entry raises DataError."""
    out = np.empty(len(dates), dtype="datetime64[ns]")
    for i, raw in enumerate(dates):
        text = raw.decode("ascii", "replace") if isinstance(raw, (bytes, np.bytes_)) else str(raw)
        text = text.strip()
        m = _DATE_RE.match(text)
        if not m or not 1 <= int(m.group(4)) <= SLOTS_PER_DAY:
            raise DataError(f"date #{i} {text!r} is not YYYYMMDDNN with NN in 01..48", path=path)
        try:
            day = np.datetime64(f"{m.group(1)}-{m.group(2)}-{m.group(3)}", "ns")
        except ValueError:
            raise DataError(f"date #{i} {text!r} is not a calendar day", path=path) from None
        out[i] = day + np.timedelta64((int(m.group(4)) - 1) * SLOT_MINUTES, "m")
    return out


def _open_h5(path: Path):
    import h5py

    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        return h5py.File(path, "r")
    except Exception as exc:  # OSError for non-HDF5 or truncated files
        raise open_error(exc, path, "HDF5") from None


def _dataset(f, name: str, path: Path):
    if name not in f:
        raise DataError(f"dataset {name!r} not found (has: {', '.join(f.keys()) or 'none'})", path=path)
    return f[name]


@contextlib.contextmanager
def _h5_errors(path: Path):
    """Re-raise any h5py/numpy error met while reading a file's datasets (corrupt object headers, sizes
    or dtypes: KeyError, OSError, ValueError, TypeError...) as a one-line DataError naming ``path``."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read HDF5 file: truncated, damaged or wrong dtype ({type(exc).__name__}: "
                        f"{short_error(exc)})", path=path) from None


class H5Rows:
    """Lazy rows ``rows`` of an HDF5 dataset ``(N, ...)`` for ``dask.array.from_array``.

    The file is opened on each read (no handle is kept); read errors and NaN/Inf raise DataError
    naming the file.  Returns float32.
    """

    def __init__(self, path: Path, name: str, rows: np.ndarray, row_shape: tuple[int, ...]):
        self.path, self.name, self.rows = path, name, np.asarray(rows, dtype=np.int64)
        self.shape = (self.rows.size,) + tuple(row_shape)
        self.dtype = np.dtype("float32")
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        rows = self.rows[key[0]]
        rest = key[1:]
        if rows.size == 0:
            return np.zeros((0,) + self.shape[1:], np.float32)[(slice(None),) + rest]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        try:
            with _open_h5(self.path) as f:
                block = np.asarray(_dataset(f, self.name, self.path)[lo:hi])
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read {self.name!r} ({type(exc).__name__}: {short_error(exc)})",
                            path=self.path) from None
        block = block[rows - lo][(slice(None),) + rest]
        guard_finite(block, self.path, repr(self.name))
        return block.astype(np.float32, copy=False)


def flow_files(root: Path, size: int) -> list[Path]:
    """``BJ??_M{size}x{size}_T30_InOut.h5`` files in ``root`` (also any ``*_M{size}x{size}_T30_InOut.h5``)."""
    pattern = re.compile(rf"^.*_M{size}x{size}_T30_InOut\.h5$")
    return sorted(p for p in root.iterdir() if pattern.match(p.name) and p.is_file())


def open_flow_h5(root: str | os.PathLike, size: int, source: str, variables: Sequence[str] | None = None,
                 years: Iterable[int] | None = None, chunk: int = 1024):
    """Read the TaxiBJ HDF5 layout at grid ``size`` (32 for TaxiBJ, 128 for TaxiBJ+); see module doc."""
    import dask.array as dska

    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", path=root)
    files = flow_files(root, size)
    if not files:
        others = sorted(p.name for p in root.glob("*_T30_InOut.h5"))
        hint = f" (found {', '.join(others)}: wrong grid size?)" if others else ""
        raise DataError(f"no BJ??_M{size}x{size}_T30_InOut.h5 files{hint}", path=root)
    channels = list(CHANNELS) if variables is None else list(variables)
    for c in channels:
        if c not in CHANNELS:
            raise DataError(f"variable {c!r} not found (TaxiBJ has: {', '.join(CHANNELS)})", path=root)
    ch_idx = [CHANNELS.index(c) for c in channels]

    parts = []  # (first time, path, times, rows)
    for path in files:
        with _h5_errors(path), _open_h5(path) as f:
            data = _dataset(f, "data", path)
            dates = np.asarray(_dataset(f, "date", path)[()])
            shape = tuple(data.shape)
            data_dtype = data.dtype
        if np.dtype(data_dtype).kind not in "biuf":
            raise DataError(f"'data' has dtype {data_dtype}, expected numbers", path=path)
        if len(shape) != 4 or shape[1] != 2 or shape[2:] != (size, size):
            raise DataError(f"'data' has shape {shape}, expected (N, 2, {size}, {size})", path=path)
        if dates.shape != (shape[0],):
            raise DataError(f"'date' has shape {dates.shape}, expected ({shape[0]},) like 'data'", path=path)
        times = check_times(parse_slots(dates, path), path, what="date")
        rows = np.flatnonzero(select_years(times, years))
        if rows.size:
            parts.append((times[rows[0]], path, times[rows], rows))
    if not parts:
        raise DataError(f"no time steps in years {list(years or [])}", path=root)
    parts.sort(key=lambda p: p[0])
    for (_, prev_path, prev_times, _), (_, path, times, _) in zip(parts, parts[1:]):
        if times[0] <= prev_times[-1]:
            raise DataError(f"dates overlap with those of {prev_path.name}", path=path)
    arrays = []
    for _, path, times, rows in parts:
        lazy = H5Rows(path, "data", rows, (2, size, size))
        arr = dska.from_array(lazy, chunks=(min(chunk, rows.size), 2, size, size), asarray=False, fancy=False,
                              name=False)
        arrays.append(arr[:, ch_idx])
    data = dska.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
    times = np.concatenate([p[2] for p in parts])
    time_coords = {}
    time_coords.update(read_meteorology(root / "BJ_Meteorology.h5", times))
    time_coords.update(read_holidays(root / "BJ_Holiday.txt", times))
    return make_fields(data, times, channels, [FLOW_UNITS] * len(channels), grid="city", source=source, root=root,
                       cadence="PT30M", time_coords=time_coords,
                       attrs={"files": [p[1].name for p in parts]})


def read_meteorology(path: Path, times: np.ndarray) -> dict[str, np.ndarray]:
    """``temperature``, ``wind_speed`` (float32, NaN if unknown) and ``weather`` (int16, −1 if unknown)
    for each of ``times`` from ``BJ_Meteorology.h5``; ``{}`` if the file does not exist."""
    if not path.exists():
        return {}
    with _h5_errors(path), _open_h5(path) as f:
        dates = np.asarray(_dataset(f, "date", path)[()])
        temp = np.asarray(_dataset(f, "Temperature", path)[()], dtype=np.float64)
        wind = np.asarray(_dataset(f, "WindSpeed", path)[()], dtype=np.float64)
        weather = np.asarray(_dataset(f, "Weather", path)[()], dtype=np.float64)
    n = dates.shape[0]
    if temp.shape != (n,) or wind.shape != (n,) or weather.ndim != 2 or weather.shape[0] != n \
            or weather.shape[1] != N_WEATHER:
        raise DataError(f"expected date ({n},), Temperature ({n},), WindSpeed ({n},), Weather ({n}, {N_WEATHER}); got "
                        f"{temp.shape}, {wind.shape}, {weather.shape}", path=path)
    met_times = parse_slots(dates, path)
    index = {int(t): i for i, t in enumerate(met_times.astype("int64"))}
    pos = np.array([index.get(int(t), -1) for t in times.astype("int64")], dtype=np.int64)
    found = pos >= 0
    out_t = np.full(times.shape, np.nan, np.float32)
    out_w = np.full(times.shape, np.nan, np.float32)
    out_c = np.full(times.shape, -1, np.int16)
    out_t[found] = temp[pos[found]]
    out_w[found] = wind[pos[found]]
    cat = np.argmax(weather, axis=1).astype(np.int16)
    cat[weather.max(axis=1) <= 0] = -1
    out_c[found] = cat[pos[found]]
    return {"temperature": out_t, "wind_speed": out_w, "weather": out_c}


def read_holidays(path: Path, times: np.ndarray) -> dict[str, np.ndarray]:
    """``holiday`` (bool) for each of ``times`` from ``BJ_Holiday.txt`` (``YYYYMMDD`` lines); ``{}`` if absent."""
    if not path.exists():
        return {}
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read holiday list ({short_error(exc)})", path=path) from None
    days = []
    for i, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if not re.fullmatch(r"\d{8}", text):
            raise DataError(f"line {i}: {text!r} is not YYYYMMDD", path=path)
        try:
            days.append(np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:]}", "D"))
        except ValueError:
            raise DataError(f"line {i}: {text!r} is not a calendar day", path=path) from None
    return {"holiday": np.isin(times.astype("datetime64[D]"), np.array(days, dtype="datetime64[D]"))}


class TaxiBJSource:
    """:class:`core.data.base.FieldSource` for the TaxiBJ HDF5 files (32×32; see module docstring)."""

    name = "taxibj"
    size = 32

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, **kw: Any):
        if kw:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(sorted(kw))}")
        return open_flow_h5(root, self.size, self.name, variables, years)


# --------------------------------------------------------------------------------------------------
# sample arrays (OpenSTL npz, TaxiBJ+ npy) on a synthetic time axis


def load_taxibj_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """OpenSTL's TaxiBJ ``dataset.npz`` (or a folder holding it) → ``{"X_train", "Y_train", "X_test",
    "Y_test"}`` float32 arrays of shape ``(N, T, C, H, W)`` (TaxiBJ: ``T=4``, ``C=2``, ``H=W=32``).

    Checks keys, shapes (X/Y of a split share N, C, H, W) and finiteness; never unpickles.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.npz"
    if not path.is_file():
        raise DataError("file not found", path=path)
    keys = ("X_train", "Y_train", "X_test", "Y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"missing array(s) {', '.join(missing)} (has: {', '.join(npz.files)})", path=path)
            arrays = {k: np.asarray(npz[k]) for k in keys}
    except DataError:
        raise
    except Exception as exc:  # BadZipFile, ValueError (pickled/truncated), OSError
        raise DataError(f"not a readable .npz file ({type(exc).__name__}: {short_error(exc)})", path=path) from None
    for split in ("train", "test"):
        x, y = arrays[f"X_{split}"], arrays[f"Y_{split}"]
        if x.ndim != 5 or y.ndim != 5 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise DataError(f"X_{split} {x.shape} and Y_{split} {y.shape} are not (N, T, C, H, W) with matching "
                            f"N, C, H, W", path=path)
    shapes = {arrays[k].shape[2:] for k in keys}
    if len(shapes) != 1:
        raise DataError(f"train and test frames differ in (C, H, W): {sorted(shapes)}", path=path)
    for k in keys:
        guard_finite(arrays[k], path, k)
        arrays[k] = arrays[k].astype(np.float32, copy=False)
    return arrays


def samples_to_fields(splits: Sequence[tuple[str, Any, Any]], *, source: str, root: str | os.PathLike,
                      channels: Sequence[str], units: str = "1", epoch: str = SYNTHETIC_EPOCH,
                      cadence_minutes: int = SLOT_MINUTES, attrs: dict | None = None):
    """Lay out ``(split, X, Y)`` sample arrays on a synthetic time axis (canonical city form).

    ``X`` is ``(N, T_in, C, H, W)``, ``Y`` ``(N, T_out, C, H, W)`` (numpy or dask).  Sample ``k``
    (counting across splits in the given order) occupies times
    ``epoch + (k·(T_in+T_out+1) + f)·cadence`` for frames ``f = 0…T_in+T_out−1`` (X then Y); the one
    missing step after each sample is a gap, so windows never span two samples.  Adds time coords
    ``split``, ``sample``, ``frame`` and attrs ``synthetic_time``, ``t_in``, ``t_out``, ``splits``.
    """
    import dask.array as dska

    t_in, t_out = int(splits[0][1].shape[1]), int(splits[0][2].shape[1])
    length = t_in + t_out
    step = np.timedelta64(cadence_minutes, "m")
    t0 = np.datetime64(epoch, "ns")
    blocks, times, split_c, sample_c, frame_c, ranges = [], [], [], [], [], {}
    k = 0
    for name, x, y in splits:
        if x.shape[1] != t_in or y.shape[1] != t_out:
            raise DataError(f"{name} samples have {x.shape[1]}→{y.shape[1]} frames, others {t_in}→{t_out}", path=root)
        n = int(x.shape[0])
        if n == 0:
            continue
        xy = dska.concatenate([dska.asarray(x), dska.asarray(y)], axis=1)  # (N, L, C, H, W)
        blocks.append(xy.reshape((n * length,) + tuple(x.shape[2:])))
        starts = (k + np.arange(n)) * (length + 1)
        idx = (starts[:, None] + np.arange(length)[None, :]).ravel()
        tt = t0 + idx * step
        times.append(tt)
        split_c.append(np.full(n * length, name))
        sample_c.append(np.repeat(np.arange(n), length))
        frame_c.append(np.tile(np.arange(length), n))
        ranges[name] = [iso(tt[0]), iso(tt[-1])]
        k += n
    if not blocks:
        raise DataError("no samples", path=root)
    data = dska.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    all_attrs = {"synthetic_time": 1, "t_in": t_in, "t_out": t_out, "splits": ranges}
    all_attrs.update(attrs or {})
    return make_fields(data, np.concatenate(times), list(channels), [units] * len(channels), grid="city",
                       source=source, root=root, cadence=f"PT{cadence_minutes}M",
                       time_coords={"split": np.concatenate(split_c).astype(str),
                                    "sample": np.concatenate(sample_c), "frame": np.concatenate(frame_c)},
                       attrs=all_attrs)


def channel_names(n: int) -> list[str]:
    """Names of ``n`` flow channels: ``inflow``, ``outflow`` (``c0``, ``c1``... for other counts)."""
    return list(CHANNELS) if n == 2 else [f"c{i}" for i in range(n)]


def _pick_channels(channels: Sequence[str] | None, n: int, root: Path) -> list[int]:
    names = channel_names(n)
    if channels is None:
        return list(range(n))
    out = []
    for c in channels:
        if c not in names:
            raise DataError(f"variable {c!r} not found (has: {', '.join(names)})", path=root)
        out.append(names.index(c))
    return out


class TaxiBJNpzSource:
    """:class:`core.data.base.FieldSource` for OpenSTL's TaxiBJ ``dataset.npz`` on a synthetic time axis."""

    name = "taxibj-npz"

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, **kw: Any):
        if kw:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(sorted(kw))}")
        root = Path(root)
        if years is not None:
            raise DataError("dataset.npz has no calendar times; --years does not apply", path=root)
        arrays = load_taxibj_npz(root)
        n_ch = arrays["X_train"].shape[2]
        idx = _pick_channels(variables, n_ch, root)
        names = channel_names(n_ch)
        splits = [(s, arrays[f"X_{s}"][:, :, idx], arrays[f"Y_{s}"][:, :, idx]) for s in ("train", "test")]
        return samples_to_fields(splits, source=self.name, root=root, channels=[names[i] for i in idx])
