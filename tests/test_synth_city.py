"""The synthetic city crowd-flow simulator (TaxiBJ 32×32 and TaxiBJ+ 128×128), tiny preset."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.synth import citymap
from core.synth.city import (PRESETS, WEATHER_CATEGORIES, _spell_factor, city_layout, generate_taxibj,
                             generate_taxibjplus)
from core.synth.holidays import day_type, holiday_periods

FLOW_FILES = ["BJ13_M32x32_T30_InOut.h5", "BJ14_M32x32_T30_InOut.h5", "BJ15_M32x32_T30_InOut.h5",
              "BJ16_M32x32_T30_InOut.h5"]
LABEL = re.compile(rb"^(\d{8})(0[1-9]|[1-3]\d|4[0-8])$")


@pytest.fixture(scope="module")
def bj(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("taxibj") / "seed0"
    generate_taxibj(out, "tiny", 0)
    return out


@pytest.fixture(scope="module")
def bjp(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("taxibjp") / "seed0"
    generate_taxibjplus(out, "tiny", 0)
    return out


def _load(root: Path, name: str):
    with h5py.File(root / name, "r") as f:
        return f["data"][()], [d.decode() for d in f["date"][()]]


def _all(root: Path):
    """Every slot of every flow file: data (N, 2, H, W), labels, datetimes."""
    datas, labels = [], []
    for name in sorted(p.name for p in root.glob("BJ1?_M*_T30_InOut.h5")):
        d, lab = _load(root, name)
        datas.append(d)
        labels += lab
    times = [dt.datetime.strptime(x[:8], "%Y%m%d") + dt.timedelta(minutes=30 * (int(x[8:]) - 1)) for x in labels]
    return np.concatenate(datas), labels, times


def _regular(data_city: np.ndarray, labels: list[str], day0: str, ndays: int) -> np.ndarray:
    """City totals on the full regular axis of ``ndays`` from ``day0`` (missing slots interpolated)."""
    start = dt.date.fromisoformat(day0)
    full = [f"{start + dt.timedelta(days=i):%Y%m%d}{s + 1:02d}" for i in range(ndays) for s in range(48)]
    pos = {lab: i for i, lab in enumerate(labels)}
    y = np.array([data_city[pos[lab]] if lab in pos else np.nan for lab in full])
    bad = np.isnan(y)
    y[bad] = np.interp(np.nonzero(bad)[0], np.nonzero(~bad)[0], y[~bad])
    return y


def _acf(y: np.ndarray, lag: int) -> float:
    y = y - y.mean()
    return float(np.dot(y[:-lag], y[lag:]) / np.dot(y, y) * len(y) / (len(y) - lag))


# ------------------------------------------------------------------------------------------- calendar

def test_holiday_calendar_known_dates():
    # hand-checked against the State Council notices
    assert day_type(dt.date(2013, 10, 1)) == "holiday"
    assert day_type(dt.date(2013, 9, 29)) == "makeup"  # a Sunday worked for National Day 2013
    assert day_type(dt.date(2013, 10, 12)) == "makeup"  # a Saturday
    assert day_type(dt.date(2014, 1, 31)) == "holiday"  # Spring Festival 2014
    assert day_type(dt.date(2015, 9, 3)) == "holiday"  # Victory Day parade, a Thursday
    assert day_type(dt.date(2016, 2, 6)) == "makeup"
    assert day_type(dt.date(2016, 4, 4)) == "holiday"  # Qingming 2016, a Monday
    assert day_type(dt.date(2016, 4, 5)) == "workday"
    assert day_type(dt.date(2016, 4, 9)) == "weekend"
    names = [p.name for p in holiday_periods(dt.date(2015, 11, 1), dt.date(2016, 4, 10))]
    assert names == ["New Year", "Spring Festival", "Qingming Festival"]
    with pytest.raises(ValueError):
        day_type(dt.date(2009, 1, 1))


# ------------------------------------------------------------------------------------------- layout

def test_real_h5_layout(bj):
    assert sorted(p.name for p in bj.glob("*.h5")) == sorted(FLOW_FILES + ["BJ_Meteorology.h5"])
    for name in FLOW_FILES:
        with h5py.File(bj / name, "r") as f:
            assert sorted(f.keys()) == ["data", "date"]
            assert f["data"].dtype == np.float64 and f["data"].shape[1:] == (2, 32, 32)
            assert f["date"].dtype == np.dtype("S10") and f["date"].shape == (f["data"].shape[0],)
            labels = list(f["date"][()])
        assert all(LABEL.match(x) for x in labels)
        assert labels == sorted(set(labels))
    with h5py.File(bj / "BJ_Meteorology.h5", "r") as f:
        assert sorted(f.keys()) == ["Temperature", "Weather", "WindSpeed", "date"]
        n = f["date"].shape[0]
        assert f["date"].dtype == np.dtype("S10")
        assert f["Temperature"].shape == (n,) and f["WindSpeed"].shape == (n,)
        assert f["Weather"].shape == (n, len(WEATHER_CATEGORIES)) == (n, 17)
        w = f["Weather"][()]
        assert set(np.unique(w)) <= {0.0, 1.0} and np.all(w.sum(axis=1) == 1.0)
        temp, wind = f["Temperature"][()], f["WindSpeed"][()]
        assert -30 < temp.min() and temp.max() < 45 and wind.min() >= 0 and wind.max() < 40
    lines = (bj / "BJ_Holiday.txt").read_text().splitlines()
    assert all(re.fullmatch(r"\d{8}", x) for x in lines)
    assert {"20131001", "20131007", "20140501", "20150620", "20160404"} <= set(lines)
    assert "20160405" not in lines and "20130929" not in lines  # a workday and a make-up day


def test_counts_are_nonnegative_integers(bj, bjp):
    data, _, _ = _all(bj)
    assert data.min() >= 0 and np.array_equal(data, np.round(data))
    assert 20 < data.mean() < 500  # TaxiBJ-like magnitudes (real mean ≈ 100–150 per cell and slot)
    d128, _ = _load(bjp, "BJ16_M128x128_T30_InOut.h5")
    assert d128.shape[1:] == (2, 128, 128) and d128.min() >= 0 and np.array_equal(d128, np.round(d128))


def test_city_wide_inflow_equals_outflow_within_noise(bj, bjp):
    for data in (_all(bj)[0], _load(bjp, "BJ16_M128x128_T30_InOut.h5")[0]):
        tin, tout = data[:, 0].sum(axis=(1, 2)), data[:, 1].sum(axis=(1, 2))
        z = (tin - tout) / np.sqrt(tin + tout)  # Poisson: in − out has variance in + out
        assert np.abs(z).max() < 5.0
        assert abs(z.mean()) < 0.25 and 0.6 < z.std() < 1.6
        # while single cells are far from balanced (commuting, events)
        cell = data[:, 0] - data[:, 1]
        assert np.abs(cell).max() > 20 * np.abs(tin - tout).mean() / data.shape[-1]


# --------------------------------------------------------------------------------------- periodicity

def test_daily_and_weekly_periodicity(bj):
    data, labels = _load(bj, "BJ16_M32x32_T30_InOut.h5")
    a, b = PRESETS["taxibj"]["tiny"].spans[-1]
    ndays = (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days + 1
    city = _regular(data[:, 0].sum(axis=(1, 2)), labels, a, ndays)
    day, week, five = _acf(city, 48), _acf(city, 336), _acf(city, 240)
    assert day > 0.7 and week > 0.8
    assert week > five + 0.05  # same weekday beats Monday-vs-Saturday
    # a spectral peak at 1/day; the weekly cycle changes the shape of the day, so it shows as
    # sidebands 1/day ± 1/week above the background around them
    spec = np.abs(np.fft.rfft(city - city.mean())) ** 2
    k_day, k_week = ndays, ndays // 7  # cycles per record
    assert spec[k_day] > 100 * np.median(spec[1:])
    assert spec[k_day] == spec[k_day - 2:k_day + 3].max()
    near = np.r_[spec[k_day - 12:k_day - k_week], spec[k_day + k_week + 1:k_day + 13]]
    assert max(spec[k_day - k_week], spec[k_day + k_week]) > 5 * np.median(near)
    # one cell (the CBD) has the commuting cycle too
    r, c = citymap.pixel_of(7.0, -0.3, 32)
    cbd = _regular(data[:, 0, r, c], labels, a, ndays)
    assert _acf(cbd, 48) > 0.5 and _acf(cbd, 336) > 0.6


def _daily_profiles(root: Path):
    data, labels, times = _all(root)
    city = data[:, 0].sum(axis=(1, 2))
    by_day: dict[dt.date, np.ndarray] = {}
    for t, v in zip(times, city):
        by_day.setdefault(t.date(), np.full(48, np.nan))[t.hour * 2 + t.minute // 30] = v
    return {d: p for d, p in by_day.items() if not np.isnan(p).any()}


def test_holidays_look_like_weekends_and_makeup_days_like_workdays(bj):
    prof = _daily_profiles(bj)
    groups = {k: [] for k in ("workday", "weekend", "holiday", "makeup")}
    for d, p in prof.items():
        groups[day_type(d)].append(p / p.mean())
    assert all(len(v) >= 1 for v in groups.values()), {k: len(v) for k, v in groups.items()}
    mean = {k: np.mean(v, axis=0) for k, v in groups.items()}
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    assert corr(mean["holiday"], mean["weekend"]) > corr(mean["holiday"], mean["workday"]) + 0.1
    assert corr(mean["makeup"], mean["workday"]) > corr(mean["makeup"], mean["weekend"]) + 0.1
    # the morning commuting peak (08:00–09:00) is sharp on workdays only
    am, noon = slice(16, 18), slice(23, 25)
    ratio = {k: mean[k][am].mean() / mean[k][noon].mean() for k in mean}
    assert ratio["holiday"] < 0.8 * ratio["workday"] and ratio["weekend"] < 0.8 * ratio["workday"]
    each = [corr(p, mean["weekend"]) > corr(p, mean["workday"]) for p in groups["holiday"]]
    assert np.mean(each) >= 0.75


# ------------------------------------------------------------------------------------------- events

def _floor30(iso: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(iso)
    return t.replace(minute=t.minute // 30 * 30, second=0)


def _slot_index(times):
    return {t: i for i, t in enumerate(times)}


def test_events_cause_local_surges_at_the_right_times(bj):
    data, labels, times = _all(bj)
    index = _slot_index(times)
    events = json.loads((bj / "events.json").read_text())["events"]
    big = [e for e in events if e["kind"] in ("concert", "match") and e["size"] >= 30000]
    assert len(big) >= 3
    slot_of_day = np.array([t.hour * 2 + t.minute // 30 for t in times])
    for e in big:
        y, x = e["y"], e["x"]
        start, end = _floor30(e["start"]), _floor30(e["end"])  # the slots that hold start and end
        before = [start - dt.timedelta(minutes=30 * k) for k in (1, 2)]
        after = [end + dt.timedelta(minutes=30 * k) for k in (1, 2)]

        def excess(ts, ch):
            vals = []
            for t in ts:
                i = index[t]
                same = slot_of_day == slot_of_day[i]
                same[max(0, i - 96):i + 97] = False  # other days only
                base = np.median(data[same, ch], axis=0)
                vals.append(data[i, ch] - base)
            return np.mean(vals, axis=0)  # (32, 32)

        arr, dep = excess(before, 0), excess(after, 1)
        for ex in (arr, dep):
            r, c = np.unravel_index(np.argmax(ex), ex.shape)
            assert np.hypot(r - y, c - x) <= e["radius"] + 1.0, (e["place"], e["start"], (r, c), (y, x))
            assert ex[y, x] > 300 and ex[y, x] > 5 * np.abs(np.delete(ex.ravel(), y * 32 + x)).mean()
        # arrivals peak before the start, departures after the end: the order is the event's
        t_in = np.array([data[index[start + dt.timedelta(minutes=30 * k)], 0, y, x]
                         for k in range(-6, 1) if start + dt.timedelta(minutes=30 * k) in index])
        t_out = np.array([data[index[end + dt.timedelta(minutes=30 * k)], 1, y, x]
                          for k in range(-3, 4) if end + dt.timedelta(minutes=30 * k) in index])
        assert t_in.argmax() < len(t_in) - 1 and data[index[before[0]], 0, y, x] > data[index[start] + 4, 0, y, x] * 2
        assert data[index[after[0]], 1, y, x] > 2 * data[index[start - dt.timedelta(hours=1)], 1, y, x]
        assert t_out.max() > 300


def test_events_json_and_manifest(bj):
    from core.data.nonstationary import read_events
    from core.data.splits import read_dataset_manifest

    meta = read_dataset_manifest(bj)
    assert meta["kind"] == meta["source"] == "taxibj" and meta["cadence"] == "PT30M"
    assert (meta["t_in"], meta["t_out"]) == (4, 4) and meta["seed"] == 0 and meta["preset"] == "tiny"
    assert meta["splits"] == {"train": ["2013-09-26", "2016-03-27"], "val": ["2016-03-28", "2016-04-03"],
                              "test": ["2016-04-04", "2016-04-10"]}
    assert isinstance(meta["nonstationary_rule"], str) and meta["created_with"].startswith("s2kd ")
    events = read_events(bj / "events.json")
    kinds = {e.kind for e in events}
    assert {"holiday", "makeup_workday", "match"} <= kinds
    raw = json.loads((bj / "events.json").read_text())
    assert raw["version"] == 1
    for e in raw["events"]:
        assert {"kind", "start", "end", "place", "description", "size"} <= set(e)
        if e["kind"] not in ("holiday", "makeup_workday"):
            assert {"y", "x", "radius"} <= set(e)
            assert 0 <= e["y"] < 32 and 0 <= e["x"] < 32 or e["kind"] == "cold wave"
    hol = [e for e in raw["events"] if e["kind"] == "holiday"]
    assert [h["start"][:10] for h in hol] == ["2013-10-01", "2014-05-01", "2015-06-20", "2016-04-02"]


def test_missing_slots_are_recorded_and_absent(bj):
    meta = json.loads((bj / "s2kd_dataset.json").read_text())
    missing = meta["generator"]["missing_slots"]
    assert len(missing) >= 4 and all(LABEL.match(m.encode()) for m in missing)
    _, labels, _ = _all(bj)
    assert not set(missing) & set(labels)
    for (a, b), name in zip(meta["generator"]["periods"], FLOW_FILES):
        _, lab = _load(bj, name)
        n_days = (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days + 1
        gone = [m for m in missing if a.replace("-", "") <= m[:8] <= b.replace("-", "")]
        assert len(lab) + len(gone) == 48 * n_days
        assert lab[0] == a.replace("-", "") + "01" or lab[0] > a.replace("-", "")


def test_real_readers_read_it_back(bj, bjp):
    from core.data import open_source

    fields = open_source("taxibj", bj)
    assert fields.dims == ("time", "channel", "y", "x") and fields.shape[1:] == (2, 32, 32)
    meta = json.loads((bj / "s2kd_dataset.json").read_text())
    assert fields.sizes["time"] == meta["generator"]["slots"]
    hol = fields["holiday"].sel(time="2016-04-04").values
    assert hol.all() and not fields["holiday"].sel(time="2016-04-05").values.any()
    plus = open_source("taxibj+", bjp)
    assert plus.shape[1:] == (2, 128, 128)


# --------------------------------------------------------------------------------------- TaxiBJ+

def test_taxibjplus_windows_match_the_series(bjp):
    meta = json.loads((bjp / "s2kd_dataset.json").read_text())
    assert (meta["t_in"], meta["t_out"]) == (12, 12) and meta["kind"] == "taxibj+"
    data, labels = _load(bjp, "BJ16_M128x128_T30_InOut.h5")
    pos = {lab: i for i, lab in enumerate(labels)}
    for split in ("train", "val", "test"):
        x = np.load(bjp / f"{split}_input_data_reshaped.npy")
        y = np.load(bjp / f"{split}_output_data_reshaped.npy")
        assert x.dtype == y.dtype == np.float32
        assert x.shape[1:] == y.shape[1:] == (12, 2, 128, 128) and x.shape[0] == y.shape[0] >= 1
        firsts = meta["generator"]["windows"]["first_input"][split]
        assert len(firsts) == x.shape[0]
        lo, hi = meta["splits"][split]
        for k in (0, x.shape[0] - 1):
            t0 = dt.datetime.fromisoformat(firsts[k])
            assert lo <= t0.date().isoformat() <= hi
            frames = [t0 + dt.timedelta(minutes=30 * j) for j in range(24)]
            idx = [pos[f"{t:%Y%m%d}{t.hour * 2 + t.minute // 30 + 1:02d}"] for t in frames]
            np.testing.assert_array_equal(x[k], data[idx[:12]])
            np.testing.assert_array_equal(y[k], data[idx[12:]])


def test_one_city_at_both_resolutions():
    p32, p128 = citymap.flow_patterns(32), citymap.flow_patterns(128)
    for name in ("commute", "leisure", "airport"):
        assert np.isclose(p128[name][0].sum(), p128[name][1].sum())  # every trip enters and leaves
        coarse = p128[name].reshape(2, 32, 4, 32, 4).sum(axis=(2, 4))
        assert np.corrcoef(coarse.ravel(), p32[name].ravel())[0, 1] > 0.8
    lay32, lay128 = city_layout(32), city_layout(128)
    air = lay32["districts"]["Capital Airport"]["center"]
    assert air[0] < 8 and air[1] > 24  # far out to the north-east
    cbd = lay32["districts"]["CBD (Guomao)"]["center"]
    assert 14 <= cbd[0] <= 18 and cbd[1] > 18  # east of the centre
    b32, b128 = lay32["districts"]["Wangjing"]["box"], lay128["districts"]["Wangjing"]["box"]
    assert all(abs(4 * u - v) <= 4 for u, v in zip(b32, b128))
    assert {"2nd Ring Road", "5th Ring Road", "Airport Expressway"} <= set(lay128["roads"])


def test_weather_cell_reduces_flow_where_it_passes():
    X, Y = citymap.pixel_centres(32)
    spell = {"kind": "rain", "s0": 10, "s1": 20, "size": 0.8, "main": "HeavyRain", "cx": -10.0, "cy": 0.0,
             "vx": 0.0, "vy": 0.0, "radius_km": 6.0, "mid": 15}
    f = _spell_factor([spell], 0, X, Y)
    assert np.all(f[:10] == 1.0) and np.all(f[20:] == 1.0)
    r, c = citymap.pixel_of(-10.0, 0.0, 32)
    r2, c2 = citymap.pixel_of(12.0, 0.0, 32)
    assert f[15, r, c] < 0.9 and f[15, r2, c2] > 0.99


def test_rain_and_cold_reduce_the_expected_flow():
    from core.synth.city import _W, _CityModel

    model = _CityModel(32)
    day = dt.date(2016, 3, 16)  # an ordinary Wednesday
    ones = np.ones((48, 2, 32, 32))

    def total(category: str, temp: float) -> float:
        met = {"weather": np.full(48, _W[category]), "temperature": np.full(48, temp)}
        return model.day_lambda(day, [], met, np.ones((48, 32, 32)), ones[0], np.ones(48)).sum()

    sunny = total("Sunny", 12.0)
    assert total("HeavyRain", 12.0) < 0.85 * sunny
    assert total("HeavySnow", -2.0) < total("LightSnow", -2.0) < sunny
    assert total("Sunny", -10.0) < 0.95 * sunny


# ----------------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes_other_seed_differs(bj, tmp_path):
    from core.cli import main

    again = tmp_path / "again"
    generate_taxibj(again, "tiny", 0)
    names = sorted(p.name for p in bj.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (bj / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    assert main(["data", "synth", "--kind", "taxibj", "--preset", "tiny", "--seed", "1", "--out", str(other)]) == 0
    for name in FLOW_FILES + ["BJ_Meteorology.h5", "events.json"]:
        assert (bj / name).read_bytes() != (other / name).read_bytes(), name
    assert (bj / "BJ_Holiday.txt").read_bytes() == (other / "BJ_Holiday.txt").read_bytes()
