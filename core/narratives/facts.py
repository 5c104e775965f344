"""Diagnostic facts about one window: numbers a narrator can state and a reader can check.

:func:`compute_facts` returns a JSON-serialisable dict.  Weather (lat-lon grids), per channel:
extrema and where they are (named regions), anomalies against a climatology, the strongest gradient
(a front), the displacement of the pattern between the first and the last input frame (phase
correlation: direction and speed), the low/high band energy split (``models.spectral``, the project's
one band split), the area-mean trend; plus the season and time of day.  Crowd flow (city grids): time
of day, weekday/weekend/holiday, meteorology, scheduled events, the flow level and where inflow and
outflow are rising or falling.  With targets (privileged scope only) a ``target`` section describes the
forecast window too.

Conventions: latitude ascending, longitude 0…360 (periodic); city ``y`` grows northward and ``x``
eastward.  Gradients are per 1000 km, speeds in km/h, times as in the window (UTC for weather).
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from typing import Any, Sequence

import numpy as np

from core.narratives import NarrationInput, is_scheduled

__all__ = ["compute_facts", "weather_facts", "crowd_facts", "region_name", "phase_correlation_shift",
           "compass", "city_district", "season_name", "CHANNEL_NAMES", "WEATHER_CATEGORIES"]

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0
#: Faster apparent motion than this (km/h) is not a moving weather system but decorrelation.
MAX_SYSTEM_SPEED_KMH = 250.0

#: Long names for channel short names.
CHANNEL_NAMES = {
    "z500": "500 hPa geopotential height", "z": "geopotential height", "t850": "850 hPa temperature",
    "t": "temperature", "t2m": "2 m temperature", "u10": "10 m zonal wind", "v10": "10 m meridional wind",
    "tcc": "total cloud cover", "tp": "precipitation", "r": "relative humidity", "msl": "sea-level pressure",
    "inflow": "inflow", "outflow": "outflow",
}

#: TaxiBJ's 17 weather categories (``BJ_Meteorology.h5`` ``Weather`` one-hot), in index order.
WEATHER_CATEGORIES = ("sunny", "cloudy", "overcast", "rainy", "light rain", "moderate rain", "heavy rain",
                      "rainstorm", "thunderstorm", "freezing rain", "snowy", "light snow", "moderate snow",
                      "heavy snow", "foggy", "sandstorm", "dusty")

# Named regions on the 0…360 longitude convention: (name with article, lat_min, lat_max, lon_min, lon_max);
# the first match wins; lon_min > lon_max crosses the 0°/360° seam.
_REGIONS: tuple[tuple[str, float, float, float, float], ...] = (
    ("the Arctic", 66, 91, 0, 360),
    ("Antarctica", -91, -66, 0, 360),
    ("Europe", 36, 66, 350, 40),
    ("North Africa", 15, 36, 343, 35),
    ("the Middle East", 12, 42, 35, 60),
    ("Siberia", 50, 66, 60, 180),
    ("Central Asia", 36, 50, 40, 100),
    ("East Asia", 20, 50, 100, 145),
    ("South Asia", 5, 36, 60, 100),
    ("the North Pacific", 20, 66, 145, 235),
    ("North America", 25, 66, 235, 295),
    ("Central America", 8, 25, 255, 285),
    ("the North Atlantic", 0, 66, 285, 360),
    ("South America", -56, 12, 278, 326),
    ("Africa", -35, 15, 343, 52),
    ("the South Atlantic", -66, 0, 300, 20),
    ("Australia", -45, -10, 112, 155),
    ("the Maritime Continent", -10, 8, 95, 150),
    ("the Indian Ocean", -66, 25, 20, 120),
    ("the tropical Pacific", -20, 20, 150, 285),
    ("the South Pacific", -66, -20, 120, 300),
    ("the North Pacific", 0, 20, 120, 255),
    ("the Southern Ocean", -66, -45, 0, 360),
)


# --------------------------------------------------------------------------- geography and calendar
def region_name(lat: float, lon: float) -> str:
    """A named region for a point (``"the North Atlantic"``), or a coordinate text."""
    lon = float(lon) % 360.0
    for name, la0, la1, lo0, lo1 in _REGIONS:
        if not la0 <= lat < la1:
            continue
        inside = lo0 <= lon < lo1 if lo0 <= lo1 else (lon >= lo0 or lon < lo1)
        if inside:
            return name
    return format_latlon(lat, lon)


def format_latlon(lat: float, lon: float) -> str:
    lon = (float(lon) + 180.0) % 360.0 - 180.0
    return f"{abs(lat):.0f}°{'N' if lat >= 0 else 'S'} {abs(lon):.0f}°{'E' if lon >= 0 else 'W'}"


def compass(north: float, east: float) -> str:
    """8-point compass direction of a vector (``"north-east"``)."""
    names = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")
    angle = math.degrees(math.atan2(north, east)) % 360.0
    return names[int(((angle + 22.5) % 360.0) // 45.0)]


def city_district(iy: int, ix: int, h: int, w: int) -> str:
    """A 3×3 sector name for a city pixel (``y`` grows northward): ``"the north-west"``, ``"the centre"``."""
    row = ("south", "", "north")[min(2, int(3 * iy / h))]
    col = ("west", "", "east")[min(2, int(3 * ix / w))]
    if not row and not col:
        return "the city centre"
    return "the " + "-".join(p for p in (row, col) if p) + " of the city"


def parse_time(iso: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(str(iso).rstrip("Z")[:19])


def season_name(month: int, lat_hint: float | None = None) -> str:
    """Meteorological season (boreal naming: DJF winter, …)."""
    return ("winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer",
            "autumn", "autumn", "autumn", "winter")[month - 1]


def part_of_day(hour: int) -> str:
    if 5 <= hour < 7:
        return "early morning"
    if 7 <= hour < 10:
        return "morning rush hour"
    if 10 <= hour < 12:
        return "late morning"
    if 12 <= hour < 14:
        return "midday"
    if 14 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 20:
        return "evening rush hour"
    if 20 <= hour < 23:
        return "evening"
    return "night"


def calendar_facts(window: NarrationInput) -> dict:
    t_last = parse_time(window.input_times[-1])
    out = {"last_input_time": window.input_times[-1], "month": t_last.month, "hour": t_last.hour,
           "season": season_name(t_last.month), "weekday": t_last.strftime("%A"),
           "weekend": t_last.weekday() >= 5, "part_of_day": part_of_day(t_last.hour)}
    if window.target_times:
        t_first, t_end = parse_time(window.target_times[0]), parse_time(window.target_times[-1])
        out.update(first_target_time=window.target_times[0], last_target_time=window.target_times[-1],
                   horizon_hours=round((t_end - t_last).total_seconds() / 3600.0, 2),
                   target_part_of_day=part_of_day(t_first.hour))
    if len(window.input_times) > 1:
        out["input_hours"] = round((t_last - parse_time(window.input_times[0])).total_seconds() / 3600.0, 2)
    return out


# --------------------------------------------------------------------------- units
def display_value(value: float, channel: str, unit: str) -> tuple[float, str]:
    """Convert a value to a readable unit: geopotential → dam of height, K → °C."""
    u = unit.replace(" ", "")
    if u in ("m**2s**-2", "m2s-2", "m^2s^-2", "m**2/s**2"):
        return value / 9.80665 / 10.0, "dam"
    if u == "K" and channel.startswith("t"):
        return value - 273.15, "°C"
    return value, unit


def display_delta(value: float, channel: str, unit: str) -> tuple[float, str]:
    """Like :func:`display_value` for differences (no offset)."""
    u = unit.replace(" ", "")
    if u in ("m**2s**-2", "m2s-2", "m^2s^-2", "m**2/s**2"):
        return value / 9.80665 / 10.0, "dam"
    if u == "K":
        return value, "K"
    return value, unit


# --------------------------------------------------------------------------- field diagnostics
def area_weights(lats: np.ndarray, w: int) -> np.ndarray:
    wl = np.cos(np.deg2rad(lats)).clip(min=0.0)
    wl = wl / wl.mean() if wl.mean() > 0 else np.ones_like(wl)
    return np.repeat(wl[:, None], w, axis=1)


def _hann(n: int) -> np.ndarray:
    return np.hanning(n + 2)[1:-1] if n > 2 else np.ones(n)


def phase_correlation_shift(a: np.ndarray, b: np.ndarray, periodic: Sequence[bool] = (False, True)
                            ) -> tuple[float, float, float]:
    """Shift ``(dy, dx)`` in pixels that carries ``a`` onto ``b`` (``b ≈ roll(a, (dy, dx))``) and the
    correlation peak height (1 = a perfect shift, ~0 = no coherent motion).

    Phase correlation: ``IFFT(Fa* Fb / |Fa* Fb|)`` peaks at the shift.  Non-periodic axes get a Hann
    taper; the peak is refined to sub-pixel precision with a parabola through its neighbours.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    h, w = a.shape
    taper = np.outer(_hann(h) if not periodic[0] else np.ones(h), _hann(w) if not periodic[1] else np.ones(w))
    a = (a - a.mean()) * taper
    b = (b - b.mean()) * taper
    cross = np.conj(np.fft.fft2(a)) * np.fft.fft2(b)
    mag = np.abs(cross)
    if not np.isfinite(mag).all() or mag.max() <= 0:
        return 0.0, 0.0, 0.0
    cross /= np.maximum(mag, 1e-12 * mag.max())
    corr = np.real(np.fft.ifft2(cross))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    peak = float(corr[iy, ix])

    def refine(c_m, c_0, c_p):
        den = c_m - 2 * c_0 + c_p
        return 0.0 if abs(den) < 1e-12 else float(np.clip(0.5 * (c_m - c_p) / den, -0.5, 0.5))

    dy = iy + refine(corr[(iy - 1) % h, ix], corr[iy, ix], corr[(iy + 1) % h, ix])
    dx = ix + refine(corr[iy, (ix - 1) % w], corr[iy, ix], corr[iy, (ix + 1) % w])
    dy = dy - h if dy > h / 2 else dy
    dx = dx - w if dx > w / 2 else dx
    return float(dy), float(dx), peak


