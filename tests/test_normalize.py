"""Normalizer: hand-computed statistics, chunked float64 accumulation, transforms, JSON round trip."""

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

from core.data.normalize import Normalizer
from core.errors import DataError


def fields(data, channels=None, units=None):
    data = np.asarray(data, dtype=np.float32)
    n, c = data.shape[:2]
    channels = channels or [f"c{i}" for i in range(c)]
    coords = {"time": np.datetime64("2020-01-01", "ns") + np.arange(n) * np.timedelta64(1, "h"),
              "channel": channels}
    if units:
        coords["units"] = ("channel", units)
    return xr.DataArray(data, dims=("time", "channel", "y", "x"), coords=coords, attrs={"cadence": "PT1H"})


def test_fit_hand_computed():
    # channel 0: values 1,3,5,7 → mean 4, population variance (9+1+1+9)/4 = 5
    # channel 1: constant 2 → std floored
    data = np.array([[[[1, 3]], [[2, 2]]], [[[5, 7]], [[2, 2]]]])  # (2, 2, 1, 2)
    norm = Normalizer.fit(fields(data, units=["K", "m"]), std_floor=1e-3)
    assert norm.channels == ("c0", "c1") and norm.units == ("K", "m")
    assert norm.mean.tolist() == [4.0, 2.0]
    assert norm.std[0] == pytest.approx(math.sqrt(5.0), rel=1e-12)
    assert norm.std[1] == 1e-3
    assert norm.mean.dtype == np.float64
    z = norm.apply(data.astype(np.float32))
    np.testing.assert_allclose(z[:, 0].ravel(), (np.array([1, 3, 5, 7]) - 4) / math.sqrt(5), rtol=1e-6)
    np.testing.assert_array_equal(z[:, 1], 0)


def test_chunked_float64_accumulation_matches_numpy_and_dask():
    rng = np.random.default_rng(1)
    # > 2 fitting chunks (256 time steps each); large offset tests numerical stability
    data = (1e4 + rng.normal(0, 0.5, size=(600, 2, 2, 3))).astype(np.float32)
    data[:, 1] = rng.normal(-3, 7, size=(600, 2, 3)).astype(np.float32)
    ref = data.astype(np.float64)
    exp_mean = ref.transpose(1, 0, 2, 3).reshape(2, -1).mean(1)
    exp_std = ref.transpose(1, 0, 2, 3).reshape(2, -1).std(1)
    norm = Normalizer.fit(fields(data))
    np.testing.assert_allclose(norm.mean, exp_mean, rtol=1e-12)
    np.testing.assert_allclose(norm.std, exp_std, rtol=1e-9)
    lazy = Normalizer.fit(fields(data).chunk({"time": 50}))
    np.testing.assert_allclose(lazy.mean, exp_mean, rtol=1e-12)
    np.testing.assert_allclose(lazy.std, exp_std, rtol=1e-9)


def test_apply_invert_numpy_torch_xarray_broadcast():
    norm = Normalizer(("a", "b"), [10.0, -1.0], [2.0, 0.5])
    x = np.zeros((3, 4, 2, 5, 6), dtype=np.float32)  # (B, T, C, H, W)
    x[:, :, 0] = 14.0
    x[:, :, 1] = 0.0
    z = norm.apply(x)
    assert z.shape == x.shape and z.dtype == np.float32
    assert np.all(z[:, :, 0] == 2.0) and np.all(z[:, :, 1] == 2.0)
    np.testing.assert_allclose(norm.invert(z), x)

    t = torch.from_numpy(x)
    zt = norm.apply(t)
    assert isinstance(zt, torch.Tensor) and zt.dtype == torch.float32
    assert torch.all(zt == 2.0)
    assert torch.allclose(norm.invert(zt), t)
    assert norm.apply(torch.ones(2, 5, 6, dtype=torch.float64)).dtype == torch.float64

    da = fields(np.full((2, 2, 1, 1), 14.0), channels=["a", "b"])
    zd = norm.apply(da)
    assert zd.dims == da.dims and zd.attrs["cadence"] == "PT1H"
    assert zd.sel(channel="a").values.ravel().tolist() == [2.0, 2.0]
    assert zd.sel(channel="b").values.ravel().tolist() == [30.0, 30.0]  # (14 − (−1)) / 0.5
    with pytest.raises(DataError, match="do not match"):
        norm.apply(fields(np.ones((1, 2, 1, 1)), channels=["b", "a"]))


def test_channel_mismatch():
    norm = Normalizer(("a", "b"), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(DataError, match="2 channels"):
        norm.apply(np.zeros((4, 3, 5, 5), dtype=np.float32))
    with pytest.raises(DataError, match="2 channels"):
        norm.invert(torch.zeros(3, 5, 5))
    with pytest.raises(DataError, match="2 channels"):
        norm.apply(np.zeros((5, 5)))
    with pytest.raises(DataError, match="do not match"):
        norm.check_channels(["a", "c"])
    norm.check_channels(["a", "b"])


def test_json_roundtrip_save_load(tmp_path):
    norm = Normalizer(("z500", "t850"), [54000.5, 274.25], [3000.0, 15.5], units=("m**2 s**-2", "K"))
    again = Normalizer.from_json(norm.to_json())
    assert again == norm
    assert Normalizer.from_json(json.dumps(norm.to_json())) == norm
    path = tmp_path / "sub" / "normalizer.json"
    norm.save(path)
    assert Normalizer.load(path) == norm
    assert json.loads(path.read_text())["channels"] == ["z500", "t850"]
    assert not [p for p in path.parent.iterdir() if p.name != "normalizer.json"]  # no temp files left


def test_bad_files_and_values(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Normalizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: normaliser: invalid JSON"):
        Normalizer.load(bad)
    with pytest.raises(DataError, match="missing key"):
        Normalizer.from_json({"channels": ["a"], "mean": [0.0]})
    with pytest.raises(DataError, match="unknown key"):
        Normalizer.from_json({"channels": ["a"], "mean": [0.0], "std": [1.0], "scale": 2})
    with pytest.raises(DataError, match="1 channels but 2 means"):
        Normalizer.from_json({"channels": ["a"], "mean": [0.0, 1.0], "std": [1.0]})
    with pytest.raises(DataError, match="std must be > 0"):
        Normalizer(("a",), [0.0], [0.0])
    nan = np.ones((3, 1, 2, 2))
    nan[1, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or Inf"):
        Normalizer.fit(fields(nan))
    with pytest.raises(DataError, match="no time steps"):
        Normalizer.fit(fields(np.ones((0, 1, 2, 2))))
