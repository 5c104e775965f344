"""``core.evaluate`` and ``s2kd evaluate``: scores against an independent numpy computation, the JSON shape,
the non-stationary / normal partition, regions, baselines and bad input.

The runs are tiny students with random weights (no training needed to test scoring), saved the way the
trainer saves them, on the ``tiny`` simulator datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main


def ensure_tiny_data(tmp_path_factory, kinds=("weather", "taxibj")) -> Path:
    """Generate the tiny datasets into ``<basetemp>/s2kd-tiny-data/tiny/<kind>`` unless present."""
    from core.synth.commands import prepare

    base = tmp_path_factory.getbasetemp() / "s2kd-tiny-data"
    prepare("tiny", tuple(kinds), 0, base)
    return base / "tiny"


def make_random_run(run_dir: Path, data_dir: Path, seed: int = 0) -> Path:
    """A student with random weights saved as a run (model.safetensors + model.json) on ``data_dir``."""
    import torch

    import models
    from core import checkpoint as ckpt
    from core.data import open_source
    from core.data.normalize import Normalizer
    from core.data.splits import read_dataset_manifest, split_from_manifest
    from core.train.data import describe_fields

    manifest = read_dataset_manifest(data_dir)
    fields = open_source(manifest["source"], data_dir)
    train = split_from_manifest(fields, data_dir)["train"].load()
    t_in, t_out = manifest["t_in"], manifest["t_out"]
    desc = describe_fields(train, t_in, t_out)
    desc.update(root=str(data_dir), source=manifest["source"])
    in_shape = (t_in, train.sizes["channel"], *train.shape[-2:])
    cfg = models.preset("student", "tiny", in_shape, t_out, grid=desc["grid"])
    torch.manual_seed(seed)
    module = models.build("student", cfg)
    meta = {"model": {"name": "student", "config": cfg.to_dict()}, "normalizer": Normalizer.fit(train).to_json(),
            "data": desc, "metrics": {"status": "finished"}, "training": {"method": "none"}}
    ckpt.save_model(run_dir, module.state_dict(), meta)
    return run_dir


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return ensure_tiny_data(tmp_path_factory)


@pytest.fixture(scope="module")
def weather_run(data_root, tmp_path_factory):
    return make_random_run(tmp_path_factory.mktemp("runs") / "weather-student", data_root / "weather")


@pytest.fixture(scope="module")
def taxibj_run(data_root, tmp_path_factory):
    return make_random_run(tmp_path_factory.mktemp("runs") / "taxibj-student", data_root / "taxibj", seed=1)


def _hand_predictions(run_dir: Path, data_dir: Path):
    """Independent path: read the test split, normalise by hand, run the module, invert by hand."""
    import torch

    import models
    from core import checkpoint as ckpt
    from core.data import open_source
    from core.data.splits import read_dataset_manifest, split_from_manifest

    meta = json.loads((run_dir / "model.json").read_text())
    manifest = read_dataset_manifest(data_dir)
    test = split_from_manifest(open_source(manifest["source"], data_dir), data_dir)["test"].load()
    arr = np.asarray(test.values, dtype=np.float32)
    t_in, t_out = manifest["t_in"], manifest["t_out"]
    n = arr.shape[0] - t_in - t_out + 1  # the tiny test splits have no gaps
    x = np.stack([arr[i:i + t_in] for i in range(n)])
    y = np.stack([arr[i + t_in:i + t_in + t_out] for i in range(n)])
    mean = np.asarray(meta["normalizer"]["mean"], np.float32)[:, None, None]
    std = np.asarray(meta["normalizer"]["std"], np.float32)[:, None, None]
    module = models.build("student", meta["model"]["config"])
    ckpt.load_into(module, ckpt.load_model_weights(run_dir), run_dir)
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy((x - mean) / std))["forecast"].numpy()
    pred = out.astype(np.float64) * std + mean
    return pred, y.astype(np.float64), test


def test_scores_equal_numpy_on_the_model_predictions(weather_run, data_root):
    from core.baselines import fit_baseline
    from core.data import open_source
    from core.data.splits import split_from_manifest
    from core.evaluate import evaluate_run

    res = evaluate_run(weather_run, device="cpu", batch_size=4)
    pred, y, test = _hand_predictions(weather_run, data_root / "weather")
    n, t_out = pred.shape[:2]
    assert res["n_windows"]["test"] == n
    d = pred - y
    mse = (d ** 2).mean(axis=(0, 2, 3, 4))
    np.testing.assert_allclose(res["test"]["mse"], mse, rtol=1e-5)
    np.testing.assert_allclose(res["test"]["mae"], np.abs(d).mean(axis=(0, 2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(res["test"]["rmse"], np.sqrt(mse), rtol=1e-5)
    lat = np.asarray(test["lat"].values)
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones(d.shape[-1])
    wmse = ((d ** 2) * w).sum(axis=(-2, -1)) / w.sum()  # (n, T, C)
    np.testing.assert_allclose(res["test"]["wrmse"], np.sqrt(wmse.mean(axis=(0, 2))), rtol=1e-5)
    # per channel, the lead-wise RMSE of the channel alone
    for c, name in enumerate(res["channels"]):
        np.testing.assert_allclose(res["per_channel"]["test"]["rmse"][name],
                                   np.sqrt((d[:, :, c] ** 2).mean(axis=(0, 2, 3))), rtol=1e-5)
    # ACC against the training climatology (month × hour mean), WeatherBench's centred, cos-lat weighted form
    root = data_root / "weather"
    train = split_from_manifest(open_source("weatherbench", root), root)["train"].load()
    clim_model = fit_baseline("climatology", train, 12, 12)
    times = np.asarray(test["time"].values)
    clim = np.stack([clim_model.forecast_times(times[i + 12:i + 24]) for i in range(n)]).astype(np.float64)
    f, a = pred - clim, y - clim
    acc = np.zeros((t_out, d.shape[2]))
    for t in range(t_out):
        for c in range(d.shape[2]):
            fp = f[:, t, c] - f[:, t, c].mean()
            ap = a[:, t, c] - a[:, t, c].mean()
            acc[t, c] = (w * fp * ap).sum() / np.sqrt((w * fp ** 2).sum() * (w * ap ** 2).sum())
    np.testing.assert_allclose(res["test"]["acc"], acc.mean(axis=1), rtol=1e-5, atol=1e-9)
    # every lead of every metric is a finite number
    for metric in res["metrics"]:
        assert all(v is not None and np.isfinite(v) for v in res["test"][metric]), metric


def test_evaluate_json_cli_structure(weather_run, capsys):
    assert main(["evaluate", "--run", str(weather_run), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lead_hours"] == [6.0 * k for k in range(1, 13)]
    for subset in ("test", "test_nonstationary", "test_normal"):
        assert subset in out
        for metric in ("mse", "mae", "rmse", "wrmse", "acc", "high_band_ratio", "lsd"):
            assert metric in out[subset]
            assert len(out[subset][metric]) == 12
    assert set(out["n_windows"]) == {"test", "test_nonstationary", "test_normal"}
    assert out["spectra"]["kind"] == "zonal energy spectrum"
    assert len(out["spectra"]["truth"]["t2m"]) == 12 and len(out["spectra"]["truth"]["t2m"][0]) == 33
    # the plain-text table names the subsets
    assert main(["evaluate", "--run", str(weather_run), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "[test_nonstationary]" in text and "wrmse" in text


def test_nonstationary_and_normal_partition_the_windows(taxibj_run, data_root):
    from core.data.nonstationary import nonstationary_mask
    from core.evaluate import evaluate_run, test_data_for_run
    from core.forecaster import load_forecaster

    fc = load_forecaster(taxibj_run, device="cpu")
    data = test_data_for_run(fc)
    res = evaluate_run(taxibj_run, device="cpu", batch_size=64, data=data, forecaster=fc)
    n = res["n_windows"]
    k = int(nonstationary_mask(data.dataset, events=data_root / "taxibj").sum())
    assert 0 < k < n["test"]
    assert n["test_nonstationary"] == k and n["test_normal"] == n["test"] - k
    # pooled sums: the whole-split MSE is the window-weighted mean of the two subsets' MSE
    for metric in ("mse", "mae", "openstl_mse"):
        whole = np.asarray(res["test"][metric])
        parts = (k * np.asarray(res["test_nonstationary"][metric])
                 + (n["test"] - k) * np.asarray(res["test_normal"][metric])) / n["test"]
        np.testing.assert_allclose(whole, parts, rtol=1e-9)
    # city metrics in OpenSTL's units are there and finite
    for metric in ("ssim", "psnr", "openstl_mse", "high_band_ratio", "lsd"):
        assert all(np.isfinite(v) for v in res["test"][metric])
    assert res["spectra"]["kind"] == "radially averaged PSD"


def test_data_range_is_read_on_first_use(data_root):
    """The training split's (min, max) on city grids scales the frame metrics; it is read on first use,
    not when the test data opens (the dashboard's first page does not need it)."""
    from core.evaluate import _UNSET, load_test_data

    city = load_test_data(data_root / "taxibj")
    assert city._data_range is _UNSET  # not read yet
    train = np.asarray(city.splits["train"].values, dtype=np.float64)
    assert city.data_range == (float(train.min()), float(train.max()))
    assert city.data_range is city.data_range  # computed once
    assert load_test_data(data_root / "weather").data_range is None  # lat-lon grids: not used


def test_region_restricts_the_grid(weather_run, data_root):
    from core.evaluate import evaluate_run

    pred, y, test = _hand_predictions(weather_run, data_root / "weather")
    lat, lon = np.asarray(test["lat"].values), np.asarray(test["lon"].values)
    # Europe: 35…75°N, 12.5°W…42.5°E (across the 0° seam)
    mask = ((lat >= 35) & (lat <= 75))[:, None] & ((lon >= 347.5) | (lon <= 42.5))[None, :]
    res = evaluate_run(weather_run, device="cpu", region="Europe")
    assert res["region"] == "Europe"
    d = (pred - y)[..., mask]  # (n, T, C, points)
    np.testing.assert_allclose(res["test"]["mse"], (d ** 2).mean(axis=(0, 2, 3)), rtol=1e-5)
    glob = evaluate_run(weather_run, device="cpu")
    assert not np.allclose(res["test"]["mse"], glob["test"]["mse"], rtol=1e-3)
    # a custom box written as numbers gives the same as the named region
    box = evaluate_run(weather_run, device="cpu", region="35,75,-12.5,42.5")
    np.testing.assert_allclose(box["test"]["mse"], res["test"]["mse"], rtol=1e-12)


def test_persistence_baseline_cli(data_root, capsys):
    from core.data import open_source
    from core.data.splits import split_from_manifest

    root = data_root / "weather"
    assert main(["evaluate", "--baseline", "persistence", "--data", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    test = split_from_manifest(open_source("weatherbench", root), root)["test"].load()
    arr = np.asarray(test.values, dtype=np.float64)
    n = arr.shape[0] - 23
    err = np.stack([arr[i + 12:i + 24] - arr[i + 11][None] for i in range(n)])
    np.testing.assert_allclose(out["test"]["mae"], np.abs(err).mean(axis=(0, 2, 3, 4)), rtol=1e-6)
    assert out["model"] == "persistence"


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "--run", "/nonexistent/run"], "no trained model"),
    (["evaluate"], "either --run"),
    (["evaluate", "--baseline", "persistence"], "needs --data"),
    (["evaluate", "--baseline", "persistence", "--data", "/nonexistent/data"], "not found"),
    (["evaluate", "--split", "holdout", "--run", "x"], "invalid choice"),
])
def test_bad_input_exits_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("s2kd: error:") and words in err and err.count("\n") == 1


def test_bad_region_exits_2(weather_run, taxibj_run, capsys):
    assert main(["evaluate", "--run", str(weather_run), "--region", "Atlantis", "--device", "cpu"]) == 2
    assert "unknown region" in capsys.readouterr().err
    # a lat/lon box on a city grid
    assert main(["evaluate", "--run", str(taxibj_run), "--region", "Europe", "--device", "cpu"]) == 2
    assert "city grid" in capsys.readouterr().err