def _grid_steps_km(window: NarrationInput) -> tuple[float, np.ndarray]:
    """Row spacing (km) and per-row column spacing (km) of a lat-lon grid."""
    lats, lons = window.ys, window.xs
    dlat = float(np.abs(np.diff(lats)).mean()) if lats.size > 1 else 1.0
    dlon = float(np.abs(np.diff(lons)).mean()) if lons.size > 1 else 1.0
    return dlat * KM_PER_DEG, dlon * KM_PER_DEG * np.cos(np.deg2rad(lats)).clip(min=0.05)


def gradient_magnitude(field: np.ndarray, dy_km: float, dx_km: np.ndarray) -> np.ndarray:
    """|∇f| per 1000 km on a lat-lon grid (longitude periodic, one-sided at the poles' rows)."""
    gy = np.gradient(field, axis=0) / dy_km
    gx = (np.roll(field, -1, axis=1) - np.roll(field, 1, axis=1)) / (2.0 * dx_km[:, None])
    return np.hypot(gy, gx) * 1000.0


_THREADS_LOCK = threading.Lock()


def band_energy(field: np.ndarray, periodic: Sequence[bool]) -> dict:
    """Share of the (mean-removed) variance in the low and high band of ``models.spectral.band_split``.

    Runs torch single-threaded: on a field this small, intra-op threads only add synchronisation (on a
    busy 2-core machine 20× slower); the previous thread count is restored.
    """
    import torch

    from models.spectral import high_band_power_fraction

    z = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32))
    with _THREADS_LOCK:
        threads = torch.get_num_threads()
        try:
            if threads > 1:
                torch.set_num_threads(1)
            high = float(high_band_power_fraction(z, periodic=tuple(periodic)))
        finally:
            if threads > 1:
                torch.set_num_threads(threads)
    return {"low_fraction": round(1.0 - high, 4), "high_fraction": round(high, 4)}


