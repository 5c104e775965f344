"""Figures that show an embedded dataset, read straight from its files (xarray / h5py / numpy).

``make_figures(root, out, kind=None)`` writes PNGs into ``out`` and returns their paths:

weather (WeatherBench v1 layout)
    ``weather_maps.png``      z500 / t850 / t2m at a few times, Natural Earth coastlines
    ``weather_hovmoller.png`` z500 anomaly at 50°N and 50°S against time (travelling waves)
    ``weather_spectrum.png``  zonal power spectrum of z500, t850, t2m (log–log, fitted slope)
    ``weather_cycles.png``    t2m diurnal cycle in local solar time (land / sea), area means over
                              time (seasonal cycle, trend) with the episodes of ``events.json`` shaded
taxibj / taxibj+ (TaxiBJ HDF5 / TaxiBJ+ files)
    ``{kind}_maps.png``       in- and outflow at a few times of day (weekday, weekend)
    ``{kind}_cycles.png``     city-wide flow per half-hour slot (weekday / weekend / holiday) and the
                              daily totals over time with events marked
    ``{kind}_spectrum.png``   radially averaged power spectrum of the inflow

Only matplotlib (Agg) is used; coastlines are drawn from the shipped shapefiles with pyshp, so nothing
is fetched.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np

from core.errors import DataError

WEATHER_VARS = (  # (channel, folder, file stem, variable, label, scale, unit)
    ("z500", "geopotential_500", "geopotential_500hPa", "z", "z500", 1.0 / 9.80665, "m (z/g)"),
    ("t850", "temperature_850", "temperature_850hPa", "t", "t850", 1.0, "K"),
    ("t2m", "2m_temperature", "2m_temperature", "t2m", "t2m", 1.0, "K"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from core.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def detect_kind(root: Path) -> str:
    """The dataset kind of ``root`` from its ``s2kd_dataset.json``, or from the files present."""
    meta = Path(root) / "s2kd_dataset.json"
    if meta.is_file():
        try:
            kind = json.loads(meta.read_text()).get("kind")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read ({exc})", path=meta) from None
        if kind:
            return str(kind)
    if glob.glob(str(Path(root) / "geopotential_500" / "*.nc")) or glob.glob(str(Path(root) / "*" / "*_5.625deg.nc")):
        return "weather"
    if glob.glob(str(Path(root) / "BJ*_M32x32_T30_InOut.h5")):
        return "taxibj"
    if glob.glob(str(Path(root) / "*_data_reshaped.npy")) or glob.glob(str(Path(root) / "*128*.h5")):
        return "taxibj+"
    raise DataError("cannot tell the dataset kind (no s2kd_dataset.json and no known files); pass --kind",
                    path=root)


def make_figures(root: str | Path, out: str | Path, kind: str | None = None) -> list[Path]:
    """Write the figures of the dataset in ``root`` into ``out``; returns the PNG paths."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError("dataset folder not found", path=root)
    kind = kind or detect_kind(root)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "weather":
        return weather_figures(root, out)
    if kind in ("taxibj", "taxibj+"):
        return city_figures(root, out, kind)
    raise DataError(f"unknown dataset kind {kind!r}; choose weather, taxibj or taxibj+", path=root)


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------
def _events(root: Path) -> list[dict]:
    path = root / "events.json"
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text()).get("events", []))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ({exc})", path=path) from None


def coastline_segments(lon0: float = 0.0) -> list[np.ndarray]:
    """Natural Earth 110m coastlines as ``(n, 2)`` lon/lat polylines with lon in ``[lon0, lon0+360)``,
    split where they cross the seam."""
    import shapefile

    from core.synth.landmask import NATURAL_EARTH_DIR

    path = NATURAL_EARTH_DIR / "shapefiles" / "natural_earth" / "physical" / "ne_110m_coastline.shp"
    segs = []
    try:
        shapes = shapefile.Reader(str(path)).shapes()
    except Exception as exc:
        raise DataError(f"cannot read coastlines ({exc})", path=path) from None
    for shape in shapes:
        parts = list(shape.parts) + [len(shape.points)]
        pts = np.asarray(shape.points, dtype=float)
        for a, b in zip(parts[:-1], parts[1:]):
            p = pts[a:b].copy()
            p[:, 0] = (p[:, 0] - lon0) % 360.0 + lon0
            jumps = np.flatnonzero(np.abs(np.diff(p[:, 0])) > 180.0) + 1
            segs.extend(s for s in np.split(p, jumps) if len(s) > 1)
    return segs


def _draw_coast(ax, segs, color="k", lw=0.6) -> None:
    for s in segs:
        ax.plot(s[:, 0], s[:, 1], color=color, lw=lw)


