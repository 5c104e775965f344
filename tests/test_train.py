"""The trainer: schedule, exact resume after SIGKILL, SIGTERM, DDP equality, CLI errors, forecaster.

The model is a ~1k-parameter stand-in (convolution over stacked frames + dropout, so the RNG state
matters for exact resume); the data are canonical xarray fields built here and cut by the real
``core.data.windows.WindowDataset``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- stand-ins
def make_fields(n_time: int = 96, channels=("a", "b"), h: int = 4, w: int = 8, seed: int = 0):
    """Canonical lat-lon fields: travelling waves + noise, hourly from 2000-01-01."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    t = np.arange(n_time)[:, None, None, None]
    c = np.arange(len(channels))[None, :, None, None]
    lat = np.linspace(-60, 60, h)
    lon = np.arange(w) * (360.0 / w)
    phase = np.deg2rad(lon)[None, None, None, :] - 0.3 * t
    data = np.sin(phase + c) * np.cos(np.deg2rad(lat))[None, None, :, None] + 0.1 * rng.standard_normal(
        (n_time, len(channels), h, w))
    da = xr.DataArray(
        (10 + 3 * data).astype("float32"), dims=("time", "channel", "lat", "lon"), name="fields",
        coords={"time": np.datetime64("2000-01-01T00") + np.arange(n_time).astype("timedelta64[h]"),
                "channel": list(channels), "lat": lat, "lon": lon,
                "units": ("channel", ["K"] * len(channels))},
        attrs={"source": "test", "grid": "latlon", "root": "memory", "cadence": "PT1H"})
    return da


def make_bundle(n_train: int = 40, n_val: int = 16, t_in: int = 2, t_out: int = 2, **kw):
    """A DataBundle of ``n_train`` training and ``n_val`` validation windows (stride 1)."""
    from core.train.data import bundle_from_splits

    span = t_in + t_out - 1
    da = make_fields(n_train + n_val + 2 * span + 4)
    train = da.isel(time=slice(0, n_train + span))
    val = da.isel(time=slice(n_train + span + 2, n_train + span + 2 + n_val + span))
    return bundle_from_splits({"train": train, "val": val}, t_in, t_out, **kw)


def tiny_net_class():
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        """(B, T_in, C, H, W) → (B, T_out, C, H, W): one 3×3 conv over stacked frames, dropout."""

        def __init__(self, config):
            super().__init__()
            self.config = dict(config)
            t_in, c, _, _ = config["in_shape"]
            self.t_out, self.c = config["t_out"], c
            self.conv = nn.Conv2d(t_in * c, 8, 3, padding=1)
            self.drop = nn.Dropout(config.get("dropout", 0.2))
            self.head = nn.Conv2d(8, self.t_out * c, 1)

        def forward(self, x, return_features=False):
            b, t, c, h, w = x.shape
            z = torch.tanh(self.conv(x.reshape(b, t * c, h, w)))
            out = {"forecast": self.head(self.drop(z)).reshape(b, self.t_out, self.c, h, w)}
            if return_features:
                out["latent"] = z
            return out

    return TinyNet


def tiny_spec(in_shape=(2, 2, 4, 8), t_out=2, dropout=0.2):
    from core.train import ModelSpec

    config = {"in_shape": list(in_shape), "t_out": t_out, "dropout": dropout}
    cls = tiny_net_class()
    return ModelSpec(name="test-tiny", config=config, build=lambda: cls(config))


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_loader_workers_do_not_change_the_result(tmp_path):
    from core.config import load_config
    from core.train import train

    for nw in (0, 2):
        cfg = load_config(None, ["train.epochs=1", "train.batch_size=8", "runtime.device=cpu", "distill.method=none",
                                 f"runtime.num_workers={nw}", "runtime.progress=false"])
        train(cfg, tmp_path / f"nw{nw}", data=make_bundle(), spec=tiny_spec())
    _assert_same_weights(tmp_path / "nw0" / "model.safetensors", tmp_path / "nw2" / "model.safetensors")