def _round(x: float, nd: int = 3) -> float:
    x = float(x)
    if not math.isfinite(x):
        return 0.0
    return float(f"{x:.{nd}g}") if x != 0 else 0.0


def _channel_order(channels: Sequence[str]) -> list[int]:
    pref = ["z500", "t850", "t2m", "msl", "u10", "v10", "tcc", "tp"]
    ranked = sorted(range(len(channels)), key=lambda i: (pref.index(channels[i]) if channels[i] in pref else 99, i))
    return ranked


def _point(window: NarrationInput, iy: int, ix: int) -> dict:
    lat, lon = float(window.ys[iy]), float(window.xs[ix])
    return {"lat": round(lat, 4), "lon": round(lon, 4), "region": region_name(lat, lon)}


def weather_channel_facts(window: NarrationInput, c: int) -> dict:
    name, unit = window.channels[c], window.units[c]
    frames = np.nan_to_num(window.frames[:, c].astype(np.float64))
    first, last = frames[0], frames[-1]
    h, w = last.shape
    weights = area_weights(window.ys, w)
    out: dict[str, Any] = {"channel": name, "long_name": CHANNEL_NAMES.get(name, name), "units": unit}

    imax = np.unravel_index(int(np.argmax(last)), last.shape)
    imin = np.unravel_index(int(np.argmin(last)), last.shape)
    out["max"] = {"value": _round(last[imax], 5), **_point(window, *imax)}
    out["min"] = {"value": _round(last[imin], 5), **_point(window, *imin)}
    if name.startswith("z") or name in ("msl", "sp"):
        # troughs and ridges: extremes of the departure from the zonal mean, in mid-latitudes
        eddy = last - last.mean(axis=1, keepdims=True)
        mid = (np.abs(window.ys) >= 20) & (np.abs(window.ys) <= 75)
        if mid.any():
            masked = np.where(mid[:, None], eddy, np.nan)
            ir = np.unravel_index(int(np.nanargmax(masked)), masked.shape)
            it = np.unravel_index(int(np.nanargmin(masked)), masked.shape)
            out["ridge"] = {"value": _round(eddy[ir]), **_point(window, *ir)}
            out["trough"] = {"value": _round(eddy[it]), **_point(window, *it)}
    out["mean"] = _round((last * weights).mean(), 5)
    out["trend"] = _round(((last - first) * weights).mean())

    if window.climatology is not None:
        anom = last - np.nan_to_num(window.climatology[c].astype(np.float64))
        ip = np.unravel_index(int(np.argmax(anom)), anom.shape)
        ineg = np.unravel_index(int(np.argmin(anom)), anom.shape)
        out["anomaly"] = {"mean": _round((anom * weights).mean()),
                          "std": _round(anom.std()),
                          "max": {"value": _round(anom[ip]), **_point(window, *ip)},
                          "min": {"value": _round(anom[ineg]), **_point(window, *ineg)}}

    dy_km, dx_km = _grid_steps_km(window)
    grad = gradient_magnitude(last, dy_km, dx_km)
    ig = np.unravel_index(int(np.argmax(grad)), grad.shape)
    out["front"] = {"gradient_per_1000km": _round(grad[ig]), "typical_per_1000km": _round(np.median(grad)),
                    **_point(window, *ig)}

    if frames.shape[0] > 1:
        # remove the zonal mean so that the fixed pole-to-equator structure does not dominate
        a = first - first.mean(axis=1, keepdims=True)
        b = last - last.mean(axis=1, keepdims=True)
        dy, dx, peak = phase_correlation_shift(a, b, periodic=(False, True))
        src = np.abs(b)
        iy_feat = int(np.unravel_index(int(np.argmax(src)), src.shape)[0])
        north_km = dy * dy_km
        east_km = dx * float(dx_km[iy_feat])
        hours = max(float((parse_time(window.input_times[-1]) - parse_time(window.input_times[0])).total_seconds()) / 3600.0,
                    1e-9)
        dist = math.hypot(north_km, east_km)
        # coherent motion only: a clear correlation peak and a speed weather systems can have
        coherent = peak > 0.1 and dist / hours <= MAX_SYSTEM_SPEED_KMH
        moving = coherent and dist >= 0.5 * min(dy_km, float(dx_km[iy_feat]))
        direction = compass(north_km, east_km) if moving else ("stationary" if coherent else "incoherent")
        out["motion"] = {"dy_pixels": round(dy, 2), "dx_pixels": round(dx, 2),
                         "north_km": round(north_km, 1), "east_km": round(east_km, 1),
                         "speed_kmh": round(dist / hours, 1) if moving else 0.0,
                         "direction": direction,
                         "confidence": round(peak, 3), "hours": round(hours, 2)}

    out["bands"] = band_energy(last, periodic=(False, True))
    return out


