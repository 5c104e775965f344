"""Synthetic city crowd flow (TaxiBJ at 32×32, TaxiBJ+ at 128×128) in the real archive layouts.

The city (``core.synth.citymap``) is Beijing-like: CBD, business districts, residential belts and
satellite towns, a university district, the airport far out to the north-east, stadiums, an arena, an
exhibition centre, four railway stations, ring roads and expressways.  Expected in/out flow per 30-minute
slot is a sum of trip purposes (commuting, leisure, business, errands, night life, airport, stations,
venue events), each a fixed spatial pattern (gravity-model trips routed on the road lattice) times a
time profile that depends on the hour, the kind of day (workday, weekend, official holiday from the real
Chinese calendar, make-up working day), the season, the weather and scheduled events.  Counts are
Poisson draws around that expectation, so they are non-negative integers and city-wide inflow equals
outflow within Poisson noise.

Files (see docs/ARCHITECTURE.md "Dataset folders"):

* TaxiBJ: ``BJ{yy}_M32x32_T30_InOut.h5`` per period (``data`` (N, 2, 32, 32) float64, channel 0 inflow,
  1 outflow; ``date`` (N,) ``|S10`` ``YYYYMMDDNN`` with NN = 01…48), ``BJ_Meteorology.h5`` (``date``,
  ``Temperature`` °C, ``WindSpeed`` m/s, ``Weather`` (N, 17) one-hot; every slot of the covered range),
  ``BJ_Holiday.txt`` (``YYYYMMDD`` per line).  A few slots are missing from ``data``/``date``, as in the
  real archive; they are listed in ``s2kd_dataset.json`` (``generator.missing_slots``).
* TaxiBJ+: the same HDF5 layout at 128×128 (``BJ{yy}_M128x128_T30_InOut.h5``) and the published window
  layout ``{train,val,test}_{input,output}_data_reshaped.npy`` of shape (N, 12, 2, 128, 128) float32.
* ``s2kd_dataset.json`` and ``events.json`` (events, holidays and weather spells with pixel positions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np

from core.data.nonstationary import RULE as NONSTATIONARY_RULE
from core.io import atomic_path, atomic_write_json, atomic_write_text
from core.synth import citymap
from core.synth.holidays import day_type, holiday_of, holiday_periods

__all__ = ["generate_taxibj", "generate_taxibjplus", "city_layout", "WEATHER_CATEGORIES", "PRESETS",
           "CityPreset", "expected_day", "slot_label"]

city_layout = citymap.city_layout

#: The 17 weather categories of BJ_Meteorology.h5 (DeepST order).
WEATHER_CATEGORIES = ("Sunny", "Cloudy", "Overcast", "Rainy", "Sprinkle", "ModerateRain", "HeavyRain",
                      "Rainstorm", "Thunderstorm", "FreezingRain", "Snowy", "LightSnow", "ModerateSnow",
                      "HeavySnow", "Foggy", "Sandstorm", "Dusty")
_W = {name: i for i, name in enumerate(WEATHER_CATEGORIES)}
#: Multiplicative effect of the weather category on all trips.
_WEATHER_FACTOR = np.array([1.0, 1.0, 0.98, 0.9, 0.95, 0.85, 0.75, 0.62, 0.7, 0.65, 0.82, 0.88, 0.78, 0.62,
                            0.93, 0.8, 0.95])
SLOTS = 48
_SLOT_H = (np.arange(SLOTS) + 0.5) / 2.0  # slot centre, hours


@dataclasses.dataclass(frozen=True)
class CityPreset:
    """Periods (inclusive ISO dates), split sizes, missing-slot gaps and window stride of a preset."""

    spans: tuple[tuple[str, str], ...]
    val_days: int
    test_days: int
    gaps_per_span: int
    long_gap: bool = False
    window_stride: int = 24  # TaxiBJ+ .npy windows only
    max_windows: int | None = None  # per split, TaxiBJ+ only (None = all)


PRESETS: dict[str, dict[str, CityPreset]] = {
    "taxibj": {
        "tiny": CityPreset((("2013-09-26", "2013-10-09"), ("2014-04-28", "2014-05-04"),
                            ("2015-06-17", "2015-06-23"), ("2016-03-14", "2016-04-10")), 7, 7, 1),
        "demo": CityPreset((("2013-09-09", "2013-10-13"), ("2014-04-14", "2014-05-11"),
                            ("2015-06-01", "2015-06-28"), ("2016-01-04", "2016-04-10")), 14, 14, 2),
        # the real TaxiBJ periods
        "bench": CityPreset((("2013-07-01", "2013-10-30"), ("2014-03-01", "2014-06-27"),
                             ("2015-03-01", "2015-06-30"), ("2015-11-01", "2016-04-10")), 28, 28, 3, True),
    },
    "taxibj+": {
        "tiny": CityPreset((("2016-03-29", "2016-04-04"),), 1, 1, 1, max_windows=4),
        "demo": CityPreset((("2016-03-17", "2016-04-03"),), 3, 4, 1),
        "bench": CityPreset((("2016-01-11", "2016-04-10"),), 14, 21, 3, True),
    },
}
_SIZE = {"taxibj": 32, "taxibj+": 128}
_T_IN_OUT = {"taxibj": (4, 4), "taxibj+": (12, 12)}
_TAXI_SHARE = 0.07  # event attendees who come and go by taxi
_MEAN_INFLOW_32 = 100.0  # calibration: mean inflow per 32×32 cell per slot on an ordinary workday

#: Weather spells weaker than this are left out of events.json (they stay in BJ_Meteorology.h5), so
#: that the non-stationary subset (core.data.nonstationary.RULE: any listed event) stays a subset.
_MIN_SPELL_SIZE = 0.35


def slot_label(day: dt.date, slot: int) -> bytes:
    """``b'YYYYMMDDNN'`` for 0-based ``slot`` (NN = slot + 1, 01…48)."""
    return f"{day:%Y%m%d}{slot + 1:02d}".encode()


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _iso(day: dt.date, slot: float) -> str:
    t = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=30 * slot)
    return t.isoformat(timespec="seconds")


def _g(h: np.ndarray, mu: float, sd: float) -> np.ndarray:
    """Gaussian bump of the hour of day, wrapped around midnight."""
    d = (h - mu + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / sd) ** 2)


# --------------------------------------------------------------------------------------------------
# meteorology and weather spells
# --------------------------------------------------------------------------------------------------

def _clim_temp(doy: np.ndarray) -> np.ndarray:
    return 12.5 - 15.5 * np.cos(2 * np.pi * (doy - 18.0) / 365.25)


def _meteorology(days: list[dt.date], rng: np.random.Generator) -> tuple[dict, list[dict]]:
    """Temperature (°C), wind speed (m/s), weather category per slot, and the weather spells."""
    nd = len(days)
    T = nd * SLOTS
    doy = np.array([d.timetuple().tm_yday for d in days], float)
    hours = np.tile(_SLOT_H, nd)
    # background sky: an hourly Markov chain Sunny/Cloudy/Overcast
    trans = np.array([[0.93, 0.06, 0.01], [0.08, 0.86, 0.06], [0.03, 0.1, 0.87]])
    sky = np.empty(nd * 24, int)
    s = 0
    u = rng.random(nd * 24)
    for i in range(nd * 24):
        s = int(np.searchsorted(np.cumsum(trans[s]), u[i]))
        sky[i] = min(s, 2)
    weather = np.repeat(sky, 2)
    # synoptic anomalies (daily AR(1), linearly interpolated to slots)
    ta = np.zeros(nd + 1)
    wa = np.zeros(nd + 1)
    for i in range(1, nd + 1):
        ta[i] = 0.75 * ta[i - 1] + rng.normal(0, 1.8)
        wa[i] = 0.6 * wa[i - 1] + rng.normal(0, 0.35)
    x = np.arange(T) / SLOTS
    temp_anom = np.interp(x, np.arange(nd + 1), ta)
    wind_anom = np.interp(x, np.arange(nd + 1), wa)
    spells: list[dict] = []
    busy = np.zeros(T, bool)
    precip = np.zeros(T)  # precipitation intensity 0..1 for cooling
    extra_temp = np.zeros(T)
    extra_wind = np.zeros(T)
    for di, day in enumerate(days):
        m = day.month
        clim = float(_clim_temp(doy[di]))
        p_rain = {1: 0.05, 2: 0.06, 3: 0.06, 4: 0.09, 5: 0.12, 6: 0.2, 7: 0.32, 8: 0.28, 9: 0.15, 10: 0.08,
                  11: 0.06, 12: 0.05}[m]
        cands = []
        if rng.random() < p_rain:
            cands.append("precip")
        if m in (11, 12, 1, 2) and rng.random() < 0.1:
            cands.append("fog")
        if m in (3, 4, 5) and rng.random() < 0.05:
            cands.append("sand")
        if m in (10, 11, 12, 1, 2, 3) and rng.random() < 0.035:
            cands.append("cold")
        for c in cands:
            size = float(np.round(min(1.0, rng.beta(2.0, 3.0) + (0.25 if rng.random() < 0.15 else 0.0)), 2))
            if c == "precip":
                summer = m in (6, 7, 8)
                start_h = rng.normal(15.5, 2.5) if summer and rng.random() < 0.6 else rng.uniform(0, 24)
                dur_h = rng.uniform(2, 5) if summer else rng.uniform(3, 12)
                if clim < 1.5:
                    kind, main = "snow", ("LightSnow" if size < 0.4 else "ModerateSnow" if size < 0.75 else "HeavySnow")
                    light = "LightSnow"
                elif clim < 5 and rng.random() < 0.3:
                    kind, main, light = "freezing rain", "FreezingRain", "Sprinkle"
                elif summer and size > 0.55 and rng.random() < 0.5:
                    kind, main, light = "thunderstorm", ("Thunderstorm" if size < 0.85 else "Rainstorm"), "Rainy"
                else:
                    kind = "rain"
                    main = ("Sprinkle" if size < 0.25 else "Rainy" if size < 0.45 else "ModerateRain"
                            if size < 0.7 else "HeavyRain" if size < 0.9 else "Rainstorm")
                    light = "Sprinkle"
            elif c == "fog":
                start_h, dur_h, kind, main, light = rng.uniform(0, 6), rng.uniform(4, 10), "fog", "Foggy", "Foggy"
            elif c == "sand":
                start_h, dur_h, kind = rng.uniform(6, 14), rng.uniform(5, 14), "sandstorm"
                main, light = ("Sandstorm" if size > 0.45 else "Dusty"), "Dusty"
                if main == "Dusty":
                    kind = "dust"
            else:
                start_h, dur_h, kind, main, light = rng.uniform(0, 24), rng.uniform(36, 72), "cold wave", None, None
            s0 = di * SLOTS + int(np.clip(start_h, 0, 23.5) * 2)
            s1 = min(T, s0 + max(2, int(dur_h * 2)))
            if kind == "cold wave":
                ramp = np.clip(np.minimum(np.arange(s1 - s0) / 12.0, (s1 - s0 - np.arange(s1 - s0)) / 24.0), 0, 1)
                extra_temp[s0:s1] -= (4.0 + 6.0 * size) * ramp
                extra_wind[s0:s1] += (2.0 + 4.0 * size) * ramp
            else:
                if busy[s0:s1].any():
                    continue
                busy[s0:s1] = True
                n = s1 - s0
                cat = np.full(n, _W[main])
                k1, k2 = max(1, n // 4), max(1, n // 5)
                cat[:k1] = _W[light]
                cat[n - k2:] = _W[light]
                weather[s0:s1] = cat
                if kind in ("rain", "snow", "thunderstorm", "freezing rain"):
                    precip[s0:s1] = size
                if kind in ("sandstorm", "dust"):
                    extra_wind[s0:s1] += 5.0 + 6.0 * size
                if kind == "thunderstorm":
                    extra_wind[s0:s1] += 3.0 * size
            # a moving cell (rain band, fog bank, dust front): centre km, velocity km/h, radius km
            ang = rng.normal(0.0, 0.6)  # mostly from the west
            speed = rng.uniform(8, 25) if kind not in ("fog", "cold wave") else rng.uniform(0, 5)
            radius = (rng.uniform(6, 12) if kind in ("thunderstorm",) else rng.uniform(10, 25)
                      if kind != "cold wave" else 60.0)
            mid = 0.5 * (s0 + s1)
            spells.append({"kind": kind, "s0": s0, "s1": s1, "size": size, "main": main,
                           "cx": float(rng.uniform(-8, 8)), "cy": float(rng.uniform(-8, 8)),
                           "vx": float(speed * math.cos(ang)), "vy": float(speed * math.sin(ang)),
                           "radius_km": float(radius), "mid": mid})
    sunny = (weather == 0).astype(float)
    diurnal = np.cos(2 * np.pi * (hours - 15.0) / 24.0)
    temp = (_clim_temp(np.repeat(doy, SLOTS)) + (3.5 + 2.5 * sunny) * diurnal + temp_anom + extra_temp
            - 3.0 * precip)
    wind = np.maximum(0.0, 2.3 * np.exp(wind_anom) + 0.9 * np.cos(2 * np.pi * (hours - 14.0) / 24.0)
                      + extra_wind + rng.gamma(2.0, 0.25, T))
    met = {"temperature": np.round(temp, 1), "wind": np.round(wind, 1), "weather": weather.astype(int)}
    return met, spells


def _spell_factor(spells: list[dict], day_index: int, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Extra local reduction of trips under moving weather cells for one day: ``(48, H, W)``."""
    out = np.ones((SLOTS,) + X.shape)
    s_lo, s_hi = day_index * SLOTS, (day_index + 1) * SLOTS
    for sp in spells:
        if sp["kind"] in ("cold wave",) or sp["s1"] <= s_lo or sp["s0"] >= s_hi:
            continue
        depth = 0.5 * (1.0 - _WEATHER_FACTOR[_W[sp["main"]]]) + 0.15 * sp["size"]
        for s in range(max(sp["s0"], s_lo), min(sp["s1"], s_hi)):
            dt_h = (s - sp["mid"]) / 2.0
            cx, cy = sp["cx"] + sp["vx"] * dt_h, sp["cy"] + sp["vy"] * dt_h
            r2 = ((X - cx) ** 2 + (Y - cy) ** 2) / sp["radius_km"] ** 2
            out[s - s_lo] *= 1.0 - depth * np.exp(-0.5 * r2 * 4.0)
    return out