# ----------------------------------------------------------------------------------------------- teacher cache
def _train_standin(run_dir, epochs=1, dropout=0.0):
    from core.config import load_config
    from core.train import train

    cfg = load_config(None, [f"train.epochs={epochs}", "train.batch_size=8", "runtime.device=cpu",
                             "distill.method=none", "runtime.progress=false"])
    return train(cfg, run_dir, data=make_bundle(), spec=tiny_spec(dropout=dropout))


def test_teacher_cache_one_pass_exact_outputs_and_reuse(tmp_path):
    import torch

    from core.forecaster import load_forecaster
    from core.train.teacher_cache import build_teacher_cache

    _train_standin(tmp_path / "teacher")
    cls = tiny_net_class()
    builder = lambda name, c: cls(c)  # noqa: E731
    bundle = make_bundle()
    targets = build_teacher_cache(tmp_path / "teacher", bundle, device="cpu", builder=builder, batch_size=8)
    assert targets.stats["computed"] == len(bundle.train) == 40 and targets.stats["cached"] == 0
    # the cached outputs are the teacher's own outputs on those windows (independent forward pass)
    fc = load_forecaster(tmp_path / "teacher", device="cpu", builder=builder)
    x = torch.stack([bundle.train[i]["x"] for i in (3, 17)])
    with torch.no_grad():
        ref = fc.module(x, return_features=True)
    got = targets.lookup(torch.tensor([3, 17]))
    assert set(got) == {"forecast", "latent"}
    torch.testing.assert_close(got["forecast"], ref["forecast"], rtol=0, atol=1e-6)
    torch.testing.assert_close(got["latent"], ref["latent"], rtol=0, atol=1e-6)
    # a second student reuses the cache: no teacher pass
    again = build_teacher_cache(tmp_path / "teacher", make_bundle(), device="cpu", builder=builder)
    assert again.stats["computed"] == 0 and again.stats["cached"] == 40
    assert again.keys == targets.keys
    # retraining the teacher changes its weights hash: nothing stale is served
    import shutil

    shutil.rmtree(tmp_path / "teacher2", ignore_errors=True)
    _train_standin(tmp_path / "teacher2", epochs=2)
    other = build_teacher_cache(tmp_path / "teacher2", make_bundle(), tmp_path / "teacher" / "teacher-cache",
                                device="cpu", builder=builder)
    assert other.stats["computed"] == 40 and set(other.keys.values()).isdisjoint(targets.keys.values())


def test_distillation_reads_the_cache_and_output_kd_pulls_toward_the_teacher(tmp_path):
    import torch

    from core.config import load_config
    from core.train import Trainer
    from core.train.teacher_cache import build_teacher_cache

    _train_standin(tmp_path / "teacher", epochs=3)
    cls = tiny_net_class()
    bundle = make_bundle()
    targets = build_teacher_cache(tmp_path / "teacher", bundle, device="cpu", builder=lambda n, c: cls(c))

    def distance_to_teacher(run):
        from core.forecaster import load_forecaster

        fc = load_forecaster(run, device="cpu", builder=lambda n, c: cls(c))
        x = torch.stack([bundle.train[i]["x"] for i in range(len(bundle.train))])
        t = targets.lookup(torch.arange(len(bundle.train)))["forecast"]
        return float(((fc.predict(x) - t) ** 2).mean())

    common = ["train.epochs=3", "train.batch_size=8", "runtime.device=cpu", "runtime.progress=false",
              "train.seed=5", "distill.teacher=unused", "train.lr=0.01"]
    runs = {}
    for method, weights in (("none", []), ("output", ["distill.weights.output=20.0"])):
        cfg = load_config(None, [*common, f"distill.method={method}", *weights])
        run = tmp_path / method
        Trainer(cfg, run, make_bundle(), tiny_spec(dropout=0.0), teacher=targets).run()
        runs[method] = run
    hist = [json.loads(x) for x in (runs["output"] / "metrics.jsonl").read_text().splitlines()]
    assert all("output" in h["train_terms"] for h in hist)
    assert hist[-1]["train_terms"]["output"] < hist[0]["train_terms"]["output"]  # the KD term decreases
    assert distance_to_teacher(runs["output"]) < distance_to_teacher(runs["none"])