def _open_weather(root: Path):
    """``{channel: DataArray (time, lat, lon)}`` from the WeatherBench v1 files in ``root``."""
    import xarray as xr

    fields = {}
    for ch, folder, stem, var, *_ in WEATHER_VARS:
        files = sorted(glob.glob(str(root / folder / f"{stem}_*_5.625deg.nc")))
        if not files:
            continue
        try:
            parts = [xr.open_dataset(f, engine="netcdf4")[var].load() for f in files]
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read {var!r} ({exc})", path=root / folder) from None
        fields[ch] = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
    if not fields:
        raise DataError("no WeatherBench files (e.g. geopotential_500/geopotential_500hPa_YYYY_5.625deg.nc)",
                        path=root)
    return fields


def zonal_spectrum(field: np.ndarray, lat: np.ndarray, band: tuple[float, float] = (30.0, 70.0)) -> np.ndarray:
    """Zonal power spectrum ``|F_k|²`` of ``(..., lat, lon)`` fields, averaged over the latitudes in
    ``band`` (both hemispheres) and the leading dims; returns ``(nlon // 2 + 1,)``."""
    sel = (np.abs(lat) >= band[0]) & (np.abs(lat) <= band[1])
    x = np.asarray(field, dtype=np.float64)[..., sel, :]
    x = x - x.mean(axis=-1, keepdims=True)
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / x.shape[-1] ** 2
    spec[..., 1:-1] *= 2.0
    return spec.reshape(-1, spec.shape[-1]).mean(axis=0)


def spectral_slope(spec: np.ndarray, kmin: int, kmax: int) -> float:
    """Least-squares slope of ``log spec`` against ``log k`` for ``kmin ≤ k ≤ kmax``."""
    k = np.arange(kmin, kmax + 1)
    return float(np.polyfit(np.log(k), np.log(spec[kmin:kmax + 1]), 1)[0])


def _pick_times(times: np.ndarray, n: int) -> list[int]:
    if len(times) <= n:
        return list(range(len(times)))
    return [int(round(i)) for i in np.linspace(0, len(times) - 1, n)]


