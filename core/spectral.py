"""Spectral diagnostics of forecasts: spectra, high-band power ratio, log-spectral distance.

* :func:`zonal_energy_spectrum` (lat-lon grids): the one-sided power spectrum along longitude of each
  latitude row, averaged over the rows of a latitude band.
* :func:`radial_psd` (city grids): the 2-D power spectrum binned by integer radial wavenumber.
* :class:`HighBandRatio` (metric ``high_band_ratio``): predicted / true power in the high band of the
  project's one radial band split (:func:`models.spectral.band_split`), per lead and channel.
* :func:`log_spectral_distance` and :class:`LogSpectralDistance` (metric ``lsd``).

Spectra are computed in numpy float64 (arrays ``(..., H, W)``, numpy or torch); the band split runs in
torch float64 because it is the model code's own function.  Both metrics follow the streaming
:class:`core.metrics.Metric` protocol and are registered in :data:`core.metrics.METRICS`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from core.errors import DataError
from core.metrics import Metric, lat_weights, register_metric, to_numpy

# --------------------------------------------------------------------------------------------------
# spectra


def zonal_wavenumbers(w: int) -> np.ndarray:
    """Zonal wavenumbers (cycles around the latitude circle) of :func:`zonal_energy_spectrum`: ``0 … W//2``."""
    return np.arange(w // 2 + 1)


def _band_rows(lat: Any, band: Sequence[float] | None, h: int) -> np.ndarray:
    if band is None:
        return np.ones(h, dtype=bool)
    if lat is None:
        raise DataError("a latitude band needs the latitudes of the rows (lat=...)")
    lat = to_numpy(lat).reshape(-1)
    if lat.shape != (h,):
        raise DataError(f"{lat.size} latitudes given for a grid of {h} rows")
    lo, hi = sorted(float(b) for b in band)
    rows = (lat >= lo) & (lat <= hi)
    if not rows.any():
        raise DataError(f"latitude band {lo}..{hi} contains no grid row")
    return rows


def zonal_energy_spectrum(field: Any, lat: Any = None, band: Sequence[float] | None = None,
                          rows: Any = None) -> np.ndarray:
    """Zonal power spectrum of ``field`` ``(..., H, W)`` (H latitude rows, W longitudes spanning 360°).

    For each row ``x_j`` (``W`` points around the latitude circle) with ``X_j(k) = Σ_i x_j(i) e^{−2πi ki/W}``::

        E_j(k) = s_k |X_j(k)|² / W²,    s_k = 1 for k = 0 and k = W/2 (W even), else 2,

    so that ``Σ_k E_j(k) = mean_i x_j(i)²`` (Parseval; a sine ``A sin(2π k0 i / W)`` puts ``A²/2`` at
    ``k0``).  The result is the plain mean of ``E_j`` over the selected rows: those with
    ``band[0] ≤ lat ≤ band[1]`` (degrees, e.g. ``(30, 60)``), or a boolean ``rows`` vector, or all rows.
    Returns ``(..., W//2 + 1)``, indexed by :func:`zonal_wavenumbers`.
    """
    x = to_numpy(field)
    if x.ndim < 2:
        raise DataError(f"zonal_energy_spectrum needs (..., H, W); got shape {x.shape}")
    h, w = x.shape[-2:]
    sel = _band_rows(lat, band, h)
    if rows is not None:
        sel = sel & to_numpy(rows, dtype=bool).reshape(-1)
        if not sel.any():
            raise DataError("no latitude row selected for the zonal spectrum")
    spec = np.abs(np.fft.rfft(x[..., sel, :], axis=-1)) ** 2 / float(w) ** 2
    spec[..., 1:] *= 2.0
    if w % 2 == 0:
        spec[..., -1] /= 2.0
    return spec.mean(axis=-2)


def radial_wavenumbers(h: int, w: int) -> np.ndarray:
    """Integer radial wavenumbers of :func:`radial_psd`: ``0 … min(H, W)//2``."""
    return np.arange(min(h, w) // 2 + 1)


def _radial_bins(h: int, w: int) -> np.ndarray:
    ky = np.fft.fftfreq(h) * h  # cycles per domain height
    kx = np.fft.fftfreq(w) * w
    return np.rint(np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)).astype(int)


def radial_psd(field: Any, reduce: str = "mean") -> np.ndarray:
    """Radially averaged power spectral density of ``field`` ``(..., H, W)`` (city grids).

    ``P(ky, kx) = |FFT2(x)|² / (H·W)²`` (so ``Σ P = mean x²``) on integer wavenumbers ``ky`` (cycles per
    domain height) and ``kx`` (per width), binned by ``k = round(sqrt(ky² + kx²))`` for ``k = 0 …
    min(H, W)//2`` (corner cells beyond are left out).  ``reduce="mean"``: the mean of ``P`` over the cells
    of each annulus (the radially averaged PSD); ``"sum"``: the power in each annulus (a plane wave
    ``A cos(2π(k1 y/H + k2 x/W))`` puts ``A²/2`` in the bin of ``sqrt(k1² + k2²)``).  No window, no
    detrending; bin 0 holds the squared mean.  Returns ``(..., min(H, W)//2 + 1)``.
    """
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', not {reduce!r}")
    x = to_numpy(field)
    if x.ndim < 2:
        raise DataError(f"radial_psd needs (..., H, W); got shape {x.shape}")
    h, w = x.shape[-2:]
    p = np.abs(np.fft.fft2(x, axes=(-2, -1))) ** 2 / float(h * w) ** 2
    kbin = _radial_bins(h, w).reshape(-1)
    nk = min(h, w) // 2 + 1
    onehot = (kbin[:, None] == np.arange(nk)[None, :]).astype(np.float64)  # (H·W, K)
    out = p.reshape(p.shape[:-2] + (h * w,)) @ onehot
    if reduce == "mean":
        out = out / onehot.sum(axis=0)
    return out


def log_spectral_distance(p_pred: Any, p_true: Any, axis: int = -1, skip_zero: bool = True,
                          eps: float = 1e-12) -> np.ndarray:
    """Log-spectral distance in dB between two power spectra along ``axis``::

        LSD = sqrt( mean_k (10·log10(P_pred(k) / P_true(k)))² )

    over wavenumbers ``k ≥ 1`` (``skip_zero=True``: the mean, ``k = 0``, is an error of bias, not of
    spectrum).  To keep empty bins finite both spectra get ``eps · Σ_k P_true(k)`` added.  0 for identical
    spectra; a prediction with uniformly half the power scores ``10·log10 2 ≈ 3.01`` dB.
    """
    pp = np.moveaxis(to_numpy(p_pred), axis, -1)
    pt = np.moveaxis(to_numpy(p_true), axis, -1)
    if pp.shape != pt.shape:
        raise DataError(f"spectra of different shapes: {pp.shape} and {pt.shape}")
    if skip_zero:
        pp, pt = pp[..., 1:], pt[..., 1:]
    if pp.shape[-1] == 0:
        raise DataError("log_spectral_distance needs at least one wavenumber besides k = 0")
    floor = eps * pt.sum(axis=-1, keepdims=True) + np.finfo(np.float64).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 10.0 * np.log10((pp + floor) / (pt + floor))
    return np.sqrt(np.mean(d * d, axis=-1))


def _periodic(lat: Any, periodic: Sequence[bool] | None) -> tuple[bool, bool]:
    if periodic is not None:
        return (bool(periodic[0]), bool(periodic[1]))
    return (False, True) if lat is not None else (False, False)


def high_band_power(field: Any, cutoff: float = 0.25, periodic: Sequence[bool] = (False, True),
                    weights: Any = None) -> np.ndarray:
    """Power of the high band of ``field`` ``(..., H, W)``: ``Σ_{h,w} W_hw · high_hw²`` → ``(...)``.

    ``high`` is the high part of :func:`models.spectral.band_split` (the project's one band split; the mean
    always lies in the low band) at ``cutoff`` (fraction of Nyquist), ``W`` optional ``(H, W)`` weights
    (cos-lat × region; 1 by default).
    """
    import torch

    from models.spectral import band_split

    x = torch.as_tensor(to_numpy(field), dtype=torch.float64)
    _, high = band_split(x, cutoff=cutoff, periodic=tuple(periodic))
    h2 = (high ** 2).numpy()
    if weights is None:
        return h2.sum(axis=(-2, -1))
    return np.tensordot(h2, to_numpy(weights), axes=([-2, -1], [0, 1]))


# --------------------------------------------------------------------------------------------------
# metrics


@register_metric
class HighBandRatio(Metric):
    """Ratio of predicted to true power in the high band, per lead and channel.

    ``ratio[t, c] = Σ_n Σ_{h,w} W_hw high(pred)² / Σ_n Σ_{h,w} W_hw high(truth)²`` where ``high`` is the high
    band of :func:`models.spectral.band_split` at ``cutoff`` (default 0.25 of Nyquist), ``periodic`` is
    ``(False, True)`` on lat-lon grids (``lat`` given) and ``(False, False)`` on city grids, and ``W`` is the
    region mask times cos-lat weights when ``lat`` is given.  1 for a perfect forecast, < 1 for a forecast
    smoother than the truth, ~0 for a smoothed one.  All leads: the ratio of the pooled powers; all
    channels: the mean of the per-channel ratios.
    """

    name = "high_band_ratio"
    channel_pool = "values"

    def __init__(self, lat: Any = None, *, region_mask: Any = None, periodic: Sequence[bool] | None = None,
                 cutoff: float = 0.25):
        self.lat = None if lat is None else to_numpy(lat).reshape(-1)
        self.periodic = _periodic(lat, periodic)
        self.cutoff = float(cutoff)
        super().__init__(region_mask=region_mask)

    def _check_grid(self, h, w):
        if self.lat is not None and self.lat.shape != (h,):
            raise DataError(f"{self.name}: {self.lat.size} latitudes given for a grid of {h} rows")
        super()._check_grid(h, w)

    def _spatial_weights(self, h, w):
        m = super()._spatial_weights(h, w)
        return m if self.lat is None else m * lat_weights(self.lat)[:, None]

    def _batch_stats(self, p, t, **kw):
        w = self._spatial_weights(*p.shape[-2:])
        hp = high_band_power(p, self.cutoff, self.periodic, w)  # (n, T, C)
        ht = high_band_power(t, self.cutoff, self.periodic, w)
        return {"pred": hp.sum(axis=0), "true": ht.sum(axis=0)}

    def _finalize(self, stats, count):
        return stats["pred"] / stats["true"]


@register_metric
class LogSpectralDistance(Metric):
    """Log-spectral distance (dB) between the mean predicted and mean true spectrum, per lead and channel.

    ``lsd[t, c] = LSD(mean_n P(pred), mean_n P(truth))`` (:func:`log_spectral_distance`, ``k ≥ 1``), with
    ``P`` the zonal energy spectrum (:func:`zonal_energy_spectrum`) on lat-lon grids (``lat`` given; rows
    of ``band`` and touched by the region mask, full longitude circles) or the radially averaged PSD
    (:func:`radial_psd`) on city grids (of the region mask's bounding box).  All leads / all channels:
    the mean of the per-lead / per-channel distances.
    """

    name = "lsd"
    lead_pool = "values"
    channel_pool = "values"

    def __init__(self, lat: Any = None, *, region_mask: Any = None, band: Sequence[float] | None = None):
        self.lat = None if lat is None else to_numpy(lat).reshape(-1)
        self.band = band
        super().__init__(region_mask=region_mask)

    def _check_grid(self, h, w):
        if self.lat is not None and self.lat.shape != (h,):
            raise DataError(f"{self.name}: {self.lat.size} latitudes given for a grid of {h} rows")
        super()._check_grid(h, w)

    def spectrum(self, x: np.ndarray) -> np.ndarray:
        """The spectrum this metric compares, of ``x`` ``(..., H, W)`` → ``(..., K)``."""
        h, w = x.shape[-2:]
        if self.lat is not None:
            rows = None if self.region_mask is None else self.region_mask.any(axis=1)
            return zonal_energy_spectrum(x, self.lat, self.band, rows=rows)
        if self.region_mask is not None:
            ys, xs = np.nonzero(self.region_mask)
            x = x[..., ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        return radial_psd(x)

    def _batch_stats(self, p, t, **kw):
        return {"pred": self.spectrum(p).sum(axis=0), "true": self.spectrum(t).sum(axis=0)}

    def _finalize(self, stats, count):
        c = count[..., None]
        return log_spectral_distance(stats["pred"] / c, stats["true"] / c)