def weather_facts(window: NarrationInput, max_channels: int = 3) -> dict:
    order = _channel_order(window.channels)[:max_channels]
    facts: dict[str, Any] = {"kind": "weather", "calendar": calendar_facts(window),
                             "channels": [weather_channel_facts(window, c) for c in order],
                             "events": event_facts(window)}
    if window.targets is not None:
        facts["target"] = _weather_target_facts(window, order)
    return facts


def _weather_target_facts(window: NarrationInput, order: Sequence[int]) -> list[dict]:
    out = []
    weights = area_weights(window.ys, window.frames.shape[-1])
    for c in order:
        last_in = np.nan_to_num(window.frames[-1, c].astype(np.float64))
        end = np.nan_to_num(window.targets[-1, c].astype(np.float64))
        change = end - last_in
        ip = np.unravel_index(int(np.argmax(np.abs(change))), change.shape)
        out.append({"channel": window.channels[c], "units": window.units[c],
                    "mean_change": _round((change * weights).mean()),
                    "largest_change": {"value": _round(change[ip]), **_point(window, *ip)}})
    return out


# --------------------------------------------------------------------------- events and crowd flow
def event_facts(window: NarrationInput) -> list[dict]:
    """Events of ``context["events"]`` known at forecast time that touch the window.

    Scheduled events (:func:`core.narratives.is_scheduled`) count when they overlap the input
    or target period; other events only once they have started by the last input time.  In privileged
    scope every overlapping event counts.
    """
    events = (window.context or {}).get("events") or []
    if not events or not window.input_times:
        return []
    t0 = parse_time(window.input_times[0])
    t_now = parse_time(window.input_times[-1])
    t_end = parse_time(window.target_times[-1]) if window.target_times else t_now
    out = []
    for ev in events:
        try:
            start = parse_time(ev["start"])
            end = parse_time(ev.get("end") or ev["start"])
        except (KeyError, ValueError, TypeError):
            continue
        kind = str(ev.get("kind", "event")).lower()
        scheduled = is_scheduled(ev)
        if window.targets is not None or scheduled:
            visible = start <= t_end and end >= t0
        else:
            visible = start <= t_now and end >= t0
        if not visible:
            continue
        item = {"kind": kind, "description": str(ev.get("description", "")).strip(),
                "place": str(ev.get("place", "")).strip(), "start": ev["start"], "end": ev.get("end", ev["start"]),
                "status": "ongoing" if start <= t_now else "upcoming",
                "starts_in_hours": round(max(0.0, (start - t_now).total_seconds() / 3600.0), 1)}
        if "size" in ev:
            item["size"] = ev["size"]
        if window.grid == "city" and "y" in ev and "x" in ev:
            ys, xs = window.ys, window.xs
            iy = int(np.argmin(np.abs(ys - float(ev["y"]))))
            ix = int(np.argmin(np.abs(xs - float(ev["x"]))))
            item["district"] = city_district(iy, ix, ys.size, xs.size)
        elif window.grid == "latlon" and "lat" in ev and "lon" in ev:
            item["region"] = region_name(float(ev["lat"]), float(ev["lon"]))
        out.append(item)
    out.sort(key=lambda e: (e["status"] != "ongoing", e["starts_in_hours"], e["kind"]))
    return out[:3]


