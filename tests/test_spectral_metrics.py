"""core.spectral: spectra with known answers (sines, plane waves, Parseval), LSD, high-band power ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import DataError
from core.metrics import evaluate_arrays, make_metric
from core.spectral import (
    high_band_power,
    log_spectral_distance,
    radial_psd,
    radial_wavenumbers,
    zonal_energy_spectrum,
    zonal_wavenumbers,
)

LAT = np.linspace(-87.1875, 87.1875, 32)  # WeatherBench 5.625° rows
NLON = 64


@pytest.mark.parametrize("k", [1, 5, 31, 32])
def test_zonal_spectrum_of_a_sine_peaks_at_its_wavenumber_with_parseval_power(k):
    amp = 3.0
    lon = np.arange(NLON)
    phase = 0.0 if k == NLON // 2 else 0.7  # at Nyquist only the cosine survives sampling
    row = amp * np.cos(2 * np.pi * k * lon / NLON + phase)
    field = np.broadcast_to(row, (len(LAT), NLON))
    e = zonal_energy_spectrum(field)
    assert e.shape == (NLON // 2 + 1,) and zonal_wavenumbers(NLON)[np.argmax(e)] == k
    expect = amp ** 2 if k == NLON // 2 else amp ** 2 / 2  # mean of the squared signal
    assert e[k] == pytest.approx(expect, rel=1e-12)
    assert e.sum() == pytest.approx(np.mean(row ** 2), rel=1e-12)
    assert np.delete(e, k).max() < 1e-20


@pytest.mark.parametrize("w", [64, 63])
def test_zonal_spectrum_parseval_on_random_rows(w):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 32, w)) + 1.5
    e = zonal_energy_spectrum(x)
    np.testing.assert_allclose(e.sum(axis=-1), (x ** 2).mean(axis=(-2, -1)), rtol=1e-12)


def test_zonal_spectrum_latitude_band_averages_only_its_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, NLON))
    e = zonal_energy_spectrum(x, lat=LAT, band=(30, 60))
    rows = (LAT >= 30) & (LAT <= 60)
    assert rows.sum() == 6  # 30.9375 … 59.0625
    np.testing.assert_allclose(e, zonal_energy_spectrum(x[rows]), rtol=1e-12)
    with pytest.raises(DataError, match="no grid row"):
        zonal_energy_spectrum(x, lat=LAT, band=(88, 89))
    with pytest.raises(DataError, match="latitudes"):
        zonal_energy_spectrum(x, band=(30, 60))


def test_radial_psd_of_a_plane_wave():
    h = w = 32
    amp = 2.0
    y, x = np.mgrid[0:h, 0:w]
    field = amp * np.cos(2 * np.pi * (3 * y / h + 4 * x / w))  # |k| = 5
    p_sum = radial_psd(field, reduce="sum")
    assert p_sum.shape == (17,) and len(radial_wavenumbers(h, w)) == 17
    assert np.argmax(p_sum) == 5
    assert p_sum[5] == pytest.approx(amp ** 2 / 2, rel=1e-12)
    assert np.delete(p_sum, 5).max() < 1e-20
    p_mean = radial_psd(field)
    assert np.argmax(p_mean) == 5
    bins = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w, indexing="ij")))
    assert p_mean[5] == pytest.approx(amp ** 2 / 2 / (bins == 5).sum(), rel=1e-12)


def test_radial_psd_parseval_for_band_limited_field():
    rng = np.random.default_rng(2)
    h, w = 16, 24
    spec = np.zeros((h, w), complex)
    for ky, kx in [(0, 0), (1, 2), (3, 1), (2, 5), (7, 0)]:  # all inside radius min(h, w)//2 = 8
        c = rng.normal() + 1j * rng.normal()
        spec[ky, kx] += c
        spec[-ky, -kx] += np.conj(c)
    field = np.fft.ifft2(spec).real * h * w
    np.testing.assert_allclose(radial_psd(field, reduce="sum").sum(), np.mean(field ** 2), rtol=1e-10)


def test_log_spectral_distance_definition():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.1, 2.0, size=(4, 10))
    np.testing.assert_allclose(log_spectral_distance(p, p), 0.0, atol=1e-12)
    np.testing.assert_allclose(log_spectral_distance(p / 2, p), 10 * math.log10(2), rtol=1e-9)
    q = p.copy()
    q[:, 0] *= 1000.0  # k = 0 is skipped
    np.testing.assert_allclose(log_spectral_distance(q, p), 0.0, atol=1e-12)
    # brute force with k = 0 included
    d = [math.sqrt(np.mean([(10 * math.log10(q[i, k] / p[i, k])) ** 2 for k in range(10)])) for i in range(4)]
    np.testing.assert_allclose(log_spectral_distance(q, p, skip_zero=False, eps=0.0), d, rtol=1e-9)


def test_high_band_ratio_perfect_and_smoothed():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    truth = rng.normal(size=(3, 2, 2, 32, NLON))
    r = evaluate_arrays(truth, truth, lat=LAT, metrics=("high_band_ratio", "lsd"))
    np.testing.assert_allclose(r["high_band_ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(r["lsd"], 0.0, atol=1e-12)
    smooth = gaussian_filter(truth, sigma=(0, 0, 0, 3, 3), mode=("nearest",) * 4 + ("wrap",))
    r = evaluate_arrays(smooth, truth, lat=LAT, metrics=("high_band_ratio", "lsd"))
    assert (r["high_band_ratio"] < 0.01).all()
    assert (r["lsd"] > 10).all()
    # doubling the high band quadruples its power; the low band does not matter
    from models.spectral import band_split
    import torch

    low, high = band_split(torch.from_numpy(truth), cutoff=0.25, periodic=(False, True))
    sharper = (low + 2 * high).numpy()
    r = evaluate_arrays(sharper, truth, lat=LAT, metrics=("high_band_ratio",))
    np.testing.assert_allclose(r["high_band_ratio"], 4.0, rtol=1e-10)


def test_high_band_ratio_brute_force_with_lat_weights_and_city_grid():
    import torch
    from models.spectral import band_split, high_band_power_fraction

    rng = np.random.default_rng(5)
    truth = rng.normal(size=(2, 2, 1, 32, NLON))
    pred = truth + 0.5 * rng.normal(size=truth.shape)
    w = np.cos(np.deg2rad(LAT))
    w = w / w.mean()
    got = evaluate_arrays(pred, truth, lat=LAT, metrics=("high_band_ratio",))["high_band_ratio"]
    _, hp = band_split(torch.from_numpy(pred), 0.25, (False, True))
    _, ht = band_split(torch.from_numpy(truth), 0.25, (False, True))
    num = (hp.numpy() ** 2 * w[:, None]).sum(axis=(0, 3, 4))
    den = (ht.numpy() ** 2 * w[:, None]).sum(axis=(0, 3, 4))
    np.testing.assert_allclose(got, num / den, rtol=1e-10)
    # city grid (no lat): not periodic; the high power agrees with the shared high_band_power_fraction
    city = rng.normal(size=(1, 1, 2, 32, 32))
    hpow = high_band_power(city - city.mean(axis=(-2, -1), keepdims=True), 0.25, (False, False))
    total = ((city - city.mean(axis=(-2, -1), keepdims=True)) ** 2).sum(axis=(-2, -1))
    frac = high_band_power_fraction(torch.from_numpy(city), 0.25, (False, False)).numpy()
    np.testing.assert_allclose(hpow / total, frac, rtol=1e-6)  # the fraction is float32


def test_lsd_metric_uses_zonal_spectrum_on_latlon_and_radial_psd_on_city_grids():
    rng = np.random.default_rng(6)
    truth = rng.normal(size=(3, 2, 1, 32, NLON))
    pred = truth * 0.5  # every spectrum scaled by 1/4: LSD = 10·log10(4)
    lsd = evaluate_arrays(pred, truth, lat=LAT, metrics=("lsd",))["lsd"]
    np.testing.assert_allclose(lsd, 10 * math.log10(4), rtol=1e-9)
    m = make_metric("lsd", lat=LAT, band=(30, 60))
    noisy = pred + rng.normal(size=pred.shape) * 0.1
    m.update(noisy, truth)
    expect = log_spectral_distance(zonal_energy_spectrum(noisy, LAT, (30, 60)).mean(axis=0),
                                   zonal_energy_spectrum(truth, LAT, (30, 60)).mean(axis=0))
    np.testing.assert_allclose(m.compute(), expect, rtol=1e-10)
    city_t = rng.normal(size=(3, 2, 2, 16, 16))
    city_p = city_t + rng.normal(size=city_t.shape)
    got = evaluate_arrays(city_p, city_t, metrics=("lsd",))["lsd"]
    expect = log_spectral_distance(radial_psd(city_p).mean(axis=0), radial_psd(city_t).mean(axis=0))
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    region = np.zeros((16, 16), bool)
    region[2:10, 4:14] = True
    got = evaluate_arrays(city_p, city_t, region_mask=region, metrics=("lsd",))["lsd"]
    crop = (Ellipsis, slice(2, 10), slice(4, 14))
    expect = log_spectral_distance(radial_psd(city_p[crop]).mean(axis=0), radial_psd(city_t[crop]).mean(axis=0))
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    # the latitude band version compares the band's zonal spectra
    got = evaluate_arrays(city_p[..., :8], city_t[..., :8], lat=np.linspace(-60, 60, 16), band=(0, 60),
                          metrics=("lsd",))["lsd"]
    rows = np.linspace(-60, 60, 16) >= 0
    expect = log_spectral_distance(zonal_energy_spectrum(city_p[..., rows, :8]).mean(axis=0),
                                   zonal_energy_spectrum(city_t[..., rows, :8]).mean(axis=0))
    np.testing.assert_allclose(got, expect, rtol=1e-10)