# ----------------------------------------------------------------------------------------------- forecaster
def test_forecaster_refuses_other_channels_and_grids(tmp_path):
    import torch

    from core.errors import DataError, UserError
    from core.forecaster import load_forecaster

    _train_standin(tmp_path / "run")
    cls = tiny_net_class()
    fc = load_forecaster(tmp_path / "run", device="cpu", builder=lambda n, c: cls(c))
    assert fc.t_in == 2 and fc.t_out == 2 and fc.channels == ["a", "b"]
    with pytest.raises(DataError, match="3 channels") as info:
        fc.predict(torch.zeros(1, 2, 3, 4, 8))
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="grid"):
        fc.predict(torch.zeros(1, 2, 2, 8, 8))
    with pytest.raises(DataError, match="input frames"):
        fc.predict(torch.zeros(1, 3, 2, 4, 8))
    with pytest.raises(UserError, match="no text path"):
        fc.predict(torch.zeros(1, 2, 2, 4, 8), "a narrative")

    # physical-unit xarray windows: forecast times continue the cadence, units come back physical
    da = make_fields(10)
    window = da.isel(time=slice(0, 2))
    out = fc.predict(window)
    assert out.dims == window.dims and out.sizes["time"] == 2
    assert str(out["time"].values[0])[:13] == "2000-01-01T02"
    ref = fc.normalizer.invert(fc.predict(fc.normalizer.apply(window.values)))
    np.testing.assert_allclose(out.values, ref, rtol=1e-5, atol=1e-4)
    assert abs(float(out.mean()) - 10) < 5  # physical units, not normalised
    with pytest.raises(DataError, match="channels"):
        fc.predict(window.assign_coords(channel=["a", "c"]))
    with pytest.raises(DataError, match="grid along 'lat'"):
        fc.predict(window.assign_coords(lat=window["lat"].values + 1.0))


# ----------------------------------------------------------------------------------------------- CLI errors
def _cli(argv, capsys):
    from core.cli import main

    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return status, err


def test_cli_bad_config_key_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 2\nlearning_rate = 0.1\n")
    status, err = _cli(["train", "--config", bad, "--out", tmp_path / "run"], capsys)
    assert status == 2 and err.count("\n") == 0
    assert err.startswith("s2kd: error:") and str(bad) in err and "train.learning_rate" in err
    good = tmp_path / "good.toml"
    good.write_text("[train]\nepochs = 2\n")
    status, err = _cli(["train", "--config", good, "--out", tmp_path / "run", "train.nope=3"], capsys)
    assert status == 2 and "train.nope" in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_cli_corrupt_checkpoint_exits_2(tmp_path, capsys):
    _train_standin(tmp_path / "run")
    capsys.readouterr()
    state = tmp_path / "run" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:64])
    status, err = _cli(["train", "--out", tmp_path / "run", "--resume"], capsys)
    assert status == 2 and "state.safetensors" in err and err.count("\n") == 0
    (tmp_path / "run" / "model.json").write_text("{truncated")
    status, err = _cli(["predict", "--run", tmp_path / "run"], capsys)
    assert status == 2 and "model.json" in err and err.count("\n") == 0
    status, err = _cli(["predict", "--run", tmp_path / "nowhere"], capsys)
    assert status == 2 and "not found" in err


def test_distillation_without_teacher_is_a_config_error(tmp_path, capsys):
    from core.config import load_config
    from core.errors import ConfigError
    from core.train import train

    cfg = load_config(None, ["distill.method=s2kd", "runtime.device=cpu"])
    with pytest.raises(ConfigError, match="needs a teacher run"):
        train(cfg, tmp_path / "run", data=make_bundle(), spec=tiny_spec())