def _smooth3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1, mode="edge")
    return sum(p[i:i + a.shape[0], j:j + a.shape[1]] for i in range(3) for j in range(3)) / 9.0


def _flow_change(window: NarrationInput, c: int, before: np.ndarray, after: np.ndarray) -> dict:
    h, w = before.shape
    diff = _smooth3(after - before)
    level = max(float(np.abs(before).mean()), 1e-9)
    iu = np.unravel_index(int(np.argmax(diff)), diff.shape)
    idn = np.unravel_index(int(np.argmin(diff)), diff.shape)
    total_before, total_after = float(before.sum()), float(after.sum())
    change_pct = 100.0 * (total_after - total_before) / max(abs(total_before), 1e-9)
    out = {"channel": window.channels[c], "units": window.units[c],
           "level": _round(after.mean()), "total_change_pct": round(change_pct, 1)}
    if diff[iu] > 0.05 * level:
        out["rising"] = {"district": city_district(int(iu[0]), int(iu[1]), h, w), "y": float(window.ys[iu[0]]),
                         "x": float(window.xs[iu[1]]), "change": _round(diff[iu])}
    if diff[idn] < -0.05 * level:
        out["falling"] = {"district": city_district(int(idn[0]), int(idn[1]), h, w), "y": float(window.ys[idn[0]]),
                          "x": float(window.xs[idn[1]]), "change": _round(diff[idn])}
    return out


