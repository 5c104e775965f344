"""Forecast scores per lead time and per channel, accumulated over batches (one implementation each).

Conventions shared by every metric here
---------------------------------------
* Arrays: ``pred`` and ``truth`` of shape ``(N, T_out, C, H, W)`` -- samples, lead times, channels,
  grid rows (latitude or city ``y``), grid columns (longitude or city ``x``).  numpy arrays or torch
  tensors (any device, any float dtype); the one computational path is **numpy float64**: every batch is
  converted with :func:`to_numpy` and every sum is accumulated in float64.
* Streaming: a metric object is updated batch by batch (``update(pred, truth, sample_mask=...,
  climatology=...)``) and holds only small sufficient statistics of shape ``(T_out, C[, K])``; ``compute()``
  then returns the per-lead, per-channel values ``(T_out, C)``.  Batching does not change the result.
* Aggregates (each metric's docstring says which rule applies):
  ``compute()`` → ``(T_out, C)``; ``compute_all_channels()`` → ``(T_out,)``; ``compute_all_leads()`` →
  ``(C,)``; ``compute_overall()`` → float.  By default an aggregate applies the *same formula to the
  sufficient statistics pooled* over the aggregated axis (e.g. RMSE over all leads = sqrt of the mean over
  leads of the MSE, not the mean of per-lead RMSEs); correlation-type and spectral scores take the mean of
  the per-lead / per-channel values instead, since pooling would mix variables with different units.
* Masks: ``sample_mask`` (bool ``(N,)``, per batch) keeps only the selected samples -- run one metric
  object on the non-stationary subset and another on ``~mask`` for the normal rest.  ``region_mask``
  (bool ``(H, W)``, fixed per metric object) restricts every spatial mean/sum to the selected grid points
  (build it with ``core.data.regions.Region.mask(da)`` or by hand).
* Latitude weights (WeatherBench): ``w(lat) = cos(lat) / mean_lat cos(lat)`` (mean 1 over the latitude
  rows).  A weighted spatial mean is ``Σ w·m·x / Σ w·m`` over the region ``m``, which for the full grid
  equals ``mean(w·x)``.
* Frame metrics in OpenSTL's units (``ssim``, ``psnr``, ``openstl_mse``, ``openstl_mae``) work on frames
  scaled to [0, 1] with ``data_range=(lo, hi)``: ``x01 = (x - lo) / (hi - lo)`` (``lo``/``hi`` scalars
  or per-channel sequences); ``data_range=None`` means the arrays already are in [0, 1] (TaxiBJ as
  OpenSTL ships it).  As in OpenSTL's ``metric()``, the *prediction* is clipped to [0, 1] before SSIM
  and PSNR (not before MSE/MAE); the truth is not clipped.

Build metrics by name with :func:`make_metric` (one registry, :data:`METRICS`), many at once with
:class:`MetricSet`, or score whole arrays with :func:`evaluate_arrays` / :func:`evaluate_arrays_json`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from core.errors import ConfigError, DataError

# --------------------------------------------------------------------------------------------------
# helpers


def to_numpy(x: Any, dtype=np.float64) -> np.ndarray:
    """``x`` (numpy array, torch tensor on any device, or nested sequence) as a numpy array of ``dtype``."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu()
        if not x.dtype.is_floating_point and dtype is not bool and dtype is not np.bool_:
            x = x.double()
        elif x.dtype.is_floating_point and x.element_size() < 4:  # bfloat16/float16 have no numpy twin
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def lat_weights(lat: Any) -> np.ndarray:
    """WeatherBench latitude weights ``cos(lat) / mean(cos(lat))`` for latitudes in degrees: shape ``(H,)``."""
    lat = to_numpy(lat).reshape(-1)
    if lat.size == 0 or not np.all(np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
        raise DataError("latitudes must be finite degrees in [-90, 90]")
    w = np.cos(np.deg2rad(lat))
    if w.mean() <= 0:
        raise DataError("latitudes give zero total weight (all at the poles)")
    return w / w.mean()


def _check_pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = to_numpy(pred), to_numpy(truth)
    if p.ndim != 5 or p.shape != t.shape:
        raise DataError(
            f"pred and truth must both have shape (N, T_out, C, H, W); got {p.shape} and {t.shape}")
    return p, t


def _check_sample_mask(sample_mask: Any, n: int) -> np.ndarray | None:
    if sample_mask is None:
        return None
    m = to_numpy(sample_mask, dtype=bool).reshape(-1)
    if m.shape != (n,):
        raise DataError(f"sample_mask must be a boolean vector of length N={n}; got shape {m.shape}")
    return m


def _scale_unit(x: np.ndarray, data_range: Any) -> np.ndarray:
    """Scale ``(..., C, H, W)`` to [0, 1] with ``data_range=(lo, hi)`` (scalars or per-channel); None = as is."""
    if data_range is None:
        return x
    try:
        lo, hi = data_range
    except (TypeError, ValueError):
        raise DataError(f"data_range must be a pair (lo, hi); got {data_range!r}") from None
    lo = to_numpy(lo).reshape(-1)
    hi = to_numpy(hi).reshape(-1)
    c = x.shape[-3]
    if lo.size not in (1, c) or hi.size not in (1, c):
        raise DataError(f"data_range lo/hi must be scalars or have one value per channel ({c})")
    if np.any(hi - lo <= 0):
        raise DataError("data_range must have hi > lo")
    return (x - lo[:, None, None]) / (hi - lo)[:, None, None]


# --------------------------------------------------------------------------------------------------
# registry

METRICS: dict[str, type["Metric"]] = {}


def register_metric(cls: type["Metric"]) -> type["Metric"]:
    """Class decorator: add a :class:`Metric` subclass to :data:`METRICS` under ``cls.name`` (unique)."""
    name = cls.name
    if not name:
        raise ValueError(f"{cls.__name__} has no metric name")
    if name in METRICS:
        raise ValueError(f"metric name {name!r} registered twice ({METRICS[name].__name__}, {cls.__name__})")
    METRICS[name] = cls
    return cls


def _load_builtin() -> None:
    import core.spectral  # noqa: F401  (registers the spectral scores)


def metric_names() -> list[str]:
    """Names of every registered metric."""
    _load_builtin()
    return sorted(METRICS)


def make_metric(name: str, **options: Any) -> "Metric":
    """Build the metric ``name`` with those of ``options`` its constructor accepts (others are ignored)."""
    _load_builtin()
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    cls = METRICS[name]
    params = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in params})


