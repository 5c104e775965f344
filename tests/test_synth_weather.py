"""The synthetic atmosphere (core.synth.weather / core.synth.qg): real layout, physics, determinism.

One tiny dataset (seed 0) is generated per module; the determinism tests generate two more.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from core.synth import weather  # noqa: E402
from core.synth.commands import synthesize  # noqa: E402

YEARS = (2015, 2016)
FILES = {  # channel: (folder, file stem, variable, level, units)
    "z500": ("geopotential_500", "geopotential_500hPa", "z", 500, "m**2 s**-2"),
    "t850": ("temperature_850", "temperature_850hPa", "t", 850, "K"),
    "t2m": ("2m_temperature", "2m_temperature", "t2m", None, "K"),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wx") / "weather"
    synthesize("weather", "tiny", 0, out)
    return out


def _load(root: Path, channel: str) -> "xr.DataArray":
    folder, stem, var, _, _ = FILES[channel]
    parts = [xr.open_dataset(root / folder / f"{stem}_{y}_5.625deg.nc")[var].load() for y in YEARS]
    return xr.concat(parts, dim="time")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fields(tiny):
    return {ch: _load(tiny, ch) for ch in FILES}


@pytest.fixture(scope="module")
def land():
    from core.synth.landmask import land_fraction

    return land_fraction(weather.OUT_LAT, weather.OUT_LON)


# ------------------------------------------------------------------------------------------ layout
def test_files_in_weatherbench_v1_layout(tiny):
    for ch, (folder, stem, var, level, units) in FILES.items():
        for year in YEARS:
            path = tiny / folder / f"{stem}_{year}_5.625deg.nc"
            assert path.is_file(), path
            ds = xr.open_dataset(path)
            da = ds[var]
            assert da.dims == ("time", "lat", "lon")
            assert da.dtype == np.float32
            assert da.attrs["units"] == units
            assert "long_name" in da.attrs
            np.testing.assert_allclose(ds["lat"].values, -87.1875 + 5.625 * np.arange(32))
            np.testing.assert_allclose(ds["lon"].values, 5.625 * np.arange(64))
            if level is None:
                assert "level" not in ds.coords
            else:
                assert ds["level"].ndim == 0 and int(ds["level"]) == level
            t = ds["time"].values
            assert t.dtype == np.dtype("datetime64[ns]")
            assert np.all(np.diff(t) > np.timedelta64(0)) and np.all(t.astype("datetime64[Y]").astype(int) + 1970 == year)
            ds.close()
    assert not list(tiny.glob("**/.*tmp*")), "temporary files left behind"


def test_dataset_json_splits_match_data(tiny, fields):
    from core.data.nonstationary import RULE

    meta = json.loads((tiny / "s2kd_dataset.json").read_text())
    assert meta["kind"] == "weather" and meta["source"] == "weatherbench"
    assert meta["preset"] == "tiny" and meta["seed"] == 0
    assert meta["cadence"] == "PT6H" and meta["t_in"] == 12 and meta["t_out"] == 12
    assert meta["nonstationary_rule"] == RULE
    times = fields["z500"]["time"].values
    assert set(np.diff(times)) >= {np.timedelta64(6, "h")}
    for name in ("train", "val", "test"):
        a, b = meta["splits"][name]
        inside = (times >= np.datetime64(a)) & (times < np.datetime64(b) + np.timedelta64(1, "D"))
        assert inside.sum() >= 24 + 4, name  # at least a few 12→12 windows
        assert times[inside][0] == np.datetime64(a) and times[inside][-1] == np.datetime64(f"{b}T18:00")
    assert meta["splits"]["train"][1] < meta["splits"]["val"][0] <= meta["splits"]["test"][0]


def test_readers_read_it_back(tiny):
    from core.data import open_source

    da = open_source("weatherbench", tiny).load()
    assert set(da["channel"].values) == {"z500", "t850", "t2m"}
    assert da.sizes["lat"] == 32 and da.sizes["lon"] == 64
    assert np.isfinite(da.values).all()


def test_events_inside_the_data(tiny, fields):
    times = fields["z500"]["time"].values
    meta = json.loads((tiny / "s2kd_dataset.json").read_text())
    spans = [(np.datetime64(a), np.datetime64(b) + np.timedelta64(1, "D")) for a, b in meta["splits"].values()]
    events = json.loads((tiny / "events.json").read_text())
    assert events["version"] == 1
    kinds = {e["kind"] for e in events["events"]}
    assert {"blocking", "regime_shift"} <= kinds and kinds & {"heat_wave", "cold_spell"}
    for e in events["events"]:
        s, t = np.datetime64(e["start"]), np.datetime64(e["end"])
        assert times[0] <= s < t <= times[-1] + np.timedelta64(6, "h"), e
        assert any(a <= s and t <= b for a, b in spans), e  # inside one split
        assert e["place"] and e["description"]
        if e["kind"] != "regime_shift":
            assert -90 <= e["lat"] <= 90 and 0 <= e["lon"] < 360 and e["radius"] > 0
    # every split holds at least one episode (the non-stationary subset is never empty)
    for a, b in spans:
        assert any(a <= np.datetime64(e["start"]) < b for e in events["events"])
    assert meta["generator"]["warming_trend"]["k_per_year"] > 0


# ------------------------------------------------------------------------------------------ physics
def test_magnitudes_like_era5(fields):
    z, t, t2m = (fields[c].values for c in ("z500", "t850", "t2m"))
    assert 46000 < z.min() and z.max() < 59500
    assert z[:, 12:20].mean() > 56500  # tropics high, poles low
    assert z[:, [0, -1]].mean() < 53500
    assert 225 < t.min() and t.max() < 305
    assert 205 < t2m.min() and t2m.max() < 325
    for a in (z, t, t2m):
        assert np.isfinite(a).all()


def _slope(field: np.ndarray, lat: np.ndarray, kmin: int, kmax: int) -> float:
    sel = (np.abs(lat) > 30) & (np.abs(lat) < 70)
    x = field[:, sel, :].astype(np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    power = (np.abs(np.fft.rfft(x, axis=-1)) ** 2).mean(axis=(0, 1))
    k = np.arange(kmin, kmax + 1)
    return float(np.polyfit(np.log(k), np.log(power[kmin:kmax + 1]), 1)[0])


def test_z500_zonal_spectrum_falls_off_steeply(fields):
    z = fields["z500"]
    slope = _slope(z.values, z["lat"].values, 6, 20)
    assert slope < -3.0, slope  # a steep power law (QG turbulence: about k^-3 to k^-5)
    # and most variance sits in the synoptic and planetary waves, not at the grid scale
    t = fields["t850"]
    assert _slope(t.values, t["lat"].values, 6, 20) < -2.0


def test_fields_are_correlated_in_space_and_time(fields):
    for ch in ("z500", "t850"):
        a = fields[ch].values.astype(np.float64)
        anom = a - a.mean(axis=-1, keepdims=True)  # zonal anomalies (the weather)
        x = anom[:, 4:28]  # 67°S–67°N
        # lag-1 (6 h) autocorrelation within each period
        times = fields[ch]["time"].values
        ok = np.diff(times) == np.timedelta64(6, "h")
        x0, x1 = x[:-1][ok].ravel(), x[1:][ok].ravel()
        assert np.corrcoef(x0, x1)[0, 1] > 0.85, ch
        # neighbouring longitudes
        assert np.corrcoef(x.ravel(), np.roll(x, 1, axis=-1).ravel())[0, 1] > 0.8, ch


def test_t2m_has_diurnal_and_seasonal_cycles(fields, land):
    da = fields["t2m"]
    t2m = da.values.astype(np.float64)
    times = da["time"].values
    lat, lon = da["lat"].values, da["lon"].values
    days = times.astype("datetime64[D]")
    # diurnal: remove each day's mean, fit a 24 h harmonic in local solar time
    dmean = np.stack([t2m[days == d].mean(axis=0) for d in days])
    anom = t2m - dmean
    hours = (times - days) / np.timedelta64(1, "h")
    lst = (hours[:, None] + lon[None, :] / 15.0) % 24.0  # (time, lon)

    def amplitude(mask):
        rows, cols = np.nonzero(mask)
        y = anom[:, rows, cols].ravel()
        ph = 2 * np.pi * lst[:, cols].ravel() / 24.0  # same (time, point) order as y
        A = np.column_stack([np.cos(ph), np.sin(ph)])
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        return float(np.hypot(*coef)), float(np.degrees(np.arctan2(coef[1], coef[0])) / 15.0 % 24.0)

    mid = np.abs(lat)[:, None] < 45
    amp_land, peak = amplitude((land > 0.8) & mid)
    amp_sea, _ = amplitude((land < 0.01) & mid)
    assert amp_land > 3.0, amp_land
    assert amp_sea < 1.0 and amp_land > 4 * amp_sea, (amp_land, amp_sea)
    assert 12.0 < peak < 17.0, peak  # warmest in the early afternoon
    # seasonal: NH land much colder in January (train) than in July (val); SH the other way round
    jan = (times >= np.datetime64("2015-01-01")) & (times < np.datetime64("2015-02-01"))
    jul = (times >= np.datetime64("2015-07-01")) & (times < np.datetime64("2015-08-01"))
    nh = (land > 0.7) & (lat[:, None] > 40) & (lat[:, None] < 70)
    sh = (land > 0.7) & (lat[:, None] < -20) & (lat[:, None] > -45)
    nh_cycle = t2m[jul][:, nh].mean() - t2m[jan][:, nh].mean()
    sh_cycle = t2m[jul][:, sh].mean() - t2m[jan][:, sh].mean()
    assert nh_cycle > 15.0, nh_cycle
    assert sh_cycle < -3.0, sh_cycle


def test_land_sea_contrast_in_winter(fields, land):
    da = fields["t2m"]
    times = da["time"].values
    jan = times < np.datetime64("2015-02-01")
    lat = da["lat"].values
    band = (lat > 40) & (lat < 65)
    t = da.values[jan][:, band].mean(axis=0)
    lf = land[band]
    assert t[lf > 0.8].mean() < t[lf < 0.05].mean() - 8.0  # continents colder than oceans in winter


def test_energy_stays_bounded_over_a_long_run():
    """Run the forced QG model through nine months of seasons (tiny grid): eddy energy stays
    bounded, neither blowing up nor dying out."""
    p = weather.PRESETS["tiny"]
    atm = weather.Atmosphere(p, [], origin_year=2001)
    m = atm.model
    m.set_state(weather.load_restart(p), np.random.default_rng(0), noise=0.2)
    d0 = weather._days(np.datetime64("2001-01-01"))
    per_day = int(86400 / p.dt)
    energy = []
    for day in range(270):
        atm.set_forcing(d0 + day)
        for _ in range(per_day):
            m.step()
        m.symmetrize()
        if day % 5 == 0:
            energy.append(sum(m.energy()))
    e = np.array(energy)
    assert np.isfinite(e).all()
    assert e.max() < 4.0 * np.median(e), e
    assert e.min() > 0.15 * np.median(e), e
    u, v = m.velocity()
    assert float(u.abs().max()) < 120.0


def test_qg_inversion_matches_hand_computed_modes():
    """ψ of a single sine mode: barotropic −q/K², baroclinic −q/(K² + 2F), and ψ vanishes at the walls."""
    import torch

    from core.synth.qg import QGConfig, TwoLayerQG

    cfg = QGConfig(nx=32, ny=16)
    m = TwoLayerQG(cfg)
    x = np.arange(cfg.nx) * cfg.lx / cfg.nx
    y = (np.arange(cfg.ny) + 0.5) * cfg.ly / cfg.ny
    kx, ly = 2 * np.pi * 3 / cfg.lx, np.pi * 2 / cfg.ly
    mode = np.sin(kx * x)[None, :] * np.sin(ly * y)[:, None]
    k2 = kx ** 2 + ly ** 2
    q_bt = np.stack([mode, mode]) * 1e-5
    q_bc = np.stack([mode, -mode]) * 1e-5
    for q, expect in ((q_bt, -q_bt / k2), (q_bc, -q_bc / (k2 + 2 * cfg.F))):
        m.set_state(q)
        np.testing.assert_allclose(m.psi().numpy(), expect, rtol=1e-9, atol=1e-9 * np.abs(expect).max())
    assert isinstance(m.qh, torch.Tensor)


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = tmp_path / "again"
    synthesize("weather", "tiny", 0, again)
    assert _digest(again) == _digest(tiny)
    other = tmp_path / "other"
    synthesize("weather", "tiny", 1, other)
    a, b = _digest(tiny), _digest(other)
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith(".nc"):
            assert a[key] != b[key], key
    z0, z1 = _load(tiny, "z500").values, _load(other, "z500").values
    assert np.abs(z0 - z1).max() > 500.0  # different weather, not a rounding difference


# ------------------------------------------------------------------------------------------ figures
def _figures_cli(argv: list[str]) -> int:
    """Run ``s2kd data figures`` (through core.cli.main once the module is listed there)."""
    import core.cli as cli

    if "core.synth.figures_commands" in cli.COMMAND_MODULES:
        return cli.main(argv)
    from core.errors import UserError
    from core.synth import figures_commands

    parser = cli._Parser(prog="s2kd")
    figures_commands.register(cli.Registry(parser))
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as exc:
        import sys

        print(f"s2kd: error: {exc}", file=sys.stderr)
        return exc.exit_code


def test_figures_command_writes_pngs(tiny, tmp_path):
    out = tmp_path / "figs"
    status = _figures_cli(["data", "figures", "--root", str(tiny), "--out", str(out)])
    assert status == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["weather_cycles.png", "weather_hovmoller.png", "weather_maps.png", "weather_spectrum.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_figures_bad_root_is_a_user_error(tmp_path, capsys):
    status = _figures_cli(["data", "figures", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "f")])
    assert status == 2
    assert "s2kd: error:" in capsys.readouterr().err


def _fake_taxibj(root: Path, size: int = 32, days: int = 8) -> None:
    """A small TaxiBJ folder in the real layout (``data`` (N, 2, H, W), ``date`` ``YYYYMMDDNN``)."""
    import h5py

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    start = np.datetime64("2016-03-01")
    dates, frames = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    ring = np.exp(-((np.hypot(yy - size / 2, xx - size / 2) - size / 4) ** 2) / 4.0)
    for d in range(days):
        day = start + np.timedelta64(d, "D")
        for slot in range(48):
            level = 1.0 + np.sin(np.pi * slot / 48.0) ** 2
            frames.append(rng.poisson(50 * level * ring[None].repeat(2, 0)))
            dates.append(f"{str(day).replace('-', '')}{slot + 1:02d}".encode())
    with h5py.File(root / f"BJ16_M{size}x{size}_T30_InOut.h5", "w") as h:
        h["data"] = np.asarray(frames, dtype=np.float64)
        h["date"] = np.asarray(dates, dtype="S10")
    (root / "BJ_Holiday.txt").write_text("20160305\n")


@pytest.mark.parametrize("kind", ["taxibj", "taxibj+"])
def test_city_figures(tmp_path, kind):
    from core.synth.figures import make_figures

    root = tmp_path / "city"
    if kind == "taxibj":
        _fake_taxibj(root)
    else:  # the published TaxiBJ+ window layout only: (N, 12, 2, 128, 128)
        root.mkdir()
        rng = np.random.default_rng(1)
        for split in ("train", "test"):
            np.save(root / f"{split}_input_data_reshaped.npy", rng.poisson(3.0, (4, 12, 2, 128, 128)).astype(np.float32))
    paths = make_figures(root, tmp_path / "figs", kind=kind)
    stem = kind.replace("+", "plus")
    assert sorted(p.name for p in paths) == sorted(f"{stem}_{n}.png" for n in ("maps", "cycles", "spectrum"))
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG"