def _context_at(window: NarrationInput, index: int) -> dict:
    """Holiday flag and meteorology at position ``index`` of ``input_times + target_times``."""
    ctx = window.context or {}
    out: dict[str, Any] = {}
    hol = ctx.get("holiday")
    if isinstance(hol, list) and -len(hol) <= index < len(hol):
        out["holiday"] = bool(hol[index])
    met = ctx.get("meteorology") or {}
    for k, series in met.items():
        if isinstance(series, list) and -len(series) <= index < len(series) and series[index] is not None:
            v = series[index]
            if k == "weather":
                try:
                    i = int(v)
                    out["weather"] = WEATHER_CATEGORIES[i] if 0 <= i < len(WEATHER_CATEGORIES) else f"category {i}"
                except (TypeError, ValueError):
                    out["weather"] = str(v)
            else:
                out[k] = _round(v)
    return out


def crowd_facts(window: NarrationInput) -> dict:
    frames = np.nan_to_num(window.frames.astype(np.float64))
    t = frames.shape[0]
    k = max(1, min(2, t // 2))
    before, after = frames[:k].mean(axis=0), frames[-k:].mean(axis=0)
    n_in = len(window.input_times)
    facts: dict[str, Any] = {
        "kind": "crowd", "calendar": calendar_facts(window),
        "now": _context_at(window, n_in - 1),
        "ahead": _context_at(window, n_in) if window.target_times else {},
        "flows": [_flow_change(window, c, before[c], after[c]) for c in range(frames.shape[1])],
        "events": event_facts(window),
    }
    hol = (window.context or {}).get("holiday")
    if isinstance(hol, list) and len(hol) >= n_in:
        facts["calendar"]["holiday_ahead"] = any(bool(x) for x in hol[n_in:])
    if window.targets is not None:
        tgt = np.nan_to_num(window.targets.astype(np.float64))
        facts["target"] = [_flow_change(window, c, frames[-1, c], tgt[:, c].mean(axis=0))
                           for c in range(frames.shape[1])]
    return facts


def compute_facts(window: NarrationInput) -> dict:
    """Diagnostic facts of ``window`` (weather for lat-lon grids, crowd flow for city grids)."""
    return weather_facts(window) if window.grid == "latlon" else crowd_facts(window)