# ----------------------------------------------------------------------------------------------- device, text
def test_device_helper_on_cpu():
    import torch

    from core.device import Runtime, pick_device, unwrap
    from core.errors import ConfigError

    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu9")
    rt = Runtime.create("cpu", amp=True, channels_last=True)
    assert rt.amp_dtype is None  # autocast is a no-op on CPU
    with rt.autocast():
        assert torch.ones(2).dtype == torch.float32
    net = tiny_net_class()({"in_shape": [2, 2, 4, 8], "t_out": 2})
    prepared = rt.prepare(net)
    assert unwrap(prepared) is net
    batch = rt.to({"x": torch.zeros(2, 2, 4, 8), "nested": [torch.zeros(1)], "t0": "2020"})
    assert batch["x"].is_contiguous(memory_format=torch.channels_last) and batch["t0"] == "2020"
    assert rt.loader_kwargs()["pin_memory"] is False


def test_text_table_pads_per_batch():
    from core.train.text import TextTable

    table = TextTable({"train": {5: (np.ones((3, 4), np.float32), np.full(4, 0.5, np.float32)),
                                 9: (np.full((1, 4), 2.0, np.float32), np.zeros(4, np.float32))}})
    out = table.lookup("train", [9, 5])
    assert out["text_tokens"].shape == (2, 3, 4) and out["text_pooled"].shape == (2, 4)
    assert out["text_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert float(out["text_tokens"][0, 1:].abs().sum()) == 0.0 and float(out["text_tokens"][0, 0, 0]) == 2.0


# ----------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_weather(tmp_path_factory):
    """The tiny synthetic WeatherBench folder (the real simulator, a few seconds)."""
    from core.synth.commands import synthesize

    out = tmp_path_factory.mktemp("data") / "weather"
    synthesize("weather", "tiny", 0, out)
    return out


@pytest.mark.slow
def test_cli_teacher_student_predict_on_tiny_weather(tmp_path, tiny_weather, capsys):
    """`s2kd train` a registry teacher and a distilled student on simulator data, then `s2kd predict`."""
    import xarray as xr

    small = ["data.max_train_windows=8", "data.max_val_windows=4", "train.epochs=1", "train.batch_size=4",
             f"data.root={tiny_weather}", "runtime.device=cpu", "runtime.progress=false"]
    teacher = tmp_path / "teacher"
    status, err = _cli(["train", "--config", ROOT / "configs/weather/tiny.toml", "--out", teacher,
                        "model.name=teacher-vision", "distill.method=none", *small], capsys)
    assert status == 0, err
    student = tmp_path / "student"
    status, err = _cli(["train", "--config", ROOT / "configs/weather/tiny.toml", "--out", student,
                        "distill.method=spectral", f"distill.teacher={teacher}", *small], capsys)
    assert status == 0, err
    meta = json.loads((student / "model.json").read_text())
    assert meta["training"]["teacher_cache"]["computed"] == 8
    assert meta["model"]["config"]["teacher_dim"] == json.loads((teacher / "model.json").read_text())[
        "model"]["config"]["latent_dim"]
    hist = [json.loads(x) for x in (student / "metrics.jsonl").read_text().splitlines()]
    assert set(hist[0]["train_terms"]) == {"task", "spectral"}
    # the saved config reproduces the run's settings
    from core.config import load_config

    cfg = load_config(student / "config.toml")
    assert cfg.distill.method == "spectral" and cfg.data.max_train_windows == 8

    out = tmp_path / "forecast.nc"
    status, err = _cli(["predict", "--run", student, "--index", "1", "--out", out], capsys)
    assert status == 0, err
    with xr.open_dataset(out) as ds:
        f = ds["forecast"].load()
    assert f.sizes["time"] == 12 and list(f["channel"].values) == ["z500", "t850", "t2m"]
    assert 200 < float(f.sel(channel="t2m").mean()) < 330  # kelvin, not normalised units

    # data whose channels differ from the training ones: one line, exit 2
    status, err = _cli(["train", "--out", student, "--resume", "data.variables=[\"t2m\"]"], capsys)
    assert status == 2 and err.count("\n") == 0, err


class SlowWindows:
    """Wraps a window dataset; each item takes ``delay`` seconds (so a test can kill a run mid-epoch)."""

    def __init__(self, ds, delay: float):
        self.ds, self.delay = ds, delay

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.ds[i]


def _child_main(argv):
    """Subprocess entry: ``python -m tests.test_train RUN_DIR [--resume] [--delay S] [--dropout P] KEY=VALUE...``."""
    import argparse

    from core.config import load_config
    from core.train import train

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args(argv)
    import torch

    torch.set_num_threads(1)
    cfg = load_config(None, ["runtime.device=cpu", "distill.method=none", "runtime.progress=false", *a.overrides])
    bundle = make_bundle()
    if a.delay:
        bundle.train = SlowWindows(bundle.train, a.delay)
    result = train(cfg, a.run_dir, resume=a.resume, data=bundle, spec=tiny_spec(dropout=a.dropout))
    print(json.dumps({"status": result.status, "step": result.global_step}), flush=True)
    sys.exit(result.exit_code)


if __name__ == "__main__":  # pragma: no cover - subprocess entry for the tests below
    _child_main(sys.argv[1:])


# ----------------------------------------------------------------------------------------------- helpers
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _child(run_dir, *args, delay=0.0, dropout=0.2, resume=False):
    cmd = [sys.executable, "-m", "tests.test_train", str(run_dir), "--delay", str(delay), "--dropout", str(dropout)]
    if resume:
        cmd.append("--resume")
    return cmd + list(args)


def _progress(run_dir):
    try:
        return json.loads((Path(run_dir) / "state.json").read_text())["progress"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def _wait_for_step(proc, run_dir, step, timeout=120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        p = _progress(run_dir)
        if p is not None and p["global_step"] >= step:
            return p
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"child ended early ({proc.returncode}): {err[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("child did not reach the step in time")


def _assert_same_weights(a, b, exact=True, atol=0.0):
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        if exact:
            assert np.array_equal(wa[k], wb[k]), k
        else:
            np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=atol, err_msg=k)


def _state_weights(run_dir):
    return {k: v for k, v in _weights(Path(run_dir) / "state.safetensors").items() if k.startswith("model.")}


COMMON = ["train.epochs=2", "train.batch_size=4", "train.checkpoint_every=3", "train.seed=3"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted run (subprocess) that the kill/resume tests compare against."""
    run = tmp_path_factory.mktemp("ref") / "run"
    res = subprocess.run(_child(run, *COMMON), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


# ----------------------------------------------------------------------------------------------- tests
def test_lr_schedule_warmup_then_cosine():
    from core.train import lr_at

    # warm-up: linear from lr/warmup to lr
    assert lr_at(0, 100, 10, 1.0, 0.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    # cosine: peak right after warm-up, half-way at the middle, floor at the end
    assert lr_at(10, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 2.0, 0.1) == pytest.approx(0.2)
    assert lr_at(0, 10, 0, 1.0, 0.0) == pytest.approx(1.0)


def test_train_run_directory_and_validation_selection(tmp_path):
    import torch

    from core import checkpoint as ckpt
    from core.config import load_config
    from core.forecaster import load_forecaster
    from core.train import train

    cfg = load_config(None, ["train.epochs=3", "train.batch_size=8", "train.lr=0.02", "runtime.device=cpu",
                             "distill.method=none", "runtime.progress=false", "train.patience=0"])
    bundle = make_bundle()
    result = train(cfg, tmp_path / "run", data=bundle, spec=tiny_spec())
    run = tmp_path / "run"
    assert result.status == "finished" and result.epochs_done == 3 and result.global_step == 15
    for name in ("model.safetensors", "model.json", "config.toml", "metrics.jsonl", "state.safetensors", "state.json"):
        assert (run / name).is_file(), name
    history = ckpt.read_metrics(run)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(h["samples"] == 40 and h["samples_per_s"] > 0 for h in history)
    best = min(history, key=lambda h: h["val_mse"])
    meta = json.loads((run / "model.json").read_text())
    assert meta["metrics"]["best_epoch"] == best["epoch"] == result.best_epoch
    assert meta["normalizer"]["channels"] == ["a", "b"]
    assert meta["data"]["channels"] == ["a", "b"] and meta["data"]["t_in"] == 2

    # the saved model reproduces the logged validation MSE (independent recomputation)
    cls = tiny_net_class()
    fc = load_forecaster(run, device="cpu", builder=lambda name, c: cls(c))
    xs = torch.stack([bundle.val[i]["x"] for i in range(len(bundle.val))])
    ys = torch.stack([bundle.val[i]["y"] for i in range(len(bundle.val))])
    pred = fc.predict(xs)
    assert pred.shape == ys.shape
    assert float(((pred - ys) ** 2).mean()) == pytest.approx(best["val_mse"], rel=1e-5)
    assert fc.predict(xs[0]).shape == ys[0].shape  # unbatched in, unbatched out

    # a second run into the same folder without --resume is refused
    from core.errors import UserError

    with pytest.raises(UserError, match="--resume"):
        train(cfg, run, data=bundle, spec=tiny_spec())


def test_early_stopping_uses_validation_only(tmp_path):
    from core.config import load_config
    from core.train import train

    # lr so small nothing improves beyond rounding; patience 1 stops after the first non-improving epoch
    cfg = load_config(None, ["train.epochs=6", "train.batch_size=8", "train.lr=1e-12", "runtime.device=cpu",
                             "distill.method=none", "runtime.progress=false", "train.patience=1"])
    bundle = make_bundle()
    bundle.test = None
    result = train(cfg, tmp_path / "run", data=bundle, spec=tiny_spec(dropout=0.0))
    vals = [h["val_mse"] for h in result.history]
    assert result.status == "early-stopped" and len(vals) < 6
    assert vals[-1] >= min(vals[:-1])


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, reference_run):
    run = tmp_path / "run"
    proc = subprocess.Popen(_child(run, *COMMON, delay=0.03), env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    p = _wait_for_step(proc, run, 12)  # a mid-epoch checkpoint of epoch 2 (10 steps per epoch)
    time.sleep(0.2)  # a step or two past it
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert p["epoch"] == 1 and 0 < p["step_in_epoch"] < 10
    res = subprocess.run(_child(run, *COMMON, resume=True), env=_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _progress(run)["status"] == "finished"
    _assert_same_weights(run / "model.safetensors", reference_run / "model.safetensors")
    a, b = _state_weights(run), _state_weights(reference_run)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ref_hist = [json.loads(line) for line in (reference_run / "metrics.jsonl").read_text().splitlines()]
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["val_mse"] for h in hist] == [h["val_mse"] for h in ref_hist]
    assert [h["train_loss"] for h in hist] == pytest.approx([h["train_loss"] for h in ref_hist], rel=1e-12)


def test_sigterm_finishes_the_step_checkpoints_and_exits_cleanly(tmp_path, reference_run):
    run = tmp_path / "run"
    proc = subprocess.Popen(_child(run, *COMMON, delay=0.03), env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(proc, run, 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "stopped by signal" in err
    p = _progress(run)
    assert p["status"] == "interrupted" and p["global_step"] >= 3
    res = subprocess.run(_child(run, *COMMON, resume=True), env=_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same_weights(run / "model.safetensors", reference_run / "model.safetensors")


def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    common = ["train.epochs=2", "train.batch_size=4", "train.seed=1", "train.max_steps_per_epoch=5"]
    single = tmp_path / "single"
    res = subprocess.run(_child(single, *common, dropout=0.0), env=_env(), cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp_run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           *_child(ddp_run, *common, dropout=0.0)[1:]]
    res = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((ddp_run / "model.json").read_text())
    assert meta["training"]["world_size"] == 2
    _assert_same_weights(single / "model.safetensors", ddp_run / "model.safetensors", exact=False, atol=1e-5)
    h1 = [json.loads(x) for x in (single / "metrics.jsonl").read_text().splitlines()]
    h2 = [json.loads(x) for x in (ddp_run / "metrics.jsonl").read_text().splitlines()]
    assert [h["samples"] for h in h1] == [h["samples"] for h in h2] == [20, 20]
    assert [h["val_mse"] for h in h1] == pytest.approx([h["val_mse"] for h in h2], rel=1e-5)