# --------------------------------------------------------------------------------------------------
# scheduled events
# --------------------------------------------------------------------------------------------------

def _schedule(days: list[dt.date], spans: list[tuple[dt.date, dt.date]], rng: np.random.Generator) -> list[dict]:
    """Matches, concerts and exhibitions at the venues (local times, start/end as datetimes)."""
    ev: list[dict] = []

    def add(kind, venue, day, start_h, dur_h, size, desc):
        start = dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=start_h)
        ev.append({"kind": kind, "place": venue, "start": start, "end": start + dt.timedelta(hours=dur_h),
                   "size": int(size), "description": desc})

    guoan_week = 0
    for day in days:
        wd, m = day.weekday(), day.month
        hp = holiday_of(day)
        if hp is not None and hp.name.startswith("Spring Festival"):
            continue  # no matches or concerts during the Spring Festival week
        # Chinese Super League: Beijing Guoan at the Workers' Stadium, every other weekend, March–November
        if wd == 5:
            guoan_week += 1
        if wd in (5, 6) and 3 <= m <= 11 and guoan_week % 2 == 0 and (wd == 5) == (rng.random() < 0.6):
            if not any(e["kind"] == "match" and e["place"] == "Workers' Stadium"
                       and (day - e["start"].date()).days < 2 for e in ev):
                kick = 15.5 if m in (3, 11) else 19.6
                n = rng.integers(33000, 52000)
                add("match", "Workers' Stadium", day, kick, 2.0, n,
                    f"Chinese Super League match, Beijing Guoan at home, about {n:,} spectators")
        # Bird's Nest concerts in the warm season, Friday/Saturday
        if wd in (4, 5) and 5 <= m <= 10 and rng.random() < 0.2:
            n = rng.integers(45000, 80000)
            add("concert", "National Stadium (Bird's Nest)", day, 19.5, 3.0, n,
                f"Stadium concert at the Bird's Nest, about {n:,} fans")
        elif wd == 5 and m not in (12, 1, 2) and rng.random() < 0.05:
            n = rng.integers(40000, 70000)
            add("match", "National Stadium (Bird's Nest)", day, 19.5, 2.0, n,
                f"International football match at the National Stadium, about {n:,} spectators")
        # Wukesong Arena: CBA basketball in winter, concerts on Saturdays
        if wd in (2, 6) and m in (11, 12, 1, 2, 3) and rng.random() < 0.5:
            n = rng.integers(13000, 18000)
            add("match", "Wukesong Arena", day, 19.6, 2.5, n,
                f"CBA basketball, Beijing Ducks at home, about {n:,} spectators")
        elif wd == 5 and rng.random() < 0.15:
            n = rng.integers(12000, 18000)
            add("concert", "Wukesong Arena", day, 19.5, 3.0, n, f"Arena concert at Wukesong, about {n:,} fans")
        # trade fairs at the exhibition centre: 3–4 days, daytime
        if wd == 1 and rng.random() < 0.12:
            ndays = int(rng.integers(3, 5))
            n = rng.integers(20000, 40000)
            for k in range(ndays):
                add("exhibition", "China International Exhibition Center", day + dt.timedelta(days=k), 9.0, 8.0,
                    n, f"Trade fair at the China International Exhibition Center (day {k + 1} of {ndays}), "
                       f"about {n:,} visitors a day")
    dayset = set(days)
    ev = [e for e in ev if e["start"].date() in dayset]
    # every period of 4 days or more gets at least one large evening event (so every preset has one)
    for a, b in spans:
        if (b - a).days < 3:
            continue
        if any(a <= e["start"].date() <= b and e["size"] >= 30000 for e in ev):
            continue
        cand = [d for d in _days(a + dt.timedelta(days=1), b - dt.timedelta(days=1)) if d.weekday() == 5]
        day = cand[0] if cand else a + dt.timedelta(days=1)
        n = int(rng.integers(40000, 60000))
        venue = "National Stadium (Bird's Nest)" if 5 <= day.month <= 10 else "Workers' Stadium"
        add("concert", venue, day, 19.5, 3.0, n, f"Stadium concert at the {venue}, about {n:,} fans")
    ev.sort(key=lambda e: (e["start"], e["place"]))
    return ev


