"""Simple reference forecasts, fitted on the training split only (design §6).

- :class:`Persistence`: every lead time repeats the last input frame, ``Ŷ[k] = X[T_in − 1]``.
- :class:`Climatology` (weather): the training mean for the target time's calendar group,
  ``Ŷ(t) = mean{ x(s) : s ∈ train, month(s) = month(t), hour(s) = hour(t) }``; a group absent from the
  training split falls back to the month mean, then to the overall training mean.
- :class:`HistoricalAverage` (crowd flow, the ST-ResNet "HA"): the training mean of the same day of
  the week and the same time-of-day slot, ``Ŷ(t) = mean{ x(s) : weekday(s) = weekday(t),
  slot(s) = slot(t) }``, falling back to the slot mean, then the overall mean.

Each satisfies the :class:`core.forecaster.Forecaster` protocol: ``predict(window)`` takes an input window
in physical units (canonical ``xarray.DataArray`` ``(time, channel, H, W)`` of ``t_in`` frames) and returns
the ``t_out`` target frames as a DataArray; :meth:`forecast_times` gives the raw array for given target
times.  Fitted tables are saved in a run directory like any model (``model.safetensors`` + ``model.json``)
and :func:`core.forecaster.load_forecaster` loads them back.  ``s2kd train ... model.name=climatology``
fits one from a training config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core.errors import DataError, UserError


def _times(values) -> np.ndarray:
    return np.asarray(values).astype("datetime64[ns]")


def _month_hour(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _times(times)
    months = (t.astype("datetime64[M]").astype(np.int64) % 12) + 1
    hours = ((t - t.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(np.int64)
    return months, hours


def _weekday_slot(times: np.ndarray, cadence: np.timedelta64) -> tuple[np.ndarray, np.ndarray]:
    t = _times(times)
    days = t.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    slot = ((t - days) // cadence).astype(np.int64)
    return weekday, slot


class _Base:
    name = "baseline"

    def __init__(self, t_in: int, t_out: int, channels: Sequence[str], description: Mapping[str, Any] | None = None):
        self.t_in, self.t_out = int(t_in), int(t_out)
        self.channels = [str(c) for c in channels]
        self.description = dict(description or {})
        self.uses_text = False

    # ---------------------------------------------------------------- the Forecaster protocol
    def predict(self, x, narrative=None):
        """Input window (DataArray, physical units) → DataArray of the ``t_out`` target frames."""
        import xarray as xr

        if narrative is not None:
            raise UserError(f"{self.name} has no text path (drop the narrative)")
        if not isinstance(x, xr.DataArray):
            raise UserError(f"{self.name} needs a labelled input window (xarray.DataArray with times)")
        from core.data.windows import canonical_fields
        from core.train.data import check_compatible

        x = canonical_fields(x, what="input window")
        if self.description.get("dims"):
            check_compatible(self.description, x, what="input window")
        elif [str(c) for c in x["channel"].values] != self.channels:
            raise DataError(f"input window channels {list(map(str, x['channel'].values))} differ from "
                            f"{self.channels}")
        if x.sizes["time"] != self.t_in:
            raise DataError(f"input window has {x.sizes['time']} frames, {self.name} takes {self.t_in}")
        times = _times(x["time"].values)
        target = times[-1] + self._delta(x) * np.arange(1, self.t_out + 1)
        values = self._forecast(np.asarray(x.values, dtype=np.float32), target)
        coords = {"time": target, "channel": x["channel"].values}
        for d in x.dims[2:]:
            coords[d] = x[d].values
        if "units" in x.coords:
            coords["units"] = ("channel", x["units"].values)
        return xr.DataArray(values.astype(np.float32), dims=x.dims, coords=coords, name="forecast",
                            attrs={**x.attrs, "model": self.name})

    def _delta(self, x) -> np.timedelta64:
        from core.data.windows import parse_cadence

        cadence = x.attrs.get("cadence") or self.description.get("cadence")
        step = int(self.description.get("step", 1))
        if cadence:
            return parse_cadence(cadence) * step
        times = _times(x["time"].values)
        if times.size < 2:
            raise DataError("cannot infer the forecast times: one input frame and no cadence")
        return times[-1] - times[-2]

    def _forecast(self, frames: np.ndarray, target_times: np.ndarray) -> np.ndarray:
        return self.forecast_times(target_times)

    # ---------------------------------------------------------------- saving
    def _tensors(self) -> dict[str, np.ndarray]:
        return {}

    def _config(self) -> dict[str, Any]:
        return {}

    def save(self, run_dir: str | os.PathLike, normalizer=None) -> None:
        """Write ``model.safetensors`` + ``model.json`` into ``run_dir`` (atomically, no pickle)."""
        import torch

        from core import checkpoint as ckpt

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self._tensors().items()}
        if not tensors:
            tensors = {"_": torch.zeros(1)}
        meta = {"model": {"name": self.name, "config": {"t_in": self.t_in, "t_out": self.t_out,
                                                       "channels": self.channels, **self._config()}},
                "data": self.description, "normalizer": None if normalizer is None else normalizer.to_json(),
                "metrics": {}, "training": {"method": "fit", "baseline": True}}
        ckpt.save_model(run_dir, tensors, meta)


class Persistence(_Base):
    """``Ŷ[k] = X[T_in − 1]`` for every lead time ``k`` (works on normalised tensors as well)."""

    name = "persistence"

    def predict(self, x, narrative=None):
        try:
            import xarray as xr

            if isinstance(x, xr.DataArray):
                return super().predict(x, narrative)
        except ImportError:  # pragma: no cover
            pass
        if narrative is not None:
            raise UserError("persistence has no text path (drop the narrative)")
        import torch

        if isinstance(x, torch.Tensor):
            last = x[..., -1:, :, :, :]
            return last.expand(*x.shape[:-4], self.t_out, *x.shape[-3:]).clone()
        arr = np.asarray(x)
        return np.repeat(arr[..., -1:, :, :, :], self.t_out, axis=-4)

    def _forecast(self, frames, target_times):
        return np.repeat(frames[-1:], self.t_out, axis=0)

    def forecast_times(self, target_times):
        raise UserError("persistence needs the input frames, not only the target times")


class _GroupMean(_Base):
    """Mean of the training fields per calendar group, with two fallback levels."""

    #: (group id arrays for times) → implemented by subclasses
    def _groups(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, train_fields) -> "_GroupMean":
        """Fit on the training split (canonical DataArray, physical units)."""
        from core.data.windows import canonical_fields

        fields = canonical_fields(train_fields, what=f"{self.name} training fields")
        if [str(c) for c in fields["channel"].values] != self.channels:
            raise DataError(f"training channels {list(map(str, fields['channel'].values))} differ from {self.channels}")
        times = _times(fields["time"].values)
        if times.size == 0:
            raise DataError(f"{self.name}: the training split is empty")
        g1, g2 = self._groups(times)
        data = np.asarray(fields.values, dtype=np.float64)
        if not np.all(np.isfinite(data)):
            raise DataError(f"{self.name}: NaN or Inf in the training fields")
        self.overall = data.mean(axis=0).astype(np.float32)
        self.coarse = {int(a): data[g1 == a].mean(axis=0).astype(np.float32) for a in np.unique(g1)}
        self.fine = {(int(a), int(b)): data[(g1 == a) & (g2 == b)].mean(axis=0).astype(np.float32)
                     for a, b in set(zip(g1.tolist(), g2.tolist()))}
        self.counts = {"fine": len(self.fine), "coarse": len(self.coarse), "train_times": int(times.size)}
        return self

    def forecast_times(self, target_times) -> np.ndarray:
        """``(T, C, H, W)`` forecast for the given target times (physical units)."""
        if not hasattr(self, "overall"):
            raise UserError(f"{self.name} is not fitted (call fit(train_fields))")
        g1, g2 = self._groups(_times(target_times))
        out = []
        for a, b in zip(g1.tolist(), g2.tolist()):
            out.append(self.fine.get((a, b), self.coarse.get(a, self.overall)))
        return np.stack(out).astype(np.float32)

    def _tensors(self) -> dict[str, np.ndarray]:
        keys = sorted(self.fine)
        ckeys = sorted(self.coarse)
        return {"overall": self.overall,
                "fine": np.stack([self.fine[k] for k in keys]) if keys else np.zeros((0, *self.overall.shape), np.float32),
                "fine_keys": np.asarray(keys, dtype=np.int64).reshape(-1, 2),
                "coarse": np.stack([self.coarse[k] for k in ckeys]) if ckeys else np.zeros((0, *self.overall.shape), np.float32),
                "coarse_keys": np.asarray(ckeys, dtype=np.int64)}

    def _load_tensors(self, t: Mapping[str, np.ndarray]) -> None:
        self.overall = np.asarray(t["overall"], dtype=np.float32)
        self.fine = {(int(a), int(b)): np.asarray(v, np.float32) for (a, b), v in zip(t["fine_keys"], t["fine"])}
        self.coarse = {int(a): np.asarray(v, np.float32) for a, v in zip(t["coarse_keys"], t["coarse"])}


class Climatology(_GroupMean):
    """Mean by (month, hour of day) over the training split → month → overall (weather)."""

    name = "climatology"

    def _groups(self, times):
        return _month_hour(times)


class HistoricalAverage(_GroupMean):
    """Mean by (day of week, time-of-day slot) over the training split → slot → overall (crowd flow)."""

    name = "historical-average"

    def __init__(self, t_in, t_out, channels, description=None, cadence: str | None = None):
        super().__init__(t_in, t_out, channels, description)
        from core.data.windows import parse_cadence

        self.cadence = cadence or self.description.get("cadence") or "PT30M"
        self._cad = parse_cadence(self.cadence)

    def _groups(self, times):
        weekday, slot = _weekday_slot(times, self._cad)
        # coarse level = slot (weekday-independent), fine = (slot, weekday)
        return slot, weekday

    def _config(self):
        return {"cadence": self.cadence}


BASELINES: dict[str, type[_Base]] = {cls.name: cls for cls in (Persistence, Climatology, HistoricalAverage)}


def fit_baseline(name: str, train_fields, t_in: int, t_out: int, description: Mapping[str, Any] | None = None):
    """Build and fit baseline ``name`` on the training split."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise UserError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None
    channels = [str(c) for c in train_fields["channel"].values]
    model = cls(t_in, t_out, channels, description)
    if isinstance(model, _GroupMean):
        model.fit(train_fields)
    return model


def load_baseline(run_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None):
    """Rebuild a baseline saved by :meth:`_Base.save` (DataError on malformed files)."""
    from core import checkpoint as ckpt

    run_dir = Path(run_dir)
    meta = meta or ckpt.load_model_meta(run_dir)
    name = meta["model"]["name"]
    cfg = dict(meta["model"].get("config") or {})
    if name not in BASELINES:
        raise DataError(f"{name!r} is not a baseline", path=run_dir / ckpt.MODEL_JSON)
    try:
        kwargs = {"cadence": cfg["cadence"]} if name == "historical-average" else {}
        model = BASELINES[name](cfg["t_in"], cfg["t_out"], cfg["channels"], meta.get("data"), **kwargs)
        if isinstance(model, _GroupMean):
            tensors = ckpt.load_model_weights(run_dir, meta, framework="np")  # numpy: no torch needed
            model._load_tensors(tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed baseline ({exc})", path=run_dir / ckpt.MODEL_JSON) from None
    model.run_dir = run_dir
    model.meta = dict(meta)
    return model