# --------------------------------------------------------------------------------------------------
# base class


class Metric:
    """A streaming score with values per lead time and per channel.

    Subclasses define ``name``, ``_batch_stats(p, t, **kw) -> dict[str, (T, C[, K]) array]`` (sums over
    the batch's samples) and ``_finalize(stats, count) -> array`` (values from pooled statistics, where
    ``count`` has the shape of the stats' first two axes and holds the number of samples).

    ``lead_pool`` / ``channel_pool`` say how aggregates are formed: ``"stats"`` pools the sufficient
    statistics (same formula on the pooled sums), ``"sum"`` (channels only) adds the per-channel values,
    ``"values"`` averages the per-lead / per-channel values.
    """

    name: ClassVar[str] = ""
    needs_lat: ClassVar[bool] = False
    needs_climatology: ClassVar[bool] = False
    lead_pool: ClassVar[str] = "stats"
    channel_pool: ClassVar[str] = "stats"

    def __init__(self, *, region_mask: Any = None):
        self.region_mask = None if region_mask is None else to_numpy(region_mask, dtype=bool)
        if self.region_mask is not None:
            if self.region_mask.ndim != 2:
                raise DataError(f"region_mask must be a boolean (H, W) grid; got shape {self.region_mask.shape}")
            if not self.region_mask.any():
                raise DataError("region_mask selects no grid points")
        self.reset()

    # -- state -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._stats: dict[str, np.ndarray] | None = None
        self._count: np.ndarray | None = None
        self._shape: tuple[int, int, int, int] | None = None  # (T, C, H, W)

    @property
    def n_samples(self) -> int:
        """Number of samples accumulated so far."""
        return 0 if self._count is None else int(self._count[0, 0])

    def update(self, pred: Any, truth: Any, *, sample_mask: Any = None, climatology: Any = None) -> None:
        """Accumulate a batch ``(N, T_out, C, H, W)``; ``sample_mask`` (bool ``(N,)``) selects samples."""
        p, t = _check_pair(pred, truth)
        n, T, C, H, W = p.shape
        if self._shape is None:
            self._check_grid(H, W)
            self._shape = (T, C, H, W)
        elif self._shape != (T, C, H, W):
            raise DataError(f"{self.name}: batch shape (T, C, H, W) = {(T, C, H, W)} differs from the "
                            f"first batch's {self._shape}")
        m = _check_sample_mask(sample_mask, n)
        clim = None
        if self.needs_climatology:
            if climatology is None:
                raise DataError(f"{self.name} needs a climatology (climatology=...)")
            clim = to_numpy(climatology)
            try:
                clim = np.broadcast_to(clim, p.shape)
            except ValueError:
                raise DataError(f"climatology of shape {clim.shape} does not broadcast to the forecast "
                                f"shape {p.shape} (give (C, H, W), (T_out, C, H, W) or (N, T_out, C, H, W))"
                                ) from None
        if m is not None and not m.all():
            if not m.any():
                # nothing selected: make sure the (zero) statistics exist, computed on a dummy sample
                if self._stats is None and n > 0:
                    kw0 = {"climatology": clim[:1]} if clim is not None else {}
                    self._allocate(self._batch_stats(p[:1], t[:1], **kw0), T, C)
                return
            p, t = p[m], t[m]
            if clim is not None:
                clim = clim[m]
        if p.shape[0] == 0:
            return
        stats = self._batch_stats(p, t, **({"climatology": clim} if clim is not None else {}))
        if self._stats is None:
            self._allocate(stats, T, C)
        for k, v in stats.items():
            self._stats[k] += v
        self._count += p.shape[0]

    def _allocate(self, stats: Mapping[str, np.ndarray], T: int, C: int) -> None:
        self._stats = {k: np.zeros_like(v) for k, v in stats.items()}
        self._count = np.zeros((T, C))

    def _check_grid(self, h: int, w: int) -> None:
        if self.region_mask is not None and self.region_mask.shape != (h, w):
            raise DataError(f"region_mask has shape {self.region_mask.shape}, the grid is {(h, w)}")

    def _spatial_weights(self, h: int, w: int) -> np.ndarray:
        """``(H, W)`` weights of a spatial mean: the region mask (1/0), times lat weights if weighted."""
        m = np.ones((h, w)) if self.region_mask is None else self.region_mask.astype(np.float64)
        return m

    def _spatial_mean(self, x: np.ndarray) -> np.ndarray:
        """Weighted mean of ``(..., H, W)`` over the grid: ``Σ w x / Σ w``."""
        w = self._spatial_weights(*x.shape[-2:])
        return np.tensordot(x, w, axes=([-2, -1], [0, 1])) / w.sum()

    # -- subclass hooks --------------------------------------------------------------------------------
    def _batch_stats(self, p: np.ndarray, t: np.ndarray, **kw: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _finalize(self, stats: Mapping[str, np.ndarray], count: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- results -------------------------------------------------------------------------------------
    def _require(self) -> None:
        if self._stats is None:
            raise DataError(f"{self.name}: no data accumulated (call update() first)")

    def _pooled(self, axes: tuple[int, ...]) -> np.ndarray:
        stats = {k: v.sum(axis=axes, keepdims=True) for k, v in self._stats.items()}
        count = self._count.sum(axis=axes, keepdims=True)
        if 1 in axes and self.channel_pool == "sum":
            count = count / self._count.shape[1]  # a mean over channels times C = the sum over channels
        return self._finalize(stats, count)

    def compute(self) -> np.ndarray:
        """Values per lead time and per channel: ``(T_out, C)`` (NaN where no sample was selected)."""
        self._require()
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._finalize(self._stats, self._count)

    def compute_all_channels(self) -> np.ndarray:
        """Values per lead time over all channels: ``(T_out,)`` (rule: ``channel_pool``)."""
        self._require()
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.channel_pool == "values":
                return self.compute().mean(axis=1)
            return self._pooled((1,))[:, 0]

    def compute_all_leads(self) -> np.ndarray:
        """Values per channel over all lead times: ``(C,)`` (rule: ``lead_pool``)."""
        self._require()
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.lead_pool == "values":
                return self.compute().mean(axis=0)
            return self._pooled((0,))[0]

    def compute_overall(self) -> float:
        """One number over all leads and channels."""
        self._require()
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.lead_pool == "stats" and self.channel_pool != "values":
                return float(self._pooled((0, 1)).reshape(()))
            if self.lead_pool == "stats":  # channel values
                return float(self.compute_all_leads().mean())
            return float(self.compute_all_channels().mean())

    def to_json(self, channel_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-friendly summary (non-finite numbers become ``None``)::

            {"per_lead": [T floats over all channels], "per_channel": {name: [T floats]},
             "all_leads": {name: float}, "overall": float, "n_samples": int}
        """
        vals = self.compute()
        names = _channel_names(channel_names, vals.shape[1])
        return {
            "per_lead": _json_list(self.compute_all_channels()),
            "per_channel": {c: _json_list(vals[:, i]) for i, c in enumerate(names)},
            "all_leads": {c: _json_float(v) for c, v in zip(names, self.compute_all_leads())},
            "overall": _json_float(self.compute_overall()),
            "n_samples": self.n_samples,
        }


def _channel_names(channel_names: Sequence[str] | None, c: int) -> list[str]:
    if channel_names is None:
        return [f"c{i}" for i in range(c)]
    names = [str(n) for n in channel_names]
    if len(names) != c:
        raise DataError(f"{len(names)} channel names given for {c} channels")
    return names


def _json_float(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _json_list(a: np.ndarray) -> list[float | None]:
    return [_json_float(v) for v in np.asarray(a).reshape(-1)]


class _LatWeighted:
    """Mixin: spatial means use WeatherBench cos-lat weights (needs ``lat``)."""

    needs_lat: ClassVar[bool] = True

    def _init_lat(self, lat: Any) -> None:
        if lat is None:
            raise DataError(f"{self.name} needs the latitudes of the grid rows (lat=...)")
        self.lat = to_numpy(lat).reshape(-1)
        self.weights = lat_weights(self.lat)

    def _check_grid(self, h: int, w: int) -> None:
        if self.lat.shape != (h,):
            raise DataError(f"{self.name}: {self.lat.size} latitudes given for a grid of {h} rows")
        Metric._check_grid(self, h, w)

    def _spatial_weights(self, h: int, w: int) -> np.ndarray:
        return Metric._spatial_weights(self, h, w) * self.weights[:, None]


# --------------------------------------------------------------------------------------------------
# errors in physical units


class _SpatialMeanOfError(Metric):
    """Mean over samples of the (weighted) spatial mean of ``f(pred - truth)`` per lead and channel."""

    def _err(self, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _batch_stats(self, p, t, **kw):
        return {"s": self._spatial_mean(self._err(p - t)).sum(axis=0)}

    def _finalize(self, stats, count):
        return stats["s"] / count


@register_metric
class MSE(_SpatialMeanOfError):
    """Mean squared error per lead and channel.

    ``MSE[t, c] = mean_n mean_{h,w ∈ region} (pred − truth)²`` -- the element-wise mean over samples and
    grid points (physical units²).  All channels / all leads: the mean of the per-channel / per-lead MSE.
    For weather this is OpenSTL's ``mse`` with ``spatial_norm=True`` (element-wise mean, physical units).
    """

    name = "mse"

    def _err(self, d):
        return d * d


@register_metric
class MAE(_SpatialMeanOfError):
    """Mean absolute error: ``MAE[t, c] = mean_n mean_{h,w ∈ region} |pred − truth|``; aggregates are means."""

    name = "mae"

    def _err(self, d):
        return np.abs(d)


@register_metric
class RMSE(MSE):
    """Root mean squared error: the sqrt of the mean over samples and space of the squared error.

    ``RMSE[t, c] = sqrt( mean_n mean_{h,w ∈ region} (pred − truth)² )`` (sqrt taken *after* averaging over
    samples, as WeatherBench).  All leads: ``sqrt(mean_t MSE[t, c])``; all channels: ``sqrt(mean_c MSE[t, c])``.
    """

    name = "rmse"

    def _finalize(self, stats, count):
        return np.sqrt(stats["s"] / count)


@register_metric
class WeightedMSE(_LatWeighted, MSE):
    """Latitude-weighted MSE (WeatherBench).

    ``wMSE[t, c] = mean_n [ Σ_{h,w} w_h m_hw (pred − truth)² / Σ_{h,w} w_h m_hw ]`` with
    ``w_h = cos(lat_h) / mean_h cos(lat_h)`` and ``m`` the region mask (all ones by default, when the
    inner term is ``mean_{h,w} w_h (pred − truth)²``).  Aggregates are means.
    """

    name = "wmse"

    def __init__(self, lat: Any = None, *, region_mask: Any = None):
        self._init_lat(lat)
        super().__init__(region_mask=region_mask)


@register_metric
class WeightedRMSE(_LatWeighted, RMSE):
    """Latitude-weighted RMSE (WeatherBench): the sqrt of the sample-mean of the spatially weighted MSE.

    ``wRMSE[t, c] = sqrt( mean_n [ Σ_{h,w} w_h m_hw (pred − truth)² / Σ_{h,w} w_h m_hw ] )`` with
    ``w_h = cos(lat_h) / mean_h cos(lat_h)``.  The mean over forecast times comes first, then the sqrt
    (WeatherBench 1's ``compute_weighted_rmse`` over all times).  All leads / all channels: the sqrt of the
    pooled weighted MSE.  A constant offset ``c`` gives ``|c|``.
    """

    name = "wrmse"

    def __init__(self, lat: Any = None, *, region_mask: Any = None):
        self._init_lat(lat)
        super().__init__(region_mask=region_mask)


@register_metric
class WeightedMAE(_LatWeighted, MAE):
    """Latitude-weighted MAE: ``wMAE[t, c] = mean_n Σ w_h m_hw |pred − truth| / Σ w_h m_hw``; aggregates are means."""

    name = "wmae"

    def __init__(self, lat: Any = None, *, region_mask: Any = None):
        self._init_lat(lat)
        super().__init__(region_mask=region_mask)


@register_metric
class ACC(_LatWeighted, Metric):
    """Anomaly correlation coefficient against a climatology (WeatherBench definition, cos-lat weighted).

    With ``f = pred − clim`` and ``a = truth − clim`` (``clim`` from the training years, broadcast to the
    forecast: ``(C, H, W)``, ``(T_out, C, H, W)`` or per sample ``(N, T_out, C, H, W)``), per lead ``t`` and
    channel ``c``, over all selected samples ``n`` and region points ``(h, w)``::

        f' = f − mean(f),  a' = a − mean(a)     (plain means over n, h, w; WeatherBench 1's code)
        ACC = Σ w_h f' a' / sqrt( Σ w_h f'² · Σ w_h a'² )

    ``centered=False`` skips the mean removal (``f' = f``, ``a' = a``).  A perfect forecast scores 1, the
    sign-flipped anomaly ``clim − a`` scores −1.  All leads / all channels: the mean of the per-lead /
    per-channel ACC.
    """

    name = "acc"
    needs_climatology = True
    lead_pool = "values"
    channel_pool = "values"

    def __init__(self, lat: Any = None, *, region_mask: Any = None, centered: bool = True):
        self._init_lat(lat)
        self.centered = bool(centered)
        super().__init__(region_mask=region_mask)

    def _batch_stats(self, p, t, *, climatology):
        f = p - climatology
        a = t - climatology
        w = self._spatial_weights(*p.shape[-2:])  # lat weight × region (0/1)
        m = Metric._spatial_weights(self, *p.shape[-2:])  # region only, for the plain means

        def s(x, ww):  # Σ over samples and grid → (T, C)
            return np.tensordot(x, ww, axes=([-2, -1], [0, 1])).sum(axis=0)

        n = p.shape[0]
        shape = p.shape[1:3]
        return {
            "n_pts": np.full(shape, n * m.sum()),
            "sum_w": np.full(shape, n * w.sum()),
            "f": s(f, m), "a": s(a, m),
            "wf": s(f, w), "wa": s(a, w),
            "wfa": s(f * a, w), "wff": s(f * f, w), "waa": s(a * a, w),
        }

    def _finalize(self, st, count):
        if self.centered:
            mf = st["f"] / st["n_pts"]
            ma = st["a"] / st["n_pts"]
        else:
            mf = ma = 0.0
        cov = st["wfa"] - ma * st["wf"] - mf * st["wa"] + mf * ma * st["sum_w"]
        vf = st["wff"] - 2 * mf * st["wf"] + mf * mf * st["sum_w"]
        va = st["waa"] - 2 * ma * st["wa"] + ma * ma * st["sum_w"]
        return cov / np.sqrt(vf * va)


# --------------------------------------------------------------------------------------------------
# OpenSTL frame metrics ([0, 1] units)


class _FrameMetric(Metric):
    def __init__(self, *, region_mask: Any = None, data_range: Any = None):
        self.data_range = data_range
        super().__init__(region_mask=region_mask)

    def _unit(self, p: np.ndarray, t: np.ndarray, clip: bool) -> tuple[np.ndarray, np.ndarray]:
        p = _scale_unit(p, self.data_range)
        t = _scale_unit(t, self.data_range)
        if clip:
            p = np.clip(p, 0.0, 1.0)
        return p, t


@register_metric
class OpenSTLMSE(_FrameMetric):
    """OpenSTL's MSE: per-frame *sum* of squared errors over the pixels, in [0, 1] units, averaged over frames.

    ``openstl_mse[t, c] = mean_n Σ_{h,w ∈ region} (p01 − t01)²`` (prediction not clipped).  All channels:
    the **sum** over channels, so for TaxiBJ (2×32×32) the all-channel, all-lead value equals OpenSTL's
    ``MSE(pred, true) = mean over (samples, frames) of the sum over (C, H, W)``, the number published in
    its TaxiBJ tables.  All leads: the mean over leads.
    """

    name = "openstl_mse"
    channel_pool = "sum"

    def _batch_stats(self, p, t, **kw):
        p, t = self._unit(p, t, clip=False)
        w = Metric._spatial_weights(self, *p.shape[-2:])
        d = p - t
        return {"s": np.tensordot(d * d, w, axes=([-2, -1], [0, 1])).sum(axis=0)}

    def _finalize(self, stats, count):
        return stats["s"] / count


@register_metric
class OpenSTLMAE(OpenSTLMSE):
    """OpenSTL's MAE: ``mean_n Σ_{h,w ∈ region} |p01 − t01|`` per lead and channel; channels add, leads average."""

    name = "openstl_mae"

    def _batch_stats(self, p, t, **kw):
        p, t = self._unit(p, t, clip=False)
        w = Metric._spatial_weights(self, *p.shape[-2:])
        return {"s": np.tensordot(np.abs(p - t), w, axes=([-2, -1], [0, 1])).sum(axis=0)}


def ssim_map(x: np.ndarray, y: np.ndarray, *, data_range: float = 2.0, win_size: int = 7,
             k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """SSIM map of ``(..., H, W)`` frames, cropped to the fully covered interior ``(..., H-2r, W-2r)``.

    Wang et al. (2004) with scikit-image's defaults (the ones OpenSTL uses): a ``win_size × win_size``
    uniform window, sample covariances (``N/(N−1)``), ``C1 = (k1·L)²``, ``C2 = (k2·L)²`` with ``L = data_range``::

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))
    """
    from scipy.ndimage import uniform_filter

    if win_size % 2 != 1 or min(x.shape[-2:]) < win_size:
        raise DataError(f"SSIM needs frames of at least {win_size}×{win_size} (odd window); got {x.shape[-2:]}")
    size = (1,) * (x.ndim - 2) + (win_size, win_size)
    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1.0)
    ux = uniform_filter(x, size=size)
    uy = uniform_filter(y, size=size)
    uxx = uniform_filter(x * x, size=size)
    uyy = uniform_filter(y * y, size=size)
    uxy = uniform_filter(x * y, size=size)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = (win_size - 1) // 2
    return s[..., r:-r, r:-r]


@register_metric
class SSIM(_FrameMetric):
    """Structural similarity of [0, 1] frames, as OpenSTL computes it (``skimage`` defaults).

    Per sample, lead and channel: the mean over the cropped interior (and the region, if any) of
    :func:`ssim_map` with a 7×7 uniform window, sample covariances, K1 = 0.01, K2 = 0.03, on the
    prediction clipped to [0, 1].  ``ssim_data_range`` is the ``L`` of the constants: OpenSTL calls
    ``skimage.metrics.structural_similarity`` on float frames without ``data_range``, and the
    scikit-image versions it was written for then used the float dtype range [−1, 1], i.e. ``L = 2``
    (scikit-image PR #6595); the default 2.0 reproduces its published numbers, 1.0 gives textbook SSIM
    for [0, 1] frames.  ``SSIM[t, c] = mean_n SSIM(n, t, c)``; all channels: the mean over channels (=
    scikit-image's multichannel SSIM of the frame, OpenSTL's per-frame score); all leads: the mean.
    """

    name = "ssim"

    def __init__(self, *, region_mask: Any = None, data_range: Any = None, ssim_data_range: float = 2.0,
                 win_size: int = 7):
        self.ssim_data_range = float(ssim_data_range)
        self.win_size = int(win_size)
        super().__init__(region_mask=region_mask, data_range=data_range)

    def _batch_stats(self, p, t, **kw):
        p, t = self._unit(p, t, clip=True)
        s = ssim_map(p, t, data_range=self.ssim_data_range, win_size=self.win_size)
        r = (self.win_size - 1) // 2
        w = Metric._spatial_weights(self, *p.shape[-2:])[r:-r, r:-r]
        if w.sum() == 0:
            raise DataError("ssim: the region has no pixels inside the SSIM window's valid interior")
        return {"s": (np.tensordot(s, w, axes=([-2, -1], [0, 1])) / w.sum()).sum(axis=0)}

    def _finalize(self, stats, count):
        return stats["s"] / count


def psnr_from_mse(mse: Any) -> np.ndarray:
    """PSNR of [0, 1] frames from their MSE: ``20·log10(1 / sqrt(mse)) = −10·log10(mse)`` (inf at 0)."""
    mse = to_numpy(mse)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(mse)


@register_metric
class PSNR(_FrameMetric):
    """Peak signal-to-noise ratio of [0, 1] frames, as OpenSTL computes it (mean of per-frame PSNR).

    Per sample ``n``, lead ``t``: ``PSNR = 20·log10(1/sqrt(MSE))`` with the MSE over the frame's pixels
    (prediction clipped to [0, 1]; region pixels only if a region is set); ``+inf`` for a perfect frame,
    as in OpenSTL.  ``PSNR[t, c] = mean_n PSNR`` of channel ``c`` alone; all channels (OpenSTL's number):
    ``mean_n PSNR`` of the whole frame, i.e. of the MSE over ``C × H × W`` -- not the mean of the
    per-channel PSNRs; all leads: the mean over leads.
    """

    name = "psnr"
    channel_pool = "frame"  # handled below

    def _batch_stats(self, p, t, **kw):
        p, t = self._unit(p, t, clip=True)
        d = p - t
        mse_c = self._spatial_mean(d * d)  # (n, T, C)
        c = p.shape[2]
        return {"s": psnr_from_mse(mse_c).sum(axis=0),
                # frame PSNR (over all channels), stored once per channel column divided by C so that
                # pooling over channels adds it back up exactly
                "frame": np.repeat(psnr_from_mse(mse_c.mean(axis=2)).sum(axis=0)[:, None] / c, c, axis=1)}

    def _finalize(self, stats, count):
        return stats["s"] / count

    def compute_all_channels(self) -> np.ndarray:
        self._require()
        return self._stats["frame"].sum(axis=1) / self._count[:, 0]

    def compute_overall(self) -> float:
        self._require()
        return float(self._stats["frame"].sum() / self._count[:, 0].sum())


# --------------------------------------------------------------------------------------------------
# many metrics at once

DEFAULT_WEATHER_METRICS = ("mse", "mae", "rmse", "wrmse", "wmae", "acc", "high_band_ratio", "lsd")
DEFAULT_CITY_METRICS = ("mse", "mae", "rmse", "openstl_mse", "openstl_mae", "ssim", "psnr",
                        "high_band_ratio", "lsd")


class MetricSet:
    """Several metrics updated together (one pass over the data)::

        ms = MetricSet(["mse", "wrmse", "acc"], lat=lat)
        for batch in loader:
            ms.update(pred, truth, sample_mask=is_nonstationary, climatology=clim)
        ms.compute()   # {"mse": (T_out, C), ...}

    ``options`` go to each metric's constructor where it takes them: ``lat``, ``region_mask``,
    ``data_range``, ``ssim_data_range``, ``centered``, ``periodic``, ``cutoff``, ``band``...
    """

    def __init__(self, metrics: Iterable[str], **options: Any):
        names = list(metrics)
        if len(set(names)) != len(names):
            raise ConfigError(f"metric names repeated: {names}")
        self.metrics: dict[str, Metric] = {n: make_metric(n, **options) for n in names}

    def update(self, pred: Any, truth: Any, *, sample_mask: Any = None, climatology: Any = None) -> None:
        p, t = _check_pair(pred, truth)  # convert once
        for m in self.metrics.values():
            m.update(p, t, sample_mask=sample_mask,
                     climatology=climatology if m.needs_climatology else None)

    def compute(self) -> dict[str, np.ndarray]:
        return {n: m.compute() for n, m in self.metrics.items()}

    def to_json(self, channel_names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{name: Metric.to_json(channel_names)}``."""
        return {n: m.to_json(channel_names) for n, m in self.metrics.items()}

    def per_lead_lists(self) -> dict[str, list[float | None]]:
        """``{name: [value per lead over all channels]}`` (the ``test: {mse: [...], ...}`` form)."""
        return {n: _json_list(m.compute_all_channels()) for n, m in self.metrics.items()}


def _batches(n: int, batch_size: int | None) -> Iterable[slice]:
    step = n if not batch_size else max(1, int(batch_size))
    for i in range(0, max(n, 1), step):
        yield slice(i, min(i + step, n))


def _default_metrics(lat: Any, climatology: Any) -> tuple[str, ...]:
    if lat is None:
        return DEFAULT_CITY_METRICS
    return DEFAULT_WEATHER_METRICS if climatology is not None else tuple(
        m for m in DEFAULT_WEATHER_METRICS if m != "acc")


def _scored_set(pred, truth, lat, climatology, sample_mask, region_mask, metrics, data_range, batch_size,
                options) -> MetricSet:
    if metrics is None:
        metrics = _default_metrics(lat, climatology)
    ms = MetricSet(metrics, lat=lat, region_mask=region_mask, data_range=data_range, **options)
    n = len(pred)
    clim = None if climatology is None else to_numpy(climatology)
    per_sample_clim = clim is not None and clim.ndim == 5 and clim.shape[0] == n
    sm = _check_sample_mask(sample_mask, n)
    for sl in _batches(n, batch_size):
        ms.update(pred[sl], truth[sl], sample_mask=None if sm is None else sm[sl],
                  climatology=clim[sl] if per_sample_clim else clim)
    return ms


def evaluate_arrays(pred: Any, truth: Any, lat: Any = None, climatology: Any = None, sample_mask: Any = None,
                    region_mask: Any = None, metrics: Sequence[str] | None = None, data_range: Any = None,
                    batch_size: int | None = 64, **options: Any) -> dict[str, np.ndarray]:
    """Score ``pred`` against ``truth`` (``(N, T_out, C, H, W)``): ``{metric name: (T_out, C) array}``.

    ``metrics`` default: :data:`DEFAULT_WEATHER_METRICS` when ``lat`` is given (``acc`` only with a
    ``climatology``), else :data:`DEFAULT_CITY_METRICS`.  The arrays are streamed in batches of
    ``batch_size`` samples (the result does not depend on it).  Other ``options`` go to the metrics
    (see :class:`MetricSet`).
    """
    return _scored_set(pred, truth, lat, climatology, sample_mask, region_mask, metrics, data_range,
                       batch_size, options).compute()


def evaluate_arrays_json(pred: Any, truth: Any, lat: Any = None, climatology: Any = None,
                         sample_mask: Any = None, region_mask: Any = None,
                         metrics: Sequence[str] | None = None, data_range: Any = None,
                         channel_names: Sequence[str] | None = None, batch_size: int | None = 64,
                         **options: Any) -> dict[str, dict[str, Any]]:
    """Like :func:`evaluate_arrays`, JSON-friendly: ``{name: Metric.to_json(channel_names)}``."""
    return _scored_set(pred, truth, lat, climatology, sample_mask, region_mask, metrics, data_range,
                       batch_size, options).to_json(channel_names)