def _event_curves(kind: str, s_h: float, e_h: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised arrival and departure curves of an event at hours ``t`` (start/end ``s_h``/``e_h``)."""
    if kind == "exhibition":
        arr = np.exp(-0.5 * ((t - (s_h + 0.8)) / 0.9) ** 2)
        dep = np.exp(-0.5 * ((t - (e_h - 0.5)) / 0.9) ** 2)
    else:  # arrivals in the 3 hours before the start, departures in the 2 hours after the end
        arr = np.exp(-0.5 * ((t - (s_h - 0.75)) / 0.6) ** 2) * (t > s_h - 3) * (t < s_h + 0.5)
        dep = np.exp(-0.5 * ((t - (e_h + 0.4)) / 0.5) ** 2) * (t > e_h - 0.25) * (t < e_h + 2)
    return arr, dep


def _event_profiles(ev: list[dict], day: dt.date) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """For one day: (venue, arrivals per slot, departures per slot) in trips (absolute)."""
    out = []
    d0 = dt.datetime.combine(day, dt.time())
    wide = np.arange(-48, 96) / 2.0 + 0.25  # slot centres from the day before to the day after
    for e in ev:
        s_h = (e["start"] - d0).total_seconds() / 3600.0
        e_h = (e["end"] - d0).total_seconds() / 3600.0
        if e_h < -3 or s_h > 27:
            continue
        trips = e["size"] * _TAXI_SHARE
        arr, dep = _event_curves(e["kind"], s_h, e_h, _SLOT_H)
        arr_all, dep_all = _event_curves(e["kind"], s_h, e_h, wide)
        out.append((e["place"], trips * arr / arr_all.sum(), trips * dep / dep_all.sum()))
    return out


# --------------------------------------------------------------------------------------------------
# time profiles of the trip purposes
# --------------------------------------------------------------------------------------------------

_PURPOSES = ("commute", "leisure", "business", "errand", "night", "airport", "stations")


def _components(patterns: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    names, basis = [], []
    for name, p in patterns.items():
        names += [f"{name}>", f"{name}<"]
        basis += [p, p[::-1]]  # forward trips, reverse trips (in/out swapped)
    return names, np.stack(basis)


def _day_context(day: dt.date) -> dict:
    kinds = {k: day_type(day + dt.timedelta(days=k)) for k in range(-8, 9)}
    hp = holiday_of(day)
    off = lambda t: t in ("holiday", "weekend")  # noqa: E731
    return {
        "type": kinds[0], "holiday": hp.name if hp else None,
        "spring": bool(hp and hp.name.startswith("Spring Festival")),
        # the last working day before a break of >= 3 days off, and the last day off of such a break
        "eve_of_break": not off(kinds[0]) and all(off(kinds[k]) for k in (1, 2, 3)),
        "end_of_break": off(kinds[0]) and not off(kinds[1]) and all(off(kinds[-k]) for k in (1, 2)),
        "days_to_spring": next((k for k in range(1, 9) if (h := holiday_of(day + dt.timedelta(days=k)))
                                and h.name.startswith("Spring Festival")), None),
        "days_after_spring": next((k for k in range(1, 9) if (h := holiday_of(day - dt.timedelta(days=k)))
                                   and h.name.startswith("Spring Festival")), None),
    }


def _profiles(day: dt.date, ctx: dict) -> dict[str, np.ndarray]:
    """Trips per slot (relative units) of each component on ``day``: name → (48,)."""
    h = _SLOT_H
    work = ctx["type"] in ("workday", "makeup")
    wd = day.weekday()
    p: dict[str, np.ndarray] = {}
    if work:
        p["commute>"] = 1.0 * _g(h, 8.1, 0.75) + 0.18 * _g(h, 9.6, 1.4)
        p["commute<"] = 0.75 * _g(h, 18.2, 1.0) + 0.25 * _g(h, 20.6, 1.5) + 0.06 * _g(h, 12.5, 1.0)
        p["leisure>"] = 0.12 * _g(h, 12.0, 2.5) + 0.15 * _g(h, 19.0, 1.3)
        p["leisure<"] = 0.10 * _g(h, 14.5, 2.5) + 0.15 * _g(h, 21.6, 1.3)
        p["business>"] = p["business<"] = 0.22 * _g(h, 10.5, 1.5) + 0.22 * _g(h, 15.0, 1.8)
        p["errand>"] = p["errand<"] = 0.03 + 0.14 * _g(h, 10.0, 3.0) + 0.14 * _g(h, 16.5, 3.0)
        p["night>"] = 0.08 * _g(h, 20.7, 1.5)
        p["night<"] = 0.10 * _g(h, 0.6, 1.2)
        if wd == 4:  # Friday evening
            p["leisure>"] += 0.08 * _g(h, 19.5, 1.5)
            p["night>"] *= 1.6
        if wd == 0:
            p["commute>"] *= 1.05
    else:
        p["commute>"] = 0.18 * _g(h, 9.0, 1.5)
        p["commute<"] = 0.18 * _g(h, 18.0, 2.0)
        p["leisure>"] = 0.45 * _g(h, 11.4, 2.2) + 0.20 * _g(h, 18.6, 1.5)
        p["leisure<"] = 0.40 * _g(h, 16.5, 2.5) + 0.20 * _g(h, 21.6, 1.5)
        p["business>"] = p["business<"] = 0.05 * _g(h, 13.0, 3.0)
        p["errand>"] = p["errand<"] = 0.03 + 0.24 * _g(h, 11.0, 3.0) + 0.2 * _g(h, 16.0, 3.0)
        p["night>"] = 0.14 * _g(h, 21.0, 1.5)
        p["night<"] = 0.18 * _g(h, 1.0, 1.3)
        if ctx["type"] == "holiday":
            p["leisure>"] *= 1.15
            p["leisure<"] *= 1.15
    air = 0.025 * (1.0 / (1 + np.exp(-(h - 6.5) * 2))) * (1.0 / (1 + np.exp((h - 23.0) * 2)))
    p["airport>"] = air + 0.03 * _g(h, 10.5, 1.5) + 0.035 * _g(h, 19.0, 2.0)
    p["airport<"] = air + 0.035 * _g(h, 8.0, 1.5) + 0.025 * _g(h, 15.5, 2.0)
    st = 0.02 + 0.05 * _g(h, 7.5, 1.0) + 0.05 * _g(h, 18.0, 2.0)
    p["stations>"] = st.copy()  # arriving by train, leaving the station
    p["stations<"] = st.copy()  # going to catch a train
    if ctx["eve_of_break"]:
        p["stations<"] *= 2.5
        p["airport<"] *= 1.5
    if ctx["end_of_break"]:
        p["stations>"] *= 2.5
        p["airport>"] *= 1.5
    if ctx["days_to_spring"]:  # the Spring Festival exodus
        p["stations<"] *= 1.0 + 2.5 * (9 - ctx["days_to_spring"]) / 8.0
    if ctx["days_after_spring"]:
        p["stations>"] *= 1.0 + 2.5 * (9 - ctx["days_after_spring"]) / 8.0
    season = 1.0 + 0.15 * (day.month in (6, 7, 8)) - 0.1 * (day.month in (12, 1, 2))
    for k in ("leisure>", "leisure<", "night>", "night<"):
        p[k] = p[k] * season
    scale = 1.0 + 0.04 * (day.year - 2013)  # growth of the taxi fleet's business
    if ctx["spring"]:
        scale *= 0.5  # the city empties
        first = holiday_of(day).start == day
        if first:  # New Year's Eve: nobody on the road after dinner
            scale = scale * np.where(h > 18.0, 0.45, 1.0)
    return {k: v * scale for k, v in p.items()}


def expected_day(day: dt.date, names: list[str]) -> np.ndarray:
    """Relative trips per slot of each component ``(48, len(names))`` before weather and calibration."""
    prof = _profiles(day, _day_context(day))
    A = np.zeros((SLOTS, len(names)))
    idx = {n: i for i, n in enumerate(names)}
    for k, v in prof.items():
        A[:, idx[k]] = v
    return A


# --------------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------------

class _CityModel:
    """Everything about the city at one raster size: basis patterns, calibration, pixel grid."""

    def __init__(self, size: int):
        self.size = size
        pats = citymap.flow_patterns(size)
        self.names, self.basis = _components(pats)
        self.flat = self.basis.reshape(len(self.names), -1)  # (K, 2*H*W)
        self.idx = {n: i for i, n in enumerate(self.names)}
        self.X, self.Y = citymap.pixel_centres(size)
        # calibration on an ordinary Wednesday, independent of size: the 32×32 mean inflow
        pats32 = citymap.flow_patterns(32)
        names32, basis32 = _components(pats32)
        A = expected_day(dt.date(2015, 4, 15), names32)
        mean_in = (A @ basis32[:, 0].reshape(len(names32), -1)).mean()
        self.scale = _MEAN_INFLOW_32 / mean_in

    def day_lambda(self, day: dt.date, events: list[dict], met_slice: dict, spell_mask: np.ndarray,
                   noise_cell: np.ndarray, noise_slot: np.ndarray) -> np.ndarray:
        """Expected counts ``(48, 2, H, W)`` for one day."""
        A = expected_day(day, self.names) * self.scale
        wfac = _WEATHER_FACTOR[met_slice["weather"]]
        cold = 1.0 - 0.012 * np.clip(-met_slice["temperature"], 0, 15)
        A *= (wfac * cold * noise_slot)[:, None]
        for venue, arr, dep in _event_profiles(events, day):
            A[:, self.idx[f"venue:{venue}<"]] += arr
            A[:, self.idx[f"venue:{venue}>"]] += dep
        lam = (A @ self.flat).reshape(SLOTS, 2, self.size, self.size)
        lam *= spell_mask[:, None] * noise_cell[None]
        # keep the city-wide balance exact in expectation after the local modulations
        tin = lam[:, 0].sum(axis=(1, 2))
        tout = lam[:, 1].sum(axis=(1, 2))
        mid = 0.5 * (tin + tout)
        lam[:, 0] *= (mid / np.maximum(tin, 1e-9))[:, None, None]
        lam[:, 1] *= (mid / np.maximum(tout, 1e-9))[:, None, None]
        return lam


def _h5_name(end: dt.date, size: int) -> str:
    return f"BJ{end.year % 100:02d}_M{size}x{size}_T30_InOut.h5"


def _pick_gaps(spans, preset: CityPreset, events, rng) -> set[tuple[dt.date, int]]:
    """Missing slots: a few short gaps per period (and one long one in bench), away from events."""
    avoid = set()
    for e in events:
        t = e["start"] - dt.timedelta(hours=3)
        while t < e["end"] + dt.timedelta(hours=2.5):
            avoid.add((t.date(), (t.hour * 60 + t.minute) // 30))
            t += dt.timedelta(minutes=30)
    missing: set[tuple[dt.date, int]] = set()
    for a, b in spans:
        days = _days(a, b)
        if len(days) < 3:
            continue
        lens = [int(rng.integers(1, 4)) for _ in range(preset.gaps_per_span)]
        if preset.long_gap:
            lens.append(int(rng.integers(12, 49)))
        for n in lens:
            for _ in range(50):
                di = int(rng.integers(1, len(days) - 1))
                s0 = int(rng.integers(0, SLOTS))
                cand = []
                for k in range(n):
                    s = s0 + k
                    cand.append((days[di + s // SLOTS] if di + s // SLOTS < len(days) else None, s % SLOTS))
                if all(c[0] is not None and c not in avoid for c in cand):
                    missing.update(cand)
                    break
    return missing


def _write_h5_series(path: Path, labels: np.ndarray, frames_iter, n: int, size: int) -> None:
    import h5py

    chunk = (48 if size <= 32 else 4, 2, size, size)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            data = f.create_dataset("data", shape=(n, 2, size, size), dtype="<f8",
                                    chunks=(min(chunk[0], max(n, 1)),) + chunk[1:], compression="gzip",
                                    compression_opts=1, shuffle=True, track_times=False)
            f.create_dataset("date", data=labels, dtype="S10", track_times=False)
            i = 0
            for block in frames_iter:
                data[i:i + len(block)] = block
                i += len(block)
            if i != n:
                raise RuntimeError(f"internal: wrote {i} of {n} frames")


def _write_meteorology(path: Path, days: list[dt.date], met: dict) -> None:
    import h5py

    labels = np.array([slot_label(d, s) for d in days for s in range(SLOTS)], dtype="S10")
    onehot = np.zeros((len(labels), len(WEATHER_CATEGORIES)))
    onehot[np.arange(len(labels)), met["weather"]] = 1.0
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            opts = {"compression": "gzip", "compression_opts": 1, "shuffle": True, "track_times": False}
            f.create_dataset("date", data=labels, **opts)
            f.create_dataset("Temperature", data=met["temperature"].astype("<f8"), **opts)
            f.create_dataset("WindSpeed", data=met["wind"].astype("<f8"), **opts)
            f.create_dataset("Weather", data=onehot, **opts)


def _generate(kind: str, out: Path, preset_name: str, seed: int) -> dict:
    from tqdm import tqdm

    from core import __version__

    try:
        preset = PRESETS[kind][preset_name]
    except KeyError:
        from core.errors import UserError

        raise UserError(f"unknown preset {preset_name!r} for {kind}; choose from "
                        f"{', '.join(PRESETS[kind])}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = _SIZE[kind]
    spans = [(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in preset.spans]
    first, last = spans[0][0], spans[-1][1]
    all_days = _days(first, last)
    ss = np.random.SeedSequence([int(seed), 20130701])
    r_met, r_ev, r_gap, r_noise, r_pois = (np.random.default_rng(s) for s in ss.spawn(5))

    met, spells = _meteorology(all_days, r_met)
    in_spans = lambda d: any(a <= d <= b for a, b in spans)  # noqa: E731
    events = [e for e in _schedule(all_days, spans, r_ev) if in_spans(e["start"].date())]
    near: dict[dt.date, list[dict]] = {}
    for e in events:
        for k in (-1, 0, 1):
            near.setdefault(e["start"].date() + dt.timedelta(days=k), []).append(e)
    missing = _pick_gaps(spans, preset, events, r_gap)
    model = _CityModel(size)
    spells_near: dict[int, list[dict]] = {}
    for sp in spells:
        for i in range(sp["s0"] // SLOTS, (sp["s1"] - 1) // SLOTS + 1):
            spells_near.setdefault(i, []).append(sp)
    span_spells = [sp for sp in spells
                   if (sp["size"] >= _MIN_SPELL_SIZE or sp["kind"] == "cold wave")
                   and any(in_spans(all_days[i]) for i in range(sp["s0"] // SLOTS, (sp["s1"] - 1) // SLOTS + 1))]
    day_index = {d: i for i, d in enumerate(all_days)}
    cell_sd = 0.06

    files: list[str] = []
    n_slots = 0
    keep_series = kind == "taxibj+"
    series_store: dict[tuple[dt.date, int], np.ndarray] = {}
    total_days = sum((b - a).days + 1 for a, b in spans)
    bar = tqdm(total=total_days, desc=f"{kind} {preset_name}", unit="day", disable=None)
    for a, b in spans:
        days = _days(a, b)
        labels = np.array([slot_label(d, s) for d in days for s in range(SLOTS) if (d, s) not in missing],
                          dtype="S10")

        def frames(days=days):
            for d in days:
                i = day_index[d]
                sl = slice(i * SLOTS, (i + 1) * SLOTS)
                met_slice = {"weather": met["weather"][sl], "temperature": met["temperature"][sl]}
                spell_mask = _spell_factor(spells_near.get(i, []), i, model.X, model.Y)
                noise_cell = np.exp(r_noise.normal(0.0, cell_sd, (2, size, size)) - 0.5 * cell_sd ** 2)
                noise_cell[1] = noise_cell[0] * np.exp(r_noise.normal(0.0, 0.02, (size, size)))
                noise_slot = np.exp(np.convolve(r_noise.normal(0, 0.03, SLOTS + 4), np.ones(5) / np.sqrt(5),
                                                "valid"))
                lam = model.day_lambda(d, near.get(d, []), met_slice, spell_mask, noise_cell, noise_slot)
                counts = r_pois.poisson(lam).astype(np.float64)
                keep = np.array([(d, s) not in missing for s in range(SLOTS)])
                if keep_series:
                    u16 = counts.astype(np.uint16)
                    if u16.max() != counts.max():
                        raise RuntimeError("internal: counts overflow uint16")
                    for s in np.nonzero(keep)[0]:
                        series_store[(d, int(s))] = u16[s]
                bar.update(1)
                yield counts[keep]

        name = _h5_name(b, size)
        _write_h5_series(out / name, labels, frames(), len(labels), size)
        files.append(name)
        n_slots += len(labels)
    bar.close()

    _write_meteorology(out / "BJ_Meteorology.h5", all_days, met)
    files.append("BJ_Meteorology.h5")
    years = sorted({d.year for d in all_days})
    hol_days = sorted({d for hp in holiday_periods(dt.date(years[0], 1, 1), dt.date(years[-1], 12, 31))
                       for d in hp.days if d.year in years})
    atomic_write_text(out / "BJ_Holiday.txt", "".join(f"{d:%Y%m%d}\n" for d in hol_days))
    files.append("BJ_Holiday.txt")

    # splits: the last test_days days are test, the val_days before them validation, the rest train
    test0 = last - dt.timedelta(days=preset.test_days - 1)
    val0 = test0 - dt.timedelta(days=preset.val_days)
    splits = {"train": [first.isoformat(), (val0 - dt.timedelta(days=1)).isoformat()],
              "val": [val0.isoformat(), (test0 - dt.timedelta(days=1)).isoformat()],
              "test": [test0.isoformat(), last.isoformat()]}
    t_in, t_out = _T_IN_OUT[kind]

    windows_meta = {}
    if kind == "taxibj+":
        windows_meta = _write_windows(out, series_store, splits, t_in, t_out, preset, size)
        files += [f"{s}_{io}_data_reshaped.npy" for s in ("train", "val", "test") for io in ("input", "output")]
        series_store.clear()

    ev_json = _events_json(events, span_spells, spans, all_days, size)
    atomic_write_json(out / "events.json", ev_json)
    missing_labels = sorted(slot_label(d, s).decode() for d, s in missing)
    meta = {
        "kind": kind, "source": kind, "preset": preset_name, "seed": int(seed), "cadence": "PT30M",
        "t_in": t_in, "t_out": t_out, "splits": splits,
        "nonstationary_rule": NONSTATIONARY_RULE,
        "generator": {
            "name": "core.synth.city", "version": 1, "grid": [size, size],
            "half_width_km": citymap.HALF_WIDTH, "cell_km": citymap.cell_km(size),
            "orientation": "row 0 = north, column 0 = west; channel 0 inflow, channel 1 outflow",
            "periods": [[a.isoformat(), b.isoformat()] for a, b in spans],
            "files": files, "slots": n_slots, "missing_slots": missing_labels,
            "weather_categories": list(WEATHER_CATEGORIES), "temperature_units": "degC",
            "wind_speed_units": "m s**-1", "flow_units": "trips / 30 min",
            "calibration_mean_inflow_32": _MEAN_INFLOW_32, "taxi_share_of_event_attendance": _TAXI_SHARE,
            "cell_noise_sd": cell_sd, "trip_purposes": list(_PURPOSES) + [f"venue:{v}" for v in citymap.VENUES],
            "min_weather_spell_size_in_events": _MIN_SPELL_SIZE, "windows": windows_meta,
        },
        "created_with": f"s2kd {__version__}",
    }
    atomic_write_json(out / "s2kd_dataset.json", meta)
    files += ["events.json", "s2kd_dataset.json"]
    return {"files": files, "slots": n_slots, "missing_slots": len(missing_labels), "events": len(events),
            "weather_spells": len(span_spells), "bytes": sum((out / f).stat().st_size for f in files)}


def _write_windows(out: Path, store: dict, splits: dict, t_in: int, t_out: int, preset: CityPreset,
                   size: int) -> dict:
    """TaxiBJ+ window files (N, 12, 2, H, W) float32; a window lies inside one split and has no gap."""
    n_win = t_in + t_out
    meta = {"stride": preset.window_stride, "dtype": "float32", "first_input": {}}
    for split, (s0, s1) in splits.items():
        d0, d1 = dt.date.fromisoformat(s0), dt.date.fromisoformat(s1)
        starts = []
        day = d0
        while day <= d1:
            for s in range(0, SLOTS, preset.window_stride):
                slots = []
                for k in range(n_win):
                    dd = day + dt.timedelta(days=(s + k) // SLOTS)
                    slots.append((dd, (s + k) % SLOTS))
                if all(x in store and x[0] <= d1 for x in slots):
                    starts.append(slots)
            day += dt.timedelta(days=1)
        if preset.max_windows is not None and len(starts) > preset.max_windows:
            pick = np.linspace(0, len(starts) - 1, preset.max_windows).round().astype(int)
            starts = [starts[i] for i in pick]
        meta["first_input"][split] = [_iso(w[0][0], w[0][1]) for w in starts]
        for io, sl in (("input", slice(0, t_in)), ("output", slice(t_in, n_win))):
            path = out / f"{split}_{io}_data_reshaped.npy"
            with atomic_path(path) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4",
                                                shape=(len(starts), sl.stop - sl.start, 2, size, size))
                for i, w in enumerate(starts):
                    arr[i] = np.stack([store[x] for x in w[sl]]).astype(np.float32)
                arr.flush()
                del arr
    return meta


def _events_json(events, spells, spans, all_days, size) -> dict:
    """events.json: scheduled events, holidays, make-up days and weather spells (pixel positions)."""
    cell = citymap.cell_km(size)
    rows = []
    for e in events:
        p = citymap.PLACE[e["place"]]
        r, c = citymap.pixel_of(p.x, p.y, size)
        rows.append({"kind": e["kind"], "start": e["start"].isoformat(timespec="seconds"),
                     "end": e["end"].isoformat(timespec="seconds"), "place": e["place"],
                     "description": e["description"] + "; inflow surge before the start, outflow surge after "
                                                        "the end", "size": e["size"], "y": r, "x": c,
                     "radius": round(max(1.5, 1.25 / cell), 2), "x_km": p.x, "y_km": p.y, "radius_km": 1.25,
                     "known_ahead": True})
    lo, hi = all_days[0], all_days[-1]
    in_spans = lambda d: any(a <= d <= b for a, b in spans)  # noqa: E731
    for hp in holiday_periods(lo, hi):
        if any(in_spans(d) for d in hp.days):
            n = (hp.end - hp.start).days + 1
            rows.append({"kind": "holiday", "start": f"{hp.start.isoformat()}T00:00:00",
                         "end": f"{hp.end.isoformat()}T23:59:59", "place": "city-wide",
                         "description": f"{hp.name}: official public holiday, {n} day{'s' * (n > 1)} off "
                                        f"({hp.start:%d %b} – {hp.end:%d %b %Y})",
                         "size": n, "known_ahead": True})
        for m in hp.makeup:
            if in_spans(m):
                rows.append({"kind": "makeup_workday", "start": f"{m.isoformat()}T00:00:00",
                             "end": f"{m.isoformat()}T23:59:59", "place": "city-wide",
                             "description": f"Make-up working day for the {hp.name} ({m:%A}): a normal workday",
                             "size": 1, "known_ahead": True})
    for sp in spells:
        d0 = all_days[sp["s0"] // SLOTS]
        d1 = all_days[min(sp["s1"] - 1, len(all_days) * SLOTS - 1) // SLOTS]
        start = _iso(d0, sp["s0"] % SLOTS)
        end = _iso(d1, (sp["s1"] - 1) % SLOTS + 1)
        r, c = citymap.km_to_pixel(sp["cx"], sp["cy"], size)
        what = {"cold wave": "Cold wave: temperatures fall sharply with strong northerly wind",
                "fog": "Fog and haze with low visibility", "dust": "Floating dust",
                "sandstorm": "Sandstorm with strong wind"}.get(sp["kind"], f"{sp['kind'].capitalize()} "
                                                                       f"({sp['main']})")
        rows.append({"kind": sp["kind"], "start": start, "end": end, "place": "moving weather cell"
                     if sp["kind"] != "cold wave" else "city-wide",
                     "description": f"{what}; the cell moves at {math.hypot(sp['vx'], sp['vy']):.0f} km/h "
                                    f"and reduces trips where it passes", "size": sp["size"],
                     "y": round(float(r), 2), "x": round(float(c), 2), "radius": round(sp["radius_km"] / cell, 2),
                     "x_km": round(sp["cx"], 2), "y_km": round(sp["cy"], 2),
                     "radius_km": round(sp["radius_km"], 2), "weather": sp["main"], "known_ahead": True})
    rows.sort(key=lambda r: (r["start"], r["kind"], r["place"]))
    return {"version": 1, "grid": [size, size], "coordinates": "y = row (0 = north), x = column (0 = west), "
            "radius in pixels", "events": rows}


def generate_taxibj(out: Path, preset: str, seed: int) -> dict:
    """Write the TaxiBJ files (32×32) for ``preset`` into ``out``; returns a summary."""
    return _generate("taxibj", out, preset, seed)


def generate_taxibjplus(out: Path, preset: str, seed: int) -> dict:
    """Write the TaxiBJ+ files (128×128 HDF5 and the 12→12 .npy windows) into ``out``; returns a summary."""
    return _generate("taxibj+", out, preset, seed)
