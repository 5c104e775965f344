"""Forecast windows cut from canonical fields: a map-style dataset of ``(X, Y)`` pairs for
``torch.utils.data.DataLoader`` (which needs only ``__len__`` and ``__getitem__``).  torch itself is imported
on the first item, so that reading data (the dashboard's first page) does not wait for it.

Time axis.  The ``time`` axis is expected to be regular at the cadence ``Δ`` (the ``cadence``
attribute, an ISO 8601 duration such as ``"PT1H"``; if absent, the most common positive difference
between consecutive times).  Each time is mapped to a *slot* ``k = (t − t_origin) / Δ`` where
``t_origin`` is the earliest time on the dominant phase of the grid.  A slot is *usable* when exactly one
time falls on it: missing slots (gaps), duplicated slots (two samples with the same time) and samples
off the cadence grid are never used.

Windows.  With ``t_in`` input frames, ``t_out`` target frames and ``step`` ``s`` (temporal subsampling
inside a window), the window starting at slot ``k`` uses

    input  slots  k, k + s, …, k + (t_in − 1)·s
    target slots  k + t_in·s, …, k + (t_in + t_out − 1)·s

and is valid only if **every** slot of its span ``k … k + (t_in + t_out − 1)·s`` (including the slots
skipped by ``step``) is usable: a window never spans a gap or a duplicated/missing slot.  Valid starts
are further restricted to ``k ≡ 0 (mod stride)``, i.e. the ``stride`` grid is anchored at the origin of
the time axis, so a gap never shifts the phase of later windows.

Items.  ``dataset[i]`` is a dict with ``x`` ``(T_in, C, H, W)`` and ``y`` ``(T_out, C, H, W)`` float32
tensors (normalised when a :class:`~core.data.normalize.Normalizer` is given), ``index`` ``i`` and
``t0``, the ISO 8601 string of the first target time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.data.base import format_cadence, iso, parse_cadence  # noqa: F401  (re-exported)
from core.errors import DataError

LATLON_DIMS = ("lat", "lon")
CITY_DIMS = ("y", "x")


def canonical_fields(fields: Any, what: str = "fields") -> Any:
    """Check that ``fields`` is a canonical DataArray and return it transposed to canonical order.

    Canonical: dims ``(time, channel, lat, lon)`` or ``(time, channel, y, x)`` (any order on input),
    a ``datetime64`` time axis.  Raises :class:`DataError` naming the problem otherwise.
    """
    import xarray as xr

    if not isinstance(fields, xr.DataArray):
        raise DataError(f"{what}: expected an xarray.DataArray, got {type(fields).__name__}")
    dims = set(fields.dims)
    for grid in (LATLON_DIMS, CITY_DIMS):
        if dims == {"time", "channel", *grid}:
            fields = fields.transpose("time", "channel", *grid)
            break
    else:
        raise DataError(
            f"{what}: dims {tuple(fields.dims)} are not (time, channel, lat, lon) or (time, channel, y, x)"
        )
    if not np.issubdtype(fields["time"].dtype, np.datetime64):
        raise DataError(f"{what}: the time coordinate is not datetime64 (got {fields['time'].dtype})")
    return fields


def _slot_grid(times_ns: np.ndarray, cadence_ns: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Map times (int64 ns) onto slots of a regular grid.

    Returns ``(slot_row, usable, origin_ns)``: ``slot_row[k]`` is the row of the unique sample on slot
    ``k`` (−1 if none or duplicated), ``usable[k]`` whether slot ``k`` holds exactly one sample.
    """
    t_min = int(times_ns.min())
    rel = times_ns - t_min
    residue = rel % cadence_ns
    values, counts = np.unique(residue, return_counts=True)
    phase = int(values[np.argmax(counts)])  # dominant phase of the grid
    on_grid = residue == phase
    slots = (rel - phase) // cadence_ns
    first = int(slots[on_grid].min())
    origin = t_min + phase + first * cadence_ns
    slots = slots - first
    n_slots = int(slots[on_grid].max()) + 1
    rows = np.flatnonzero(on_grid)
    count = np.bincount(slots[on_grid], minlength=n_slots)
    usable = count == 1
    slot_row = np.full(n_slots, -1, dtype=np.int64)
    slot_row[slots[rows]] = rows
    slot_row[~usable] = -1
    return slot_row, usable, origin


