"""core.metrics: every score against an independent implementation and hand-made fields with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from core.metrics import (
    METRICS,
    Metric,
    MetricSet,
    evaluate_arrays,
    evaluate_arrays_json,
    lat_weights,
    make_metric,
    metric_names,
    psnr_from_mse,
    register_metric,
)

N, T, C, H, W = 5, 3, 2, 8, 12
LAT = np.linspace(-78.75, 78.75, H)  # a coarse regular lat grid (not symmetric weights-only)


def _fields(seed=0, n=N, h=H, w=W, unit=False):
    rng = np.random.default_rng(seed)
    if unit:
        truth = rng.uniform(0.05, 0.95, size=(n, T, C, h, w))
        pred = truth + 0.08 * rng.normal(size=truth.shape)
    else:
        truth = rng.normal(size=(n, T, C, h, w)) * np.array([3.0, 0.5])[None, None, :, None, None] + 10.0
        pred = truth + rng.normal(size=truth.shape)
    return pred, truth


# ---------------------------------------------------------------------------------------------- plain errors

def test_mse_mae_rmse_against_loops():
    pred, truth = _fields()
    r = evaluate_arrays(pred, truth, metrics=("mse", "mae", "rmse"))
    for t in range(T):
        for c in range(C):
            se, ae, cnt = 0.0, 0.0, 0
            for n in range(N):
                for i in range(H):
                    for j in range(W):
                        d = pred[n, t, c, i, j] - truth[n, t, c, i, j]
                        se += d * d
                        ae += abs(d)
                        cnt += 1
            assert r["mse"][t, c] == pytest.approx(se / cnt, rel=1e-12)
            assert r["mae"][t, c] == pytest.approx(ae / cnt, rel=1e-12)
            assert r["rmse"][t, c] == pytest.approx(math.sqrt(se / cnt), rel=1e-12)
    assert r["mse"].shape == (T, C)


def test_rmse_aggregates_are_sqrt_of_pooled_mse():
    pred, truth = _fields(1)
    ms = MetricSet(["mse", "rmse"])
    ms.update(pred, truth)
    mse = ms.metrics["mse"].compute()
    rmse = ms.metrics["rmse"]
    np.testing.assert_allclose(rmse.compute_all_leads(), np.sqrt(mse.mean(axis=0)), rtol=1e-12)
    np.testing.assert_allclose(rmse.compute_all_channels(), np.sqrt(mse.mean(axis=1)), rtol=1e-12)
    assert rmse.compute_overall() == pytest.approx(math.sqrt(mse.mean()), rel=1e-12)
    assert ms.metrics["mse"].compute_overall() == pytest.approx(mse.mean(), rel=1e-12)


# ------------------------------------------------------------------------------------------ lat-weighted

def test_lat_weights_mean_one_and_cosine():
    w = lat_weights(LAT)
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w / w[0], np.cos(np.deg2rad(LAT)) / np.cos(np.deg2rad(LAT[0])))


@pytest.mark.parametrize("c", [2.5, -0.7])
def test_weighted_rmse_of_constant_offset_is_abs_c(c):
    _, truth = _fields(2)
    pred = truth + c
    region = np.zeros((H, W), bool)
    region[1:5, 3:9] = True
    for reg in (None, region):
        r = evaluate_arrays(pred, truth, lat=LAT, region_mask=reg, metrics=("wrmse", "wmae", "rmse", "mae"))
        for name in r:
            np.testing.assert_allclose(r[name], abs(c), rtol=1e-12)


def test_weighted_scores_against_loops():
    pred, truth = _fields(3)
    region = np.zeros((H, W), bool)
    region[2:7, :5] = True
    w = np.cos(np.deg2rad(LAT))
    w = w / w.mean()
    r = evaluate_arrays(pred, truth, lat=LAT, region_mask=region, metrics=("wrmse", "wmae", "wmse"))
    for t in range(T):
        for c in range(C):
            mses, maes = [], []
            for n in range(N):
                num2 = num1 = den = 0.0
                for i in range(H):
                    for j in range(W):
                        if region[i, j]:
                            d = pred[n, t, c, i, j] - truth[n, t, c, i, j]
                            num2 += w[i] * d * d
                            num1 += w[i] * abs(d)
                            den += w[i]
                mses.append(num2 / den)
                maes.append(num1 / den)
            assert r["wmse"][t, c] == pytest.approx(np.mean(mses), rel=1e-12)
            assert r["wrmse"][t, c] == pytest.approx(math.sqrt(np.mean(mses)), rel=1e-12)
            assert r["wmae"][t, c] == pytest.approx(np.mean(maes), rel=1e-12)


def test_weighted_scores_against_xskillscore():
    xr = pytest.importorskip("xarray")
    xs = pytest.importorskip("xskillscore")
    pred, truth = _fields(4)
    r = evaluate_arrays(pred, truth, lat=LAT, metrics=("wrmse", "wmae"))
    dims = ("time", "lead", "channel", "lat", "lon")
    coords = {"lat": LAT}
    p = xr.DataArray(pred, dims=dims, coords=coords)
    t = xr.DataArray(truth, dims=dims, coords=coords)
    wts = xr.DataArray(np.cos(np.deg2rad(LAT)), dims="lat", coords=coords).broadcast_like(p.isel(time=0, lead=0, channel=0))
    # WeatherBench: spatially weighted MSE per forecast time, mean over time, then the square root
    mse_t = xs.mse(p, t, dim=["lat", "lon"], weights=wts)
    np.testing.assert_allclose(r["wrmse"], np.sqrt(mse_t.mean("time").values), rtol=1e-10)
    mae_t = xs.mae(p, t, dim=["lat", "lon"], weights=wts)
    np.testing.assert_allclose(r["wmae"], mae_t.mean("time").values, rtol=1e-10)


def test_weighted_metric_needs_lat_of_the_right_length():
    pred, truth = _fields()
    with pytest.raises(DataError, match="latitudes"):
        evaluate_arrays(pred, truth, metrics=("wrmse",))
    with pytest.raises(DataError, match="latitudes given"):
        evaluate_arrays(pred, truth, lat=LAT[:-1], metrics=("wrmse",))


# ------------------------------------------------------------------------------------------------- ACC

def _clim_and_anoms(seed=5):
    rng = np.random.default_rng(seed)
    clim = rng.normal(size=(C, H, W)) * 5 + 280
    a = rng.normal(size=(N, T, C, H, W)) + 0.3  # anomalies with a non-zero mean
    return clim, a


def test_acc_perfect_is_one_and_sign_flip_is_minus_one():
    clim, a = _clim_and_anoms()
    truth = clim + a
    for centered in (True, False):
        r = evaluate_arrays(truth, truth, lat=LAT, climatology=clim, metrics=("acc",), centered=centered)
        np.testing.assert_allclose(r["acc"], 1.0, atol=1e-12)
        r = evaluate_arrays(clim - a, truth, lat=LAT, climatology=clim, metrics=("acc",), centered=centered)
        np.testing.assert_allclose(r["acc"], -1.0, atol=1e-12)


def test_acc_against_loops_weatherbench_formula():
    clim, a = _clim_and_anoms(6)
    truth = clim + a
    rng = np.random.default_rng(7)
    pred = truth + rng.normal(size=truth.shape) * 0.8 + 0.1
    region = np.ones((H, W), bool)
    region[:2] = False
    w = lat_weights(LAT)
    r = evaluate_arrays(pred, truth, lat=LAT, climatology=clim, region_mask=region, metrics=("acc",),
                        batch_size=2)
    for t in range(T):
        for c in range(C):
            fs, as_, ws = [], [], []
            for n in range(N):
                for i in range(H):
                    for j in range(W):
                        if region[i, j]:
                            fs.append(pred[n, t, c, i, j] - clim[c, i, j])
                            as_.append(truth[n, t, c, i, j] - clim[c, i, j])
                            ws.append(w[i])
            f, aa, ww = np.array(fs), np.array(as_), np.array(ws)
            f, aa = f - f.mean(), aa - aa.mean()
            expect = (ww * f * aa).sum() / math.sqrt((ww * f * f).sum() * (ww * aa * aa).sum())
            assert r["acc"][t, c] == pytest.approx(expect, rel=1e-10)


def test_acc_against_xskillscore_weighted_pearson():
    xr = pytest.importorskip("xarray")
    xs = pytest.importorskip("xskillscore")
    rng = np.random.default_rng(8)
    clim = rng.normal(size=(C, H, W))
    # anomalies with zero zonal mean in every row: then plain and weighted means are both 0, and the
    # WeatherBench ACC equals the cos-lat-weighted Pearson correlation
    a = rng.normal(size=(N, T, C, H, W))
    a -= a.mean(axis=-1, keepdims=True)
    f = a + rng.normal(size=a.shape)
    f -= f.mean(axis=-1, keepdims=True)
    r = evaluate_arrays(clim + f, clim + a, lat=LAT, climatology=clim, metrics=("acc",))
    dims = ("time", "lead", "channel", "lat", "lon")
    fa = xr.DataArray(f, dims=dims, coords={"lat": LAT})
    ta = xr.DataArray(a, dims=dims, coords={"lat": LAT})
    wts = xr.DataArray(np.cos(np.deg2rad(LAT)), dims="lat", coords={"lat": LAT}).broadcast_like(
        fa.isel(lead=0, channel=0, drop=True))
    expect = xs.pearson_r(fa, ta, dim=["time", "lat", "lon"], weights=wts)
    np.testing.assert_allclose(r["acc"], expect.values, rtol=1e-9)


def test_acc_per_sample_climatology_and_missing_climatology():
    clim, a = _clim_and_anoms(9)
    clim_n = clim[None, None] + np.arange(N)[:, None, None, None, None]  # (N, 1, C, H, W): varies by sample
    clim_n = np.broadcast_to(clim_n, (N, T, C, H, W))
    truth = clim_n + a
    r = evaluate_arrays(truth, truth, lat=LAT, climatology=clim_n, metrics=("acc",), batch_size=2)
    np.testing.assert_allclose(r["acc"], 1.0, atol=1e-12)
    with pytest.raises(DataError, match="climatology"):
        evaluate_arrays(truth, truth, lat=LAT, metrics=("acc",))


# ------------------------------------------------------------------------------- OpenSTL SSIM, PSNR, MSE

def test_ssim_matches_scikit_image_with_openstl_settings():
    from skimage.metrics import structural_similarity

    pred, truth = _fields(10, h=16, w=16, unit=True)
    for L in (2.0, 1.0):
        r = make_metric("ssim", ssim_data_range=L)
        r.update(pred, truth)
        vals = r.compute()
        frame = r.compute_all_channels()
        clipped = np.clip(pred, 0, 1)
        for t in range(T):
            per_c = np.zeros(C)
            per_f = 0.0
            for n in range(N):
                for c in range(C):
                    per_c[c] += structural_similarity(clipped[n, t, c], truth[n, t, c], data_range=L) / N
                # OpenSTL: cal_ssim(pred[b, f].swapaxes(0, 2), true[b, f].swapaxes(0, 2), multichannel=True)
                per_f += structural_similarity(clipped[n, t].swapaxes(0, 2), truth[n, t].swapaxes(0, 2),
                                               channel_axis=2, data_range=L) / N
            np.testing.assert_allclose(vals[t], per_c, rtol=1e-10)
            assert frame[t] == pytest.approx(per_f, rel=1e-10)


def test_ssim_region_is_mean_of_skimage_map_over_region():
    from skimage.metrics import structural_similarity

    pred, truth = _fields(11, n=2, h=16, w=16, unit=True)
    region = np.zeros((16, 16), bool)
    region[4:12, 2:9] = True
    r = evaluate_arrays(pred, truth, region_mask=region, metrics=("ssim",))["ssim"]
    m = region[3:-3, 3:-3]
    for t in range(T):
        for c in range(C):
            vals = []
            for n in range(2):
                _, full = structural_similarity(np.clip(pred[n, t, c], 0, 1), truth[n, t, c], data_range=2.0,
                                                full=True)
                vals.append(full[3:-3, 3:-3][m].mean())
            assert r[t, c] == pytest.approx(np.mean(vals), rel=1e-10)


def test_ssim_of_identical_frames_is_one():
    _, truth = _fields(12, h=9, w=9, unit=True)
    r = evaluate_arrays(truth, truth, metrics=("ssim",))["ssim"]
    np.testing.assert_allclose(r, 1.0, atol=1e-12)


def test_psnr_of_known_mse_and_against_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(13)
    truth = rng.uniform(0.2, 0.7, size=(N, T, C, H, W))
    pred = truth + 0.1  # MSE = 0.01 exactly (no clipping) -> PSNR = 20 dB
    ms = MetricSet(["psnr"])
    ms.update(pred, truth)
    np.testing.assert_allclose(ms.compute()["psnr"], 20.0, rtol=1e-9)
    assert ms.metrics["psnr"].compute_overall() == pytest.approx(20.0, rel=1e-9)

    pred, truth = _fields(14, unit=True)
    m = make_metric("psnr")
    m.update(pred, truth)
    clipped = np.clip(pred, 0, 1)
    for t in range(T):
        frame = np.mean([peak_signal_noise_ratio(truth[n, t], clipped[n, t], data_range=1.0) for n in range(N)])
        assert m.compute_all_channels()[t] == pytest.approx(frame, rel=1e-10)
        for c in range(C):
            ch = np.mean([peak_signal_noise_ratio(truth[n, t, c], clipped[n, t, c], data_range=1.0)
                          for n in range(N)])
            assert m.compute()[t, c] == pytest.approx(ch, rel=1e-10)
    # OpenSTL's number: mean over samples and frames of the per-frame PSNR
    openstl = np.mean([-10 * np.log10(np.mean((clipped[n, f] - truth[n, f]) ** 2))
                       for n in range(N) for f in range(T)])
    assert m.compute_overall() == pytest.approx(openstl, rel=1e-10)


def test_psnr_perfect_is_inf_and_json_turns_it_into_none():
    _, truth = _fields(15, unit=True)
    out = evaluate_arrays_json(truth, truth, metrics=("psnr", "mse"), channel_names=["inflow", "outflow"])
    assert out["psnr"]["overall"] is None and out["psnr"]["per_lead"] == [None] * T
    assert out["mse"]["overall"] == 0.0
    assert set(out["mse"]["per_channel"]) == {"inflow", "outflow"}
    json.dumps(out, allow_nan=False)
    assert psnr_from_mse(0.0) == np.inf


def test_openstl_mse_mae_are_per_frame_pixel_sums():
    pred, truth = _fields(16, h=32, w=32, unit=True)
    # OpenSTL: MSE = np.mean((pred - true)**2, axis=(0, 1)).sum()  (frames (C, H, W) in [0, 1])
    expect_mse = np.mean((pred - truth) ** 2, axis=(0, 1)).sum()
    expect_mae = np.mean(np.abs(pred - truth), axis=(0, 1)).sum()
    ms = MetricSet(["openstl_mse", "openstl_mae"])
    ms.update(pred, truth)
    assert ms.metrics["openstl_mse"].compute_overall() == pytest.approx(expect_mse, rel=1e-12)
    assert ms.metrics["openstl_mae"].compute_overall() == pytest.approx(expect_mae, rel=1e-12)
    per_lead = ms.metrics["openstl_mse"].compute_all_channels()
    np.testing.assert_allclose(per_lead, ((pred - truth) ** 2).sum(axis=(2, 3, 4)).mean(axis=0), rtol=1e-12)
    # weather: element-wise mean in physical units = our MSE averaged over channels and leads
    pw, tw = _fields(17)
    m = make_metric("mse")
    m.update(pw, tw)
    assert m.compute_overall() == pytest.approx(np.mean((pw - tw) ** 2), rel=1e-12)


def test_data_range_scales_to_unit_frames():
    pred, truth = _fields(18, h=10, w=10, unit=True)
    lo, hi = np.array([-5.0, 100.0]), np.array([15.0, 300.0])
    scale = lambda x: x * (hi - lo)[None, None, :, None, None] + lo[None, None, :, None, None]  # noqa: E731
    a = evaluate_arrays(pred, truth, metrics=("ssim", "psnr", "openstl_mse", "openstl_mae"))
    b = evaluate_arrays(scale(pred), scale(truth), metrics=("ssim", "psnr", "openstl_mse", "openstl_mae"),
                        data_range=(lo, hi))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9)
    with pytest.raises(DataError, match="data_range"):
        evaluate_arrays(pred, truth, metrics=("psnr",), data_range=(1.0, 1.0))


# ------------------------------------------------------------------------------------- masks, streaming

ALL_NAMES = ("mse", "mae", "rmse", "wmse", "wrmse", "wmae", "acc", "ssim", "psnr", "openstl_mse",
             "openstl_mae", "high_band_ratio", "lsd")


def test_sample_mask_selects_the_right_samples():
    pred, truth = _fields(19, h=8, w=8, unit=True)
    clim = truth.mean(axis=0)
    mask = np.array([True, False, True, True, False])
    lat = LAT[:8]
    sub = evaluate_arrays(pred[mask], truth[mask], lat=lat, climatology=clim, metrics=ALL_NAMES)
    got = evaluate_arrays(pred, truth, lat=lat, climatology=clim, sample_mask=mask, metrics=ALL_NAMES,
                          batch_size=2)
    rest = evaluate_arrays(pred, truth, lat=lat, climatology=clim, sample_mask=~mask, metrics=ALL_NAMES)
    rest_ref = evaluate_arrays(pred[~mask], truth[~mask], lat=lat, climatology=clim, metrics=ALL_NAMES)
    for k in ALL_NAMES:
        np.testing.assert_allclose(got[k], sub[k], rtol=1e-10, err_msg=k)
        np.testing.assert_allclose(rest[k], rest_ref[k], rtol=1e-10, err_msg=k)


def test_empty_selection_gives_nan_not_an_error():
    pred, truth = _fields(20)
    r = evaluate_arrays(pred, truth, sample_mask=np.zeros(N, bool), metrics=("mse", "rmse"))
    assert np.isnan(r["mse"]).all() and np.isnan(r["rmse"]).all()


def test_region_mask_of_a_box_equals_cropping_for_unweighted_metrics():
    pred, truth = _fields(21)
    region = np.zeros((H, W), bool)
    region[2:6, 4:11] = True
    names = ("mse", "mae", "rmse", "psnr", "openstl_mse", "openstl_mae")
    a = evaluate_arrays(pred, truth, region_mask=region, metrics=names)
    b = evaluate_arrays(pred[..., 2:6, 4:11], truth[..., 2:6, 4:11], metrics=names)
    for k in names:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, err_msg=k)
    with pytest.raises(DataError, match="region_mask"):
        evaluate_arrays(pred, truth, region_mask=region[:-1], metrics=("mse",))
    with pytest.raises(DataError, match="no grid points"):
        evaluate_arrays(pred, truth, region_mask=np.zeros((H, W), bool), metrics=("mse",))


def test_streaming_equals_one_shot_for_every_metric():
    pred, truth = _fields(22, h=8, w=8, unit=True)
    clim = truth.mean(axis=0)
    lat = LAT[:8]
    assert set(ALL_NAMES) <= set(metric_names())
    one = MetricSet(ALL_NAMES, lat=lat)
    one.update(pred, truth, climatology=clim)
    many = MetricSet(ALL_NAMES, lat=lat)
    for sl in (slice(0, 1), slice(1, 3), slice(3, 5)):
        many.update(pred[sl], truth[sl], climatology=clim)
    for k in ALL_NAMES:
        m1, m2 = one.metrics[k], many.metrics[k]
        np.testing.assert_allclose(m2.compute(), m1.compute(), rtol=1e-10, err_msg=k)
        np.testing.assert_allclose(m2.compute_all_channels(), m1.compute_all_channels(), rtol=1e-10)
        np.testing.assert_allclose(m2.compute_all_leads(), m1.compute_all_leads(), rtol=1e-10)
        assert m2.compute_overall() == pytest.approx(m1.compute_overall(), rel=1e-10)
        assert m2.n_samples == N


def test_torch_inputs_give_the_numpy_result():
    torch = pytest.importorskip("torch")
    pred, truth = _fields(23)
    a = evaluate_arrays(pred, truth, lat=LAT, metrics=("mse", "wrmse"))
    b = evaluate_arrays(torch.from_numpy(pred).float(), torch.from_numpy(truth).float(), lat=torch.tensor(LAT),
                        sample_mask=torch.ones(N, dtype=torch.bool), metrics=("mse", "wrmse"))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)


def test_json_form_and_default_metric_choice():
    pred, truth = _fields(24, h=8, w=8, unit=True)
    out = evaluate_arrays_json(pred, truth)
    assert set(out) == {"mse", "mae", "rmse", "openstl_mse", "openstl_mae", "ssim", "psnr",
                        "high_band_ratio", "lsd"}
    entry = out["mse"]
    assert len(entry["per_lead"]) == T and set(entry["per_channel"]) == {"c0", "c1"}
    assert entry["n_samples"] == N and isinstance(entry["overall"], float)
    json.dumps(out, allow_nan=False)
    ms = MetricSet(["mse", "psnr"])
    ms.update(pred, truth)
    lists = ms.per_lead_lists()
    assert lists["mse"] == entry["per_lead"] and len(lists["psnr"]) == T
    weather = evaluate_arrays(pred, truth, lat=LAT[:8])
    assert "wrmse" in weather and "acc" not in weather


def test_registry_and_bad_input():
    with pytest.raises(ConfigError, match="unknown metric"):
        make_metric("nope")
    with pytest.raises(ValueError, match="twice"):
        @register_metric
        class Again(Metric):  # noqa: F811
            name = "mse"
    assert METRICS["mse"].__name__ == "MSE"
    pred, truth = _fields()
    with pytest.raises(DataError, match="shape"):
        evaluate_arrays(pred, truth[:, :2])
    with pytest.raises(DataError, match="sample_mask"):
        evaluate_arrays(pred, truth, sample_mask=np.ones(N + 1, bool), metrics=("mse",))
    with pytest.raises(DataError, match="no data"):
        make_metric("mse").compute()
    m = make_metric("mse")
    m.update(pred, truth)
    with pytest.raises(DataError, match="differs"):
        m.update(pred[..., :4], truth[..., :4])