# --------------------------------------------------------------------------------------------------
# weather
# --------------------------------------------------------------------------------------------------
def weather_figures(root: Path, out: Path) -> list[Path]:
    plt = _plt()
    fields = _open_weather(root)
    events = _events(root)
    first = next(iter(fields.values()))
    lat = first["lat"].values
    lon = first["lon"].values
    times = first["time"].values
    coast = coastline_segments(-lon[1] / 2.0 if len(lon) > 1 else 0.0)
    paths = []

    # maps: rows = variables, cols = times
    idx = _pick_times(times, 4)
    chans = list(fields)
    fig, axes = plt.subplots(len(chans), len(idx), figsize=(4.2 * len(idx), 2.4 * len(chans)), squeeze=False)
    dlon = lon[1] - lon[0]
    extent = [lon[0] - dlon / 2, lon[-1] + dlon / 2, lat[0] - (lat[1] - lat[0]) / 2, lat[-1] + (lat[1] - lat[0]) / 2]
    for r, ch in enumerate(chans):
        spec = next(v for v in WEATHER_VARS if v[0] == ch)
        data = fields[ch].values * spec[5]
        vmin, vmax = np.percentile(data[idx], [1, 99])
        cmap = "viridis" if ch == "z500" else "RdYlBu_r"
        for c, i in enumerate(idx):
            ax = axes[r, c]
            im = ax.imshow(data[i], origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                           interpolation="bilinear")
            if ch == "z500":
                levels = np.arange(np.floor(vmin / 60) * 60, vmax + 60, 60)
                ax.contour(lon, lat, data[i], levels=levels, colors="k", linewidths=0.4, alpha=0.6)
            _draw_coast(ax, coast, color="k" if ch != "z500" else "w", lw=0.5)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(-90, 90)
            ax.set_xticks([0, 90, 180, 270])
            ax.set_yticks([-60, -30, 0, 30, 60])
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(str(times[i])[:16].replace("T", " "), fontsize=9)
            if c == len(idx) - 1:
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                cb.set_label(f"{ch} [{spec[6]}]", fontsize=8)
                cb.ax.tick_params(labelsize=7)
    fig.suptitle(f"{root.name}: z500 (contours every 60 m), t850, t2m", fontsize=10)
    paths.append(_save(fig, out / "weather_maps.png"))

    # Hovmöller of z500 anomaly (from the zonal mean) at ~50°N and ~50°S
    if "z500" in fields:
        z = fields["z500"].values / 9.80665
        n = min(len(times), 24 * 40 if _cadence_hours(times) == 1 else 4 * 40)
        fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharey=True)
        for ax, target in zip(axes, (50.0, -50.0)):
            j = int(np.argmin(np.abs(lat - target)))
            a = z[:n, j, :] - z[:n, j, :].mean(axis=-1, keepdims=True)
            v = np.percentile(np.abs(a), 99)
            ax.pcolormesh(lon, np.arange(n) * _cadence_hours(times) / 24.0, a, cmap="RdBu_r", vmin=-v, vmax=v,
                          shading="auto")
            ax.set_title(f"z500 anomaly at {lat[j]:.1f}° [m]", fontsize=9)
            ax.set_xlabel("longitude")
        axes[0].set_ylabel(f"days after {str(times[0])[:10]}")
        paths.append(_save(fig, out / "weather_hovmoller.png"))

    # spectrum
    fig, ax = plt.subplots(figsize=(6, 4.5))
    k = np.arange(len(lon) // 2 + 1)
    for ch in chans:
        data = fields[ch].values[:: max(1, len(times) // 200)]
        sp = zonal_spectrum(data, lat)
        slope = spectral_slope(sp, 6, 20)
        ax.loglog(k[1:], sp[1:] / sp[1], label=f"{ch} (slope k6–20: {slope:.1f})")
    kk = np.arange(6, 21)
    ax.loglog(kk, 0.5 * (kk / 6.0) ** -3.0, "k--", lw=0.8, label="k^-3")
    ax.set_xlabel("zonal wavenumber")
    ax.set_ylabel("power (normalised at k=1), 30–70° N/S")
    ax.legend(fontsize=8)
    ax.set_title(f"{root.name}: zonal power spectra", fontsize=10)
    paths.append(_save(fig, out / "weather_spectrum.png"))

    # cycles
    if "t2m" in fields:
        paths.append(_weather_cycles(root, fields, events, out))
    return paths


def _cadence_hours(times: np.ndarray) -> int:
    if len(times) < 2:
        return 1
    return int(np.median(np.diff(times)) / np.timedelta64(1, "h"))


def _weather_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    from core.synth.landmask import land_fraction

    return land_fraction(lat, lon)


def _weather_cycles(root: Path, fields, events, out: Path) -> Path:
    plt = _plt()
    t2m = fields["t2m"]
    lat, lon, times = t2m["lat"].values, t2m["lon"].values, t2m["time"].values
    land = _weather_land(lat, lon)
    data = t2m.values
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    # diurnal composite in local solar time over 60S-60N, anomaly from each cell's daily mean
    ax = axes[0]
    hours = ((times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")).astype(float)
    band = np.abs(lat) <= 60
    daymean = _daily_mean(data, times)
    anom = data - daymean
    lst = (hours[:, None] + lon[None, :] / 15.0) % 24.0  # (time, lon)
    bins = np.arange(25)
    for name, mask, color in (("land (>70%)", land > 0.7, "tab:brown"), ("sea (<5% land)", land < 0.05, "tab:blue")):
        m = mask & band[:, None]
        vals, cnt = np.zeros(24), np.zeros(24)
        for j in range(len(lat)):
            cols = np.flatnonzero(m[j])
            if cols.size == 0:
                continue
            h = np.floor(lst[:, cols]).astype(int).ravel()
            vals += np.bincount(h, weights=anom[:, j, cols].ravel(), minlength=24)[:24]
            cnt += np.bincount(h, minlength=24)[:24]
        ok = cnt > 0
        ax.plot(bins[:-1][ok] + 0.5, vals[ok] / cnt[ok], "o-", color=color, label=name, ms=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("local solar time [h]")
    ax.set_ylabel("t2m minus daily mean [K]")
    ax.set_title("diurnal cycle of t2m, 60°S–60°N", fontsize=9)
    ax.legend(fontsize=8)
    # area means over time
    ax = axes[1]
    w = np.cos(np.deg2rad(lat))
    nh_land = (land > 0.5) & (lat[:, None] > 30) & (lat[:, None] < 70)
    sh_land = (land > 0.5) & (lat[:, None] < -10) & (lat[:, None] > -45)
    glob_mean = (data * w[None, :, None]).sum(axis=(1, 2)) / (w.sum() * len(lon))
    gaps = np.flatnonzero(np.diff(times) > 3 * np.median(np.diff(times)))

    def broken(series):  # NaN at the gaps between splits so that lines do not bridge them
        return np.insert(times, gaps + 1, times[gaps] + np.timedelta64(1, "h")), np.insert(series, gaps + 1, np.nan)

    for name, m, color in (("NH land 30–70°N", nh_land, "tab:red"), ("SH land 10–45°S", sh_land, "tab:orange")):
        ww = (w[:, None] * m)
        series = (data * ww[None]).sum(axis=(1, 2)) / ww.sum()
        ax.plot(*broken(series), lw=0.6, color=color, label=name)
    ax.plot(*broken(glob_mean), lw=0.8, color="k", label="global mean")
    for g in gaps:
        ax.axvline(times[g], color="grey", lw=0.5, ls=":")
    colors = {"blocking": "tab:purple", "heat_wave": "tab:red", "cold_spell": "tab:cyan", "regime_shift": "tab:green"}
    shown = set()
    for e in events:
        c = colors.get(e.get("kind"), "grey")
        lbl = e["kind"] if e["kind"] not in shown else None
        shown.add(e["kind"])
        ax.axvspan(np.datetime64(e["start"]), np.datetime64(e["end"]), color=c, alpha=0.12, label=lbl)
    ax.set_ylabel("t2m [K]")
    ax.set_title("area-mean t2m over time (shaded: episodes of events.json; dotted: gaps between splits)",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    return _save(fig, out / "weather_cycles.png")


def _daily_mean(data: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Mean of each UTC calendar day, broadcast back to every time of that day."""
    days = times.astype("datetime64[D]")
    _, inv = np.unique(days, return_inverse=True)
    sums = np.zeros((inv.max() + 1,) + data.shape[1:])
    np.add.at(sums, inv, data)
    cnt = np.bincount(inv).astype(float)
    return (sums / cnt[:, None, None])[inv]


# --------------------------------------------------------------------------------------------------
# city
# --------------------------------------------------------------------------------------------------
def _decode_dates(raw) -> np.ndarray:
    """TaxiBJ ``date`` entries ``b'YYYYMMDDNN'`` (NN = 01…48 half hours) → datetime64[m] slot starts."""
    out = []
    for d in raw:
        s = d.decode() if isinstance(d, (bytes, np.bytes_)) else str(d)
        day = np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}", "m")
        out.append(day + np.timedelta64(30 * (int(s[8:10]) - 1), "m"))
    return np.array(out, dtype="datetime64[m]")


def _open_city(root: Path, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(flows (N, 2, H, W), times (N,) or None)`` of a TaxiBJ or TaxiBJ+ folder."""
    import h5py

    if kind == "taxibj":
        files = sorted(glob.glob(str(root / "BJ*_M32x32_T30_InOut.h5")))
    else:
        files = sorted(f for f in glob.glob(str(root / "*.h5")) if "Meteorology" not in f)
    flows, times = [], []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                if "data" not in h:
                    continue
                flows.append(np.asarray(h["data"][...], dtype=np.float32))
                times.append(_decode_dates(h["date"][...]) if "date" in h else None)
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read ({exc})", path=f) from None
    if flows:
        t = None if any(x is None for x in times) else np.concatenate(times)
        return np.concatenate(flows), t
    npys = sorted(glob.glob(str(root / "*_input_data_reshaped.npy")))
    if npys:  # TaxiBJ+ windows (N, 12, 2, H, W): take the inputs of non-overlapping windows
        arr = [np.load(f, mmap_mode="r", allow_pickle=False) for f in npys]
        frames = np.concatenate([a.reshape(-1, *a.shape[2:]) for a in arr])
        return np.asarray(frames, dtype=np.float32), None
    raise DataError(f"no {kind} flow files found", path=root)


def radial_spectrum(frames: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of ``(N, H, W)`` frames (mean removed); index = integer radius."""
    x = frames - frames.mean(axis=(-2, -1), keepdims=True)
    p = np.abs(np.fft.fft2(x)) ** 2
    p = p.mean(axis=0)
    h, w = p.shape
    ky = np.fft.fftfreq(h) * h
    kx = np.fft.fftfreq(w) * w
    r = np.rint(np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)).astype(int)
    return np.bincount(r.ravel(), weights=p.ravel()) / np.maximum(np.bincount(r.ravel()), 1)


def city_figures(root: Path, out: Path, kind: str) -> list[Path]:
    plt = _plt()
    flows, times = _open_city(root, kind)
    events = _events(root)
    paths = []
    n = len(flows)
    # maps at a few slots
    if times is not None:
        wd = (times.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
        slot = ((times - times.astype("datetime64[D]")) / np.timedelta64(30, "m")).astype(int)
        holidays = _holidays(root)
        is_hol = np.isin(times.astype("datetime64[D]"), holidays) if holidays.size else np.zeros(n, bool)
        work = (wd < 5) & ~is_hol
        want = [("weekday 03:00", work & (slot == 6)), ("weekday 08:00", work & (slot == 16)),
                ("weekday 18:00", work & (slot == 36)), ("Saturday 15:00", (wd == 5) & ~is_hol & (slot == 30))]
        picks = [(name, int(np.flatnonzero(m)[min(3, m.sum() - 1)])) for name, m in want if m.any()]
    else:
        picks = [(f"frame {i}", i) for i in _pick_times(np.arange(n), 4)]
    fig, axes = plt.subplots(2, len(picks), figsize=(3.3 * len(picks), 6.2), squeeze=False)
    vmax = float(np.percentile(flows[[i for _, i in picks]], 99.5)) or 1.0
    for c, (name, i) in enumerate(picks):
        for r, lbl in enumerate(("inflow", "outflow")):
            ax = axes[r, c]
            im = ax.imshow(flows[i, r], cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            title = f"{lbl}, {name}"
            if times is not None:
                title += f"\n{str(times[i])[:16].replace('T', ' ')}"
            ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02).set_label("trips per 30 min")
    paths.append(_save(fig, out / f"{kind.replace('+', 'plus')}_maps.png"))

    # cycles
    total = flows.sum(axis=(2, 3))  # (N, 2)
    if times is not None:
        day = times.astype("datetime64[D]")
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 2]})
        ax = axes[0]
        for name, m, color in (("weekday", (wd < 5) & ~is_hol, "tab:blue"), ("weekend", (wd >= 5) & ~is_hol, "tab:orange"),
                               ("holiday", is_hol, "tab:red")):
            if m.any():
                prof = np.bincount(slot[m], weights=total[m, 0], minlength=48) / np.maximum(np.bincount(slot[m], minlength=48), 1)
                ax.plot(np.arange(48) / 2.0, prof, label=f"{name} inflow", color=color)
                profo = np.bincount(slot[m], weights=total[m, 1], minlength=48) / np.maximum(np.bincount(slot[m], minlength=48), 1)
                ax.plot(np.arange(48) / 2.0, profo, "--", color=color, lw=0.8, label=f"{name} outflow")
        ax.set_xlabel("time of day [h]")
        ax.set_ylabel("city-wide flow per 30 min")
        ax.set_title("daily cycle", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1]
        ud, inv = np.unique(day, return_inverse=True)
        daily = np.bincount(inv, weights=total[:, 0])
        gaps = np.flatnonzero(np.diff(ud) > np.timedelta64(1, "D"))
        ax.plot(np.insert(ud, gaps + 1, ud[gaps] + np.timedelta64(1, "D")), np.insert(daily, gaps + 1, np.nan),
                lw=0.8, color="k", label="daily inflow")
        if holidays.size:
            hd = np.isin(ud, holidays)
            ax.plot(ud[hd], daily[hd], "o", color="tab:red", ms=3, label="holiday")
        we = ((ud.view("int64") - 4) % 7) >= 5
        ax.plot(ud[we], daily[we], ".", color="tab:orange", ms=3, label="weekend")
        for e in events:
            if e.get("kind") not in ("holiday",):
                try:
                    ax.axvline(np.datetime64(e["start"][:10]), color="tab:green", alpha=0.3, lw=0.6)
                except (KeyError, ValueError):
                    pass
        ax.set_title("daily totals (green lines: events of events.json)", fontsize=9)
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
        paths.append(_save(fig, out / f"{kind.replace('+', 'plus')}_cycles.png"))
    else:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot(total[: 48 * 14, 0], lw=0.7, label="inflow")
        ax.plot(total[: 48 * 14, 1], lw=0.7, label="outflow")
        ax.set_xlabel("frame (30 min)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"{kind.replace('+', 'plus')}_cycles.png"))

    # spectrum
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sel = flows[:: max(1, n // 300), 0]
    sp = radial_spectrum(sel)
    k = np.arange(1, len(sp))
    ax.loglog(k, sp[1:], label="inflow")
    ax.set_xlabel("radial wavenumber")
    ax.set_ylabel("power")
    ax.set_title(f"{root.name}: radially averaged power spectrum", fontsize=10)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / f"{kind.replace('+', 'plus')}_spectrum.png"))
    return paths


def _holidays(root: Path) -> np.ndarray:
    path = root / "BJ_Holiday.txt"
    if not path.is_file():
        return np.array([], dtype="datetime64[D]")
    days = []
    for line in path.read_text().split():
        line = line.strip()
        if len(line) == 8 and line.isdigit():
            days.append(np.datetime64(f"{line[:4]}-{line[4:6]}-{line[6:8]}"))
    return np.array(days, dtype="datetime64[D]")