class WindowDataset:
    """Input/target windows over a canonical field array (see the module docstring for the rule).

    Args:
        fields: canonical ``xarray.DataArray`` ``(time, channel, H, W)`` (numpy- or dask-backed).
        t_in: number of input frames ``T_in`` (≥ 1).
        t_out: number of target frames ``T_out`` (≥ 1).
        stride: distance between consecutive window starts, in slots of the cadence (≥ 1).
        step: temporal subsampling inside a window, in slots (≥ 1; e.g. 6 on hourly data = 6-hourly).
        normalizer: optional :class:`~core.data.normalize.Normalizer`; its channels must match.
        load: if True (default) the frames used by any window are loaded into memory once (and
            normalised once); if False each item loads only its own frames from the (lazy) array.

    Attributes:
        starts: ``(N,)`` int64 rows of ``fields.time`` where each window's first input frame lies.
        input_rows, target_rows: ``(N, T_in)`` / ``(N, T_out)`` int64 rows of ``fields.time``.
        times: ``(n_time,)`` datetime64[ns] of ``fields``.
        cadence: ``timedelta64[ns]`` slot length.
        channels: channel names; ``grid``: dict spatial dim name → coordinate values.
    """

    def __init__(
        self,
        fields: Any,
        t_in: int,
        t_out: int,
        stride: int = 1,
        step: int = 1,
        normalizer: Any = None,
        *,
        load: bool = True,
    ) -> None:
        fields = canonical_fields(fields)
        for name, value in (("t_in", t_in), ("t_out", t_out), ("stride", stride), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise DataError(f"window setting '{name}' must be an integer ≥ 1, got {value!r}")
        self.t_in, self.t_out, self.stride, self.step = int(t_in), int(t_out), int(stride), int(step)
        self.channels = [str(c) for c in fields["channel"].values]
        if normalizer is not None:
            normalizer.check_channels(self.channels, what="dataset")
        self.normalizer = normalizer
        self.spatial_dims = tuple(fields.dims[2:])
        self.grid = {d: np.asarray(fields[d].values) if d in fields.coords else np.arange(fields.sizes[d])
                     for d in self.spatial_dims}
        self.units = ([str(u) for u in fields["units"].values]
                      if "units" in fields.coords and fields["units"].dims == ("channel",) else None)
        self.attrs = dict(fields.attrs)

        self.times = np.asarray(fields["time"].values).astype("datetime64[ns]")
        if self.times.size == 0:
            raise DataError("window dataset: the fields have no time steps")
        times_ns = self.times.astype(np.int64)
        self.cadence = self._cadence(fields.attrs.get("cadence"), times_ns)
        slot_row, usable, _ = _slot_grid(times_ns, int(self.cadence.astype(np.int64)))

        offsets = np.arange(self.t_in + self.t_out, dtype=np.int64) * self.step
        span = int(offsets[-1]) + 1
        n_slots = slot_row.size
        bad_cum = np.concatenate([[0], np.cumsum(~usable)])
        cand = np.arange(0, max(n_slots - span + 1, 0), self.stride, dtype=np.int64)
        ok = bad_cum[cand + span] - bad_cum[cand] == 0
        start_slots = cand[ok]
        if start_slots.size == 0:
            longest = _longest_run(usable)
            raise DataError(
                f"window dataset: no window of {self.t_in}+{self.t_out} frames at step {self.step} "
                f"(span {span} slots of {format_cadence(self.cadence)}) fits the time axis "
                f"({self.times.size} times from {iso(self.times.min())} to {iso(self.times.max())}; "
                f"longest gap-free run {longest} slots)"
            )
        rows = slot_row[start_slots[:, None] + offsets[None, :]]  # (N, T_in + T_out)
        self.input_rows = rows[:, : self.t_in]
        self.target_rows = rows[:, self.t_in:]
        self.starts = rows[:, 0].copy()

        # exogenous, known-ahead context carried as 1-D coordinates along time
        self._context = {
            str(name): np.asarray(coord.values)
            for name, coord in fields.coords.items()
            if name != "time" and coord.dims == ("time",)
        }

        self.loaded = bool(load)
        if self.loaded:
            used = np.unique(rows)
            data = np.asarray(fields.isel(time=used).values)
            data = data.astype(np.float32, copy=False)
            if not np.all(np.isfinite(data)):
                raise DataError("window dataset: the fields contain NaN or Inf")
            if normalizer is not None:
                data = np.ascontiguousarray(normalizer.apply(data), dtype=np.float32)
            self._data = data
            self._in_idx = np.searchsorted(used, self.input_rows)
            self._out_idx = np.searchsorted(used, self.target_rows)
            self._fields = None
        else:
            self._data = None
            self._fields = fields

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _cadence(attr: Any, times_ns: np.ndarray) -> np.timedelta64:
        if attr is not None and str(attr).strip():
            return parse_cadence(str(attr))
        diffs = np.diff(np.sort(times_ns))
        diffs = diffs[diffs > 0]
        if diffs.size == 0:
            raise DataError(
                "window dataset: cannot infer the cadence (no 'cadence' attribute and fewer than two "
                "distinct times)"
            )
        values, counts = np.unique(diffs, return_counts=True)
        return np.timedelta64(int(values[np.argmax(counts)]), "ns")

    def _frames(self, rows: np.ndarray) -> np.ndarray:
        data = np.asarray(self._fields.isel(time=rows).values).astype(np.float32, copy=False)
        if not np.all(np.isfinite(data)):
            raise DataError(
                f"window dataset: NaN or Inf in the frames at {iso(self.times[rows[0]])}"
            )
        if self.normalizer is not None:
            data = self.normalizer.apply(data).astype(np.float32, copy=False)
        return np.ascontiguousarray(data)

    def _check_index(self, i: int) -> int:
        n = len(self)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"window index must be an integer, got {type(i).__name__}")
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"window index {i} out of range for {n} windows")
        return j

    # ------------------------------------------------------------------ Dataset API
    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Window ``i``: ``{"x": (T_in, C, H, W), "y": (T_out, C, H, W), "index": i, "t0": ISO}`` (tensors)."""
        import torch

        i = self._check_index(i)
        x, y = self._arrays(i)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "index": i,
                "t0": iso(self.times[self.target_rows[i, 0]])}

    def window_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x (T_in, C, H, W), y (T_out, C, H, W))`` of window ``i`` as fresh float32 numpy arrays (normalised
        when the dataset has a normalizer): ``dataset[i]`` without torch."""
        return self._arrays(self._check_index(i))

    def _arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self.loaded:
            x = self._data[self._in_idx[i]]  # fancy indexing: already a fresh copy
            y = self._data[self._out_idx[i]]
        else:
            x = self._frames(self.input_rows[i])  # read (and normalised) into a new array
            y = self._frames(self.target_rows[i])
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)

    def window_times(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_times (T_in,), target_times (T_out,))`` of window ``i`` as datetime64[ns]."""
        i = self._check_index(i)
        return self.times[self.input_rows[i]], self.times[self.target_rows[i]]

    @property
    def start_times(self) -> np.ndarray:
        """``(N,)`` datetime64[ns]: time of each window's first input frame."""
        return self.times[self.starts]

    @property
    def target_start_times(self) -> np.ndarray:
        """``(N,)`` datetime64[ns]: time of each window's first target frame (``t0``)."""
        return self.times[self.target_rows[:, 0]]

    @property
    def target_end_times(self) -> np.ndarray:
        """``(N,)`` datetime64[ns]: time of each window's last target frame."""
        return self.times[self.target_rows[:, -1]]

    @property
    def context_names(self) -> list[str]:
        """Names of the exogenous time coordinates (e.g. ``holiday``, ``temperature``)."""
        return sorted(self._context)

    def time_coord(self, name: str) -> np.ndarray:
        """Values ``(n_time,)`` of the exogenous time coordinate ``name`` over all of ``times``."""
        if name not in self._context:
            raise DataError(f"window dataset: no time coordinate '{name}' (have {self.context_names})")
        return self._context[name]

    def context(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        """Exogenous time-coordinate values over window ``i``.

        Returns ``{name: {"input": (T_in,) values, "target": (T_out,) values}}`` for every non-index
        coordinate along ``time`` (e.g. TaxiBJ ``holiday``, ``temperature``, ``wind_speed``,
        ``weather``); an empty dict when the fields carry none.
        """
        i = self._check_index(i)
        return {
            name: {"input": values[self.input_rows[i]].copy(), "target": values[self.target_rows[i]].copy()}
            for name, values in sorted(self._context.items())
        }

    def __repr__(self) -> str:
        return (
            f"WindowDataset({len(self)} windows, t_in={self.t_in}, t_out={self.t_out}, "
            f"stride={self.stride}, step={self.step}, cadence={format_cadence(self.cadence)}, "
            f"channels={self.channels}, grid={tuple(len(v) for v in self.grid.values())}, "
            f"normalised={self.normalizer is not None}, loaded={self.loaded})"
        )


def _longest_run(usable: np.ndarray) -> int:
    """Length of the longest run of True in a boolean array."""
    if not usable.any():
        return 0
    padded = np.concatenate([[False], usable, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
