"""Per-channel normalisation fitted on the training split only.

For every channel ``c`` the statistics are taken over all times and grid points of the *training*
fields (never validation or test):

    mean_c = (1 / N) Σ_{t,i,j} x[t, c, i, j]
    std_c  = max( sqrt( (1 / N) Σ (x[t, c, i, j] − mean_c)² ),  std_floor )      (population std)

accumulated in float64 chunk by chunk over time (Chan's parallel update of mean and M2, so a lazy dask
array is never loaded whole).  ``apply`` maps ``x → (x − mean_c) / std_c`` and ``invert`` maps
``z → z · std_c + mean_c``, broadcast over arrays shaped ``(…, C, H, W)`` (channel axis −3), on numpy
arrays, torch tensors or xarray objects with a ``channel`` dimension.

The statistics are saved with every model as JSON (``to_json`` / ``save``), so a forecast is always
mapped back to physical units with the numbers it was trained with.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from core.errors import DataError

FORMAT_VERSION = 1
DEFAULT_STD_FLOOR = 1e-6
_FIT_CHUNK = 256  # time steps per float64 block while fitting


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-channel affine normalisation ``z = (x − mean) / std``.

    Attributes:
        channels: channel names, in the order of the channel axis.
        mean: ``(C,)`` float64 per-channel means.
        std: ``(C,)`` float64 per-channel standard deviations (already floored, all > 0).
        units: optional ``(C,)`` unit strings, kept for provenance.
        std_floor: the floor that was applied to ``std`` when fitting.
    """

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    units: tuple[str, ...] | None = None
    std_floor: float = DEFAULT_STD_FLOOR

    def __post_init__(self) -> None:
        channels = tuple(str(c) for c in self.channels)
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if len(channels) == 0:
            raise DataError("normaliser: no channels")
        if len(set(channels)) != len(channels):
            raise DataError(f"normaliser: duplicated channel names {list(channels)}")
        if mean.shape != (len(channels),) or std.shape != (len(channels),):
            raise DataError(
                f"normaliser: {len(channels)} channels but {mean.size} means and {std.size} stds"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise DataError("normaliser: mean/std contain NaN or Inf")
        if np.any(std <= 0):
            bad = [c for c, s in zip(channels, std) if s <= 0]
            raise DataError(f"normaliser: std must be > 0 (channels {bad})")
        units = None if self.units is None else tuple(str(u) for u in self.units)
        if units is not None and len(units) != len(channels):
            raise DataError(f"normaliser: {len(channels)} channels but {len(units)} units")
        mean.setflags(write=False)
        std.setflags(write=False)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "std_floor", float(self.std_floor))

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, fields: Any, std_floor: float = DEFAULT_STD_FLOOR) -> "Normalizer":
        """Fit per-channel mean/std on ``fields`` (pass the **training split only**).

        Args:
            fields: canonical ``xarray.DataArray`` ``(time, channel, H, W)`` (possibly dask-backed).
            std_floor: lower bound for ``std`` so that constant channels do not divide by ~0.

        Raises:
            DataError: not a canonical array, no time steps, or NaN/Inf in the data.
        """
        import xarray as xr

        if not isinstance(fields, xr.DataArray):
            raise DataError(f"normaliser: expected an xarray.DataArray, got {type(fields).__name__}")
        if not (std_floor > 0 and math.isfinite(std_floor)):
            raise DataError(f"normaliser: std_floor must be a positive number, got {std_floor!r}")
        if "time" not in fields.dims or "channel" not in fields.dims or fields.ndim != 4:
            raise DataError(
                f"normaliser: expected dims (time, channel, H, W), got {tuple(fields.dims)}"
            )
        spatial = [d for d in fields.dims if d not in ("time", "channel")]
        fields = fields.transpose("time", "channel", *spatial)
        n_time, n_chan = fields.sizes["time"], fields.sizes["channel"]
        if n_time == 0:
            raise DataError("normaliser: the training split has no time steps")
        channels = [str(c) for c in fields["channel"].values]

        count = 0
        mean = np.zeros(n_chan, dtype=np.float64)
        m2 = np.zeros(n_chan, dtype=np.float64)
        for t0 in range(0, n_time, _FIT_CHUNK):
            block = np.asarray(fields.isel(time=slice(t0, t0 + _FIT_CHUNK)).values, dtype=np.float64)
            if not np.all(np.isfinite(block)):
                bad = [channels[c] for c in range(n_chan) if not np.all(np.isfinite(block[:, c]))]
                raise DataError(f"normaliser: NaN or Inf in the training data (channels {bad})")
            per = block.transpose(1, 0, 2, 3).reshape(n_chan, -1)  # (C, n)
            n_b = per.shape[1]
            mean_b = per.mean(axis=1)
            m2_b = ((per - mean_b[:, None]) ** 2).sum(axis=1)
            total = count + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
        std = np.maximum(np.sqrt(m2 / count), std_floor)

        units = None
        if "units" in fields.coords and fields["units"].dims == ("channel",):
            units = [str(u) for u in fields["units"].values]
        return cls(tuple(channels), mean, std, units=None if units is None else tuple(units),
                   std_floor=std_floor)

    # ------------------------------------------------------------------ checks
    def check_channels(self, channels: Sequence[str], what: str = "data") -> None:
        """Raise :class:`DataError` unless ``channels`` equals this normaliser's channels (in order)."""
        names = [str(c) for c in channels]
        if names != list(self.channels):
            raise DataError(
                f"normaliser channels {list(self.channels)} do not match the {what} channels {names}"
            )

    def _check_axis(self, n: int, shape: tuple) -> None:
        if len(shape) < 3 or n != len(self.channels):
            raise DataError(
                f"normaliser has {len(self.channels)} channels {list(self.channels)} but the array of "
                f"shape {tuple(shape)} has {n if len(shape) >= 3 else 'no'} channels on axis -3"
            )

    # ------------------------------------------------------------------ transforms
    def apply(self, x: Any) -> Any:
        """Normalise: ``(x − mean_c) / std_c``; ``x`` is ``(…, C, H, W)`` numpy / torch / xarray."""
        return self._affine(x, invert=False)

    def invert(self, z: Any) -> Any:
        """Back to physical units: ``z · std_c + mean_c``; ``z`` is ``(…, C, H, W)``."""
        return self._affine(z, invert=True)

    def _affine(self, x: Any, invert: bool) -> Any:
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
        if torch is not None and isinstance(x, torch.Tensor):
            self._check_axis(x.shape[-3] if x.ndim >= 3 else -1, tuple(x.shape))
            dtype = x.dtype if x.is_floating_point() else torch.float32
            mean = torch.tensor(self.mean.tolist(), dtype=dtype, device=x.device).view(-1, 1, 1)
            std = torch.tensor(self.std.tolist(), dtype=dtype, device=x.device).view(-1, 1, 1)
            x = x.to(dtype)
            return x * std + mean if invert else (x - mean) / std

        import xarray as xr

        if isinstance(x, xr.DataArray):
            if "channel" not in x.dims:
                raise DataError(f"normaliser: array has no 'channel' dimension (dims {x.dims})")
            if "channel" in x.coords:
                self.check_channels(x["channel"].values)
            elif x.sizes["channel"] != len(self.channels):
                self.check_channels([f"#{i}" for i in range(x.sizes["channel"])])
            dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
            mean = xr.DataArray(self.mean.astype(dtype), dims=["channel"])
            std = xr.DataArray(self.std.astype(dtype), dims=["channel"])
            out = x.astype(dtype)
            out = out * std + mean if invert else (out - mean) / std
            return out.assign_attrs(x.attrs)

        arr = np.asarray(x)
        self._check_axis(arr.shape[-3] if arr.ndim >= 3 else -1, arr.shape)
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
        mean = self.mean.astype(dtype)[:, None, None]
        std = self.std.astype(dtype)[:, None, None]
        arr = arr.astype(dtype, copy=False)
        return arr * std + mean if invert else (arr - mean) / std

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"version", "channels", "mean", "std", "std_floor", "units"}``."""
        return {
            "version": FORMAT_VERSION,
            "channels": list(self.channels),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "std_floor": self.std_floor,
            "units": None if self.units is None else list(self.units),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any] | str, source: str | os.PathLike | None = None) -> "Normalizer":
        """Rebuild from :meth:`to_json` output (a dict or its JSON text); bad content → DataError."""
        if isinstance(obj, (str, bytes)):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise DataError(f"normaliser: invalid JSON ({exc.msg} at line {exc.lineno})", path=source)
        if not isinstance(obj, dict):
            raise DataError("normaliser: expected a JSON object", path=source)
        version = obj.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise DataError(f"normaliser: unsupported format version {version!r}", path=source)
        missing = [k for k in ("channels", "mean", "std") if k not in obj]
        if missing:
            raise DataError(f"normaliser: missing key(s) {missing}", path=source)
        unknown = sorted(set(obj) - {"version", "channels", "mean", "std", "std_floor", "units"})
        if unknown:
            raise DataError(f"normaliser: unknown key(s) {unknown}", path=source)
        try:
            mean = np.asarray(obj["mean"], dtype=np.float64)
            std = np.asarray(obj["std"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("normaliser: 'mean' and 'std' must be lists of numbers", path=source)
        if not isinstance(obj["channels"], list) or not all(isinstance(c, str) for c in obj["channels"]):
            raise DataError("normaliser: 'channels' must be a list of strings", path=source)
        try:
            return cls(
                tuple(obj["channels"]), mean, std,
                units=None if obj.get("units") is None else tuple(obj["units"]),
                std_floor=float(obj.get("std_floor", DEFAULT_STD_FLOOR)),
            )
        except DataError as exc:
            raise DataError(str(exc), path=source) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically (``core.io.atomic_write_json``)."""
        from core.io import atomic_write_json

        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        """Read a file written by :meth:`save`; missing/unreadable/invalid file → DataError."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise DataError("normaliser file not found", path=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read normaliser file ({exc.__class__.__name__})", path=path) from None
        return cls.from_json(text, source=path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return (
            self.channels == other.channels
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.std, other.std)
            and self.units == other.units
            and self.std_floor == other.std_floor
        )

    __hash__ = None  # type: ignore[assignment]
