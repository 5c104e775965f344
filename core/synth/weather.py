"""Synthetic atmosphere: a two-layer QG model written out in the WeatherBench (v1) layout.

``generate(out, preset, seed)`` runs :class:`core.synth.qg.TwoLayerQG` (a forced–dissipative
baroclinic model on a pole-to-pole channel periodic in longitude, spun up before any output) under

- a **seasonal cycle** of the forcing: the background jets of both hemispheres move and change
  strength with the season (NH jet at 35°N and strong in January, at 47°N and weak in July);
- **land–sea contrast** from the Natural Earth land mask (:mod:`core.synth.landmask`): the land acts
  as orography (topographic PV of the lower layer) and as a seasonal heat source/sink (continents warm
  in summer, cold in winter) through the Newtonian cooling target, both forcing stationary waves;
- **non-stationary episodes**, drawn from the seed and written to ``events.json``: blocking highs (a
  barotropic anticyclonic PV source), heat waves and cold spells (a thermal forcing plus a ridge or
  trough, amplified at the surface over land), regime shifts (the jet moves and strengthens or weakens
  for weeks), and a slow warming trend across years (amplified over land and toward the poles).

Output variables, derived from the flow on the WeatherBench 5.625° grid (32 × 64):

- ``z`` (geopotential at 500 hPa, m² s⁻²): zonal mean from geostrophic balance with the total zonal
  wind (``∂Φ/∂y = −f u``, integrated from the equator), eddies ``Φ' = f ψ'`` of the mid-level flow;
- ``t`` (temperature at 850 hPa, K): the same from the thermal wind of the layer thickness,
  ``T ∝ f (ψ1 − ψ2)``, so temperature is advected consistently with the flow;
- ``t2m`` (2 m temperature, K): from ``t`` plus a lapse-rate offset, a continental seasonal cycle over
  land, a sea-surface climatology over the ocean, a diurnal cycle (strong over land, weak over sea, zero
  in polar night) in local solar time, and the surface part of heat waves / cold spells.

Files: ``geopotential_500/geopotential_500hPa_{year}_5.625deg.nc``,
``temperature_850/temperature_850hPa_{year}_5.625deg.nc``, ``2m_temperature/2m_temperature_{year}_5.625deg.nc``
(dims ``time, lat, lon``, scalar ``level`` coordinate for the pressure-level files, float32, ERA5 attrs),
plus ``s2kd_dataset.json`` and ``events.json``.  Same seed → byte-identical files on one machine
(float64 dynamics on one CPU thread, pinned attributes, no wall-clock timestamps).

Presets (:data:`PRESETS`; measured on the shared 2-core development machine, CPU seconds of the
generating process, wall time higher under load):

=======  ==========================================  ========  =======  ===========  =======
preset   splits (inclusive)                           cadence   frames   CPU time     disk
=======  ==========================================  ========  =======  ===========  =======
tiny     train 2015-01-01…01-21, val 2015-07-01…07-07,  6 h       144      ~5 s         3.6 MB
         test 2016-01-01…01-08; internal grid 32×64
demo     train 2016-01-01…03-31, val 2017-01-01…01-31,  1 h       4344     ~42 s        107 MB
         test 2018-01-01…02-28; internal grid 64×128
bench    train 2015, val 2016, test 2017 (full years)    1 h       26304    ~183 s       647 MB
=======  ==========================================  ========  =======  ===========  =======

Spin-up: every run starts from a shipped equilibrated restart state (``assets/synth``, made by
:func:`make_restart`) perturbed by the seed, and runs 30 days before the first output; a split that
starts after a gap longer than ``respin_days`` is preceded by ``respin_days`` of running under its own
season's forcing.  The non-stationary subset follows :data:`core.data.nonstationary.RULE` on the
episodes of ``events.json`` (every split holds at least one blocking, one regime shift and one heat
wave or cold spell); the warming trend (0.3 K/yr) is described in ``s2kd_dataset.json``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import UserError
from core.io import atomic_path, atomic_write_json

G = 9.80665  # m s^-2
R_DRY = 287.05  # J kg^-1 K^-1
OMEGA = 7.292e-5
THICKNESS = R_DRY * math.log(3.0)  # Φ(250 hPa) − Φ(750 hPa) per K of layer temperature, m² s⁻² K⁻¹
OUT_NLAT, OUT_NLON = 32, 64
OUT_LAT = -87.1875 + 5.625 * np.arange(OUT_NLAT)
OUT_LON = 5.625 * np.arange(OUT_NLON)
EPOCH = np.datetime64("2000-01-01T00:00:00", "s")
KM_PER_DEG = 111.195  #: km per degree of latitude (event radii are stored in degrees)

#: The three WeatherBench v1 files per year: (folder, file stem, variable, level or None, attrs).
WB_VARIABLES: tuple[tuple[str, str, str, int | None, dict], ...] = (
    ("geopotential_500", "geopotential_500hPa", "z", 500,
     {"units": "m**2 s**-2", "long_name": "Geopotential", "standard_name": "geopotential"}),
    ("temperature_850", "temperature_850hPa", "t", 850,
     {"units": "K", "long_name": "Temperature", "standard_name": "air_temperature"}),
    ("2m_temperature", "2m_temperature", "t2m", None,
     {"units": "K", "long_name": "2 metre temperature"}),
)


def wb_path(out: Path, folder: str, stem: str, year: int) -> Path:
    """The WeatherBench v1 file of one variable and year, e.g. ``geopotential_500/geopotential_500hPa_2016_5.625deg.nc``."""
    return Path(out) / folder / f"{stem}_{year}_5.625deg.nc"


@dataclass(frozen=True)
class WeatherPreset:
    """Size of a generated dataset.  Splits are inclusive date ranges; the model runs through each
    split (and through gaps shorter than ``respin_days``), re-spinning for ``respin_days`` before a
    split that starts after a longer gap."""

    name: str
    nx: int  #: internal grid points in longitude (a multiple of 64)
    ny: int  #: internal grid points pole to pole (nx / 2)
    dt: float  #: model time step, s
    cadence_hours: int  #: output every this many hours
    splits: dict = field(default_factory=dict)  #: {"train": (start, end), ...} ISO dates, inclusive
    spinup_days: int = 30  #: from the shipped restart state (see :func:`restart_path`)
    respin_days: int = 20
    ld: float = 7.0e5  #: deformation radius, m

    @property
    def cadence(self) -> str:
        return f"PT{self.cadence_hours}H"


PRESETS: dict[str, WeatherPreset] = {
    # seconds: 3 short periods in different seasons and years, 6-hourly, coarse internal grid
    "tiny": WeatherPreset("tiny", nx=64, ny=32, dt=1800.0, cadence_hours=6,
                          splits={"train": ("2015-01-01", "2015-01-21"), "val": ("2015-07-01", "2015-07-07"),
                                  "test": ("2016-01-01", "2016-01-08")},
                          spinup_days=30, respin_days=12, ld=8.0e5),
    # the app's default: hourly, one winter period per year, train 2016 / val 2017 / test 2018
    "demo": WeatherPreset("demo", nx=128, ny=64, dt=900.0, cadence_hours=1,
                          splits={"train": ("2016-01-01", "2016-03-31"), "val": ("2017-01-01", "2017-01-31"),
                                  "test": ("2018-01-01", "2018-02-28")},
                          spinup_days=30, respin_days=20),
    # the benchmark: hourly, three full years, train 2015 / val 2016 / test 2017
    "bench": WeatherPreset("bench", nx=128, ny=64, dt=900.0, cadence_hours=1,
                           splits={"train": ("2015-01-01", "2015-12-31"), "val": ("2016-01-01", "2016-12-31"),
                                   "test": ("2017-01-01", "2017-12-31")},
                           spinup_days=30, respin_days=20),
}


WARMING_K_PER_YEAR = 0.3


# ----------------------------------------------------------------------------- time helpers
def _days(t: np.datetime64) -> float:
    """Days since 2000-01-01 (float)."""
    return float((np.datetime64(t, "s") - EPOCH) / np.timedelta64(1, "s")) / 86400.0


def _iso(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s"))


def _season(d: float, lag_days: float = 15.0) -> float:
    """+1 in mid-January (plus ``lag``), −1 in mid-July."""
    return math.cos(2 * math.pi * (d - lag_days) / 365.2425)


def _declination(d: float) -> float:
    """Solar declination in degrees."""
    return 23.44 * math.sin(2 * math.pi * (d - 79.0) / 365.2425)


def _smooth_window(d: float, start: float, end: float, ramp: float = 1.5) -> float:
    """0 outside [start, end], 1 inside, with sin² ramps of ``ramp`` days at both ends."""
    if d <= start or d >= end:
        return 0.0
    ramp = min(ramp, 0.5 * (end - start))
    w = 1.0
    if d < start + ramp:
        w = math.sin(0.5 * math.pi * (d - start) / ramp) ** 2
    elif d > end - ramp:
        w = math.sin(0.5 * math.pi * (end - d) / ramp) ** 2
    return w


# ----------------------------------------------------------------------------- events
#: Where episodes happen: (name, lat, lon); land places for the surface episodes.
BLOCK_PLACES = (("Euro-Atlantic", 58.0, 5.0), ("Scandinavia", 63.0, 20.0), ("Ural", 60.0, 55.0),
                ("North Pacific", 55.0, 195.0), ("Alaska", 62.0, 212.0), ("Greenland", 65.0, 320.0),
                ("South Pacific", -55.0, 230.0), ("south of New Zealand", -52.0, 175.0))
HEAT_PLACES = (("Western Europe", 47.0, 5.0), ("European Russia", 54.0, 42.0), ("US Great Plains", 38.0, 260.0),
               ("North China", 38.0, 113.0), ("Central Asia", 45.0, 70.0), ("Australia", -27.0, 134.0),
               ("Argentina", -33.0, 296.0), ("Southern Africa", -25.0, 25.0))
COLD_PLACES = (("Canada and US Midwest", 48.0, 265.0), ("Central Europe", 51.0, 15.0), ("Siberia", 60.0, 100.0),
               ("East Asia", 42.0, 118.0), ("Patagonia", -45.0, 291.0), ("southern Australia", -33.0, 143.0))


def _summer(lat: float, d: float) -> bool:
    s = _season(d, 30.0)
    return (s < -0.2) if lat > 0 else (s > 0.2)


def _winter(lat: float, d: float) -> bool:
    s = _season(d, 30.0)
    return (s > 0.2) if lat > 0 else (s < -0.2)


def draw_events(segments: list[tuple[np.datetime64, np.datetime64]], rng: np.random.Generator) -> list[dict]:
    """Draw the episodes of every output segment: at least one blocking, one regime shift and one
    heat wave or cold spell in each.  (The warming trend is not an episode: it spans all the data and
    is described in ``s2kd_dataset.json``.)"""
    events: list[dict] = []
    for s0, s1 in segments:
        d0, d1 = _days(s0), _days(s1)
        span = d1 - d0
        n_block = max(1, int(round(span / 25.0)))
        n_temp = max(1, int(round(span / 30.0)))
        n_regime = max(1, int(round(span / 60.0)))

        def window(min_len: float, max_len: float) -> tuple[float, float]:
            length = float(rng.uniform(min_len, max_len))
            length = min(length, max(1.0, span - 0.5))
            start = float(rng.uniform(d0 + 0.25, max(d0 + 0.25, d1 - length)))
            return start, min(start + length, d1)

        for _ in range(n_block):
            a, b = window(5.0, 12.0)
            name, lat, lon = BLOCK_PLACES[int(rng.integers(len(BLOCK_PLACES)))]
            height = float(rng.uniform(250.0, 380.0))
            events.append(dict(kind="blocking", start=a, end=b, place=name, lat=lat, lon=lon, radius=round(1500.0 / KM_PER_DEG, 2),
                               size=round(height, 1),
                               description=f"blocking high over {name}: a quasi-stationary ridge of about "
                                           f"+{height:.0f} m at 500 hPa that diverts the jet"))
        for _ in range(n_temp):
            a, b = window(5.0, 11.0)
            mid = 0.5 * (a + b)
            heat = [p for p in HEAT_PLACES if _summer(p[1], mid)]
            cold = [p for p in COLD_PLACES if _winter(p[1], mid)]
            if heat and (not cold or rng.random() < 0.5):
                name, lat, lon = heat[int(rng.integers(len(heat)))]
                amp = float(rng.uniform(6.0, 10.0))
                events.append(dict(kind="heat_wave", start=a, end=b, place=name, lat=lat, lon=lon, radius=round(1200.0 / KM_PER_DEG, 2),
                                   size=round(amp, 1),
                                   description=f"heat wave over {name}: 2 m temperature up to +{amp:.0f} K under "
                                               "a warm ridge"))
            else:
                pool = cold or COLD_PLACES
                name, lat, lon = pool[int(rng.integers(len(pool)))]
                amp = float(rng.uniform(8.0, 14.0))
                events.append(dict(kind="cold_spell", start=a, end=b, place=name, lat=lat, lon=lon, radius=round(1300.0 / KM_PER_DEG, 2),
                                   size=round(-amp, 1),
                                   description=f"cold spell over {name}: 2 m temperature down to -{amp:.0f} K "
                                               "in a trough of polar air"))
        for _ in range(n_regime):
            a, b = window(10.0, 30.0)
            hemi = "Northern" if rng.random() < 0.7 else "Southern"
            shift = float(rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 8.0))
            gain = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.25))
            where = "poleward" if shift > 0 else "equatorward"
            events.append(dict(kind="regime_shift", start=a, end=b, place=f"{hemi} Hemisphere jet",
                               hemisphere=hemi[0], size=round(shift, 2), gain=round(gain, 3),
                               description=f"regime shift: the {hemi} Hemisphere jet moves {abs(shift):.0f}° "
                                           f"{where} and is {abs(gain) * 100:.0f}% "
                                           f"{'stronger' if gain > 0 else 'weaker'} for {b - a:.0f} days"))
    for e in events:  # whole hours
        e["start"] = round(e["start"] * 24.0) / 24.0
        e["end"] = max(e["start"] + 1.0 / 24.0, round(e["end"] * 24.0) / 24.0)
    events.sort(key=lambda e: (e["start"], e["kind"]))
    return events


def _events_json(events: list[dict]) -> dict:
    out = []
    for e in events:
        item = {k: v for k, v in e.items() if v is not None}
        item["start"] = _iso(EPOCH + np.timedelta64(int(round(e["start"] * 86400)), "s"))
        item["end"] = _iso(EPOCH + np.timedelta64(int(round(e["end"] * 86400)), "s"))
        out.append(item)
    return {"version": 1, "events": out}


# ----------------------------------------------------------------------------- forcing + diagnostics
class Atmosphere:
    """Forcing of the QG model and the derivation of z500 / t850 / t2m from its state."""

    def __init__(self, preset: WeatherPreset, events: list[dict], origin_year: int, device: str = "cpu"):
        from core.synth.landmask import land_fraction
        from core.synth.qg import QGConfig, TwoLayerQG

        self.preset = preset
        self.cfg = QGConfig(nx=preset.nx, ny=preset.ny, dt=preset.dt, ld=preset.ld)
        self.model = TwoLayerQG(self.cfg, device=device)
        self.events = events
        self.origin = _days(np.datetime64(f"{origin_year}-01-01T00:00:00"))
        nx, ny = preset.nx, preset.ny
        self.r = ny // OUT_NLAT
        if ny % OUT_NLAT or nx != 2 * ny:
            raise UserError(f"weather preset {preset.name!r}: grid must be (32k, 64k), got ({ny}, {nx})")
        dlon = 360.0 / nx
        self.lat = self.cfg.lat()
        self.lon = np.arange(nx) * dlon - 0.5 * (self.r - 1) * dlon  # block means land on OUT_LON
        self.phi = np.deg2rad(self.lat)
        self.f = 2 * OMEGA * np.sin(self.phi)  # (ny,)
        self.dy = self.cfg.ly / ny
        self.land = land_fraction(self.lat, self.lon)  # (ny, nx)
        self.land_s = _smooth_periodic(self.land, sigma=1.0 * self.r)
        # zonally asymmetric land, tapered to 0 at the poles (the walls) and in the deep tropics
        pole_taper = np.clip((90.0 - np.abs(self.lat)) / 12.0, 0.0, 1.0) ** 2
        trop_taper = np.clip(np.abs(self.lat) / 25.0, 0.0, 1.0) ** 2
        self.land_anom = (self.land_s - self.land_s.mean(axis=1, keepdims=True)) * pole_taper[:, None]
        self.model.set_topography(1.6e-5 * self.land_anom)
        self.land_thermal = self.land_anom * trop_taper[:, None]
        # f used to turn temperature forcing into streamfunction: no forcing at the equator itself
        self.f_forcing = np.sign(self.lat) * np.maximum(np.abs(self.f), 2 * OMEGA * math.sin(math.radians(25.0)))
        self._prepare_events()

    # -- episodes --------------------------------------------------------------------------
    def _gauss(self, lat0: float, lon0: float, radius_km: float) -> np.ndarray:
        dx = ((self.lon[None, :] - lon0 + 180.0) % 360.0 - 180.0) * (self.cfg.lx / 360.0) / 1e3
        dy = (self.lat[:, None] - lat0) * (self.cfg.ly / 180.0) / 1e3
        return np.exp(-(dx ** 2 + dy ** 2) / radius_km ** 2)

    def _prepare_events(self) -> None:
        self.located = []
        for e in self.events:
            if e["kind"] in ("blocking", "heat_wave", "cold_spell"):
                g = self._gauss(e["lat"], e["lon"], e["radius"] * KM_PER_DEG)
                R = e["radius"] * KM_PER_DEG * 1e3
                dx = ((self.lon[None, :] - e["lon"] + 180.0) % 360.0 - 180.0) * (self.cfg.lx / 360.0)
                dy = (self.lat[:, None] - e["lat"]) * (self.cfg.ly / 180.0)
                rr = dx ** 2 + dy ** 2
                lap = g * (4 * rr / R ** 4 - 4 / R ** 2)  # ∇² of exp(-r²/R²)
                f0 = 2 * OMEGA * math.sin(math.radians(e["lat"]))
                if e["kind"] == "blocking":
                    dphi = G * e["size"]  # geopotential of the target ridge
                    dT = 0.0
                else:
                    dT = e["size"]
                    dphi = G * (90.0 if dT > 0 else -90.0) * abs(dT) / 8.0
                psi_amp = dphi / f0  # streamfunction of the target ridge/trough
                pv_rate = psi_amp * lap / (2.5 * 86400.0)  # builds the ridge in a few days
                tau_amp = THICKNESS * 0.6 * dT / (1.5 * f0) * g if dT else None
                self.located.append((e, g, pv_rate, tau_amp))

    def _envelopes(self, d: float) -> list[float]:
        return [_smooth_window(d, e["start"], e["end"]) for e, *_ in self.located]

    # -- background flow ----------------------------------------------------------------------
    def background(self, d: float) -> tuple[np.ndarray, np.ndarray]:
        """Background zonal wind of the upper and lower layer at day ``d``, each ``(ny,)`` m/s."""
        s = _season(d)
        lat = self.lat
        nh = dict(bt=19.0 + 5.0 * s, sh=30.0 + 10.0 * s, lat=41.0 - 6.0 * s)
        sh_ = dict(bt=20.0 - 2.0 * s, sh=32.0 - 3.0 * s, lat=-(47.0 + 4.0 * s))
        for e in self.events:
            if e["kind"] != "regime_shift":
                continue
            w = _smooth_window(d, e["start"], e["end"], ramp=3.0)
            if w == 0.0:
                continue
            jet = nh if e["hemisphere"] == "N" else sh_
            jet["lat"] += math.copysign(1.0, jet["lat"]) * e["size"] * w
            jet["bt"] *= 1.0 + e["gain"] * w
            jet["sh"] *= 1.0 + e["gain"] * w
        warm = self.warming(d)
        u_bt = np.zeros_like(lat)
        u_sh = np.zeros_like(lat)
        for jet in (nh, sh_):
            u_bt += jet["bt"] * np.exp(-((lat - jet["lat"]) / 14.0) ** 2)
            # polar amplification of the warming weakens the equator-pole contrast a little
            u_sh += jet["sh"] * (1.0 - 0.01 * warm) * np.exp(-((lat - jet["lat"]) / 12.0) ** 2)
        trades = -4.0 * np.exp(-(lat / 14.0) ** 2)
        return u_bt + 0.5 * u_sh, u_bt - 0.5 * u_sh + trades

    def warming(self, d: float) -> float:
        """Global warming signal (K) at day ``d``: ``WARMING_K_PER_YEAR`` per year since the origin."""
        return WARMING_K_PER_YEAR * (d - self.origin) / 365.2425

    def set_forcing(self, d: float) -> None:
        """Update every time-dependent input of the model for day ``d``."""
        m = self.model
        u1, u2 = self.background(d)
        m.set_background(u1, u2)
        s = _season(d, 30.0)
        # continents cold in winter, warm in summer (per hemisphere), as a layer-temperature anomaly (K)
        t_land = 7.0 * (-s * np.sign(self.lat))[:, None] * self.land_thermal
        tau = THICKNESS * t_land / self.f_forcing[:, None]
        src = np.zeros((2, self.cfg.ny, self.cfg.nx))
        for (e, g, pv_rate, tau_amp), w in zip(self.located, self._envelopes(d)):
            if w == 0.0:
                continue
            src += w * pv_rate[None]
            if tau_amp is not None:
                tau = tau + w * tau_amp
        m.set_relaxation_target(tau)
        m.set_pv_source(src)

    # -- output ---------------------------------------------------------------------------------
    def _from_equator(self, g: np.ndarray) -> np.ndarray:
        """∫ of ``g`` dy from the equator to each grid latitude (trapezoid), for profiles ``(ny,)``.

        Rows ``h = ny/2`` and ``h − 1`` sit half a cell north and south of the equator.
        """
        h = g.shape[-1] // 2
        dy = self.dy
        north = 0.5 * dy * g[h] + np.concatenate([[0.0], np.cumsum(0.5 * dy * (g[h:-1] + g[h + 1:]))])
        south_inc = -0.5 * dy * (g[:h - 1] + g[1:h])  # integral from row j+1 down to row j
        south = -0.5 * dy * g[h - 1] + np.concatenate([np.cumsum(south_inc[::-1])[::-1], [0.0]])
        return np.concatenate([south, north])

    def diagnose(self, t: np.datetime64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z500, t850 and t2m on the output grid ``(32, 64)`` each, from the model state at time ``t``."""
        d = _days(t)
        m = self.model
        psi = m.psi().cpu().numpy()  # (2, ny, nx) perturbation
        U = m.U[:, : self.cfg.ny].cpu().numpy()  # (2, ny) background
        f = self.f
        zm = psi.mean(axis=-1)  # (2, ny) zonal-mean perturbation streamfunction
        u_zm = U - np.gradient(zm, self.dy, axis=-1)  # total zonal-mean wind per layer
        warm = self.warming(d)
        lat = self.lat
        polar = 1.0 + np.sin(self.phi) ** 2  # amplification toward the poles
        # geopotential at 500 hPa: mid-level flow (mean of the two layers)
        u_mid = 0.5 * (u_zm[0] + u_zm[1])
        psi_mid = 0.5 * (psi[0] + psi[1])
        z_bar = 57700.0 - self._from_equator(f * u_mid) + R_DRY * math.log(2.0) * warm * polar
        z = z_bar[:, None] + f[:, None] * (psi_mid - psi_mid.mean(axis=-1, keepdims=True))
        # temperature: thickness of the layer pair (thermal wind), scaled to the 850 hPa contrast
        kappa = 1.5
        shear = u_zm[0] - u_zm[1]
        tau = psi[0] - psi[1]
        t_bar = 295.5 - kappa * self._from_equator(f * shear) / THICKNESS + warm * polar
        s_land = _season(d, 30.0)
        winter_pole = np.clip((np.abs(lat) - 55.0) / 30.0, 0.0, 1.0) * (s_land * np.sign(lat)).clip(0)
        t_bar = t_bar - 6.0 * winter_pole - 12.0 * np.sin(self.phi) ** 2  # polar-night cooling; broad contrast
        t850 = t_bar[:, None] + kappa * f[:, None] * (tau - tau.mean(axis=-1, keepdims=True)) / THICKNESS
        # episodes: surface-trapped part
        surf = np.zeros_like(t850)
        for (e, g, _, tau_amp), w in zip(self.located, self._envelopes(d)):
            if w and tau_amp is not None:
                surf += w * e["size"] * g
        t850 = t850 + 0.3 * surf
        # 2 m temperature
        land = self.land
        base = t850 + 7.0
        cont = 25.0 * np.clip(np.abs(np.sin(self.phi)) - 0.15, 0.0, None)  # continental seasonal amplitude
        cold = s_land * np.sign(lat)  # +1 in the local winter
        t_land = base - (np.where(cold > 0, 1.0, 0.3) * cold * cont)[:, None] + 0.5 * warm * polar[:, None]
        t_land = t_land - 15.0 * np.clip((-lat - 68.0) / 10.0, 0.0, 1.0)[:, None]  # Antarctic plateau
        s_sea = _season(d, 50.0)
        sst = 271.5 + 29.0 * np.cos(self.phi) ** 2 - 2.0 * s_sea * np.sign(lat) * np.sin(2 * np.abs(self.phi))
        sst = np.maximum(sst, 271.35)[:, None] + 0.3 * warm
        ice = np.clip((273.0 - sst) / 1.5, 0.0, 1.0)
        t_sea = ice * base + (1.0 - ice) * (0.4 * base + 0.6 * sst)
        t2m = land * t_land + (1.0 - land) * t_sea + (0.5 + 0.7 * land) * surf
        decl = _declination(d)
        insol = np.clip(np.cos(np.deg2rad(lat - decl)), 0.0, None) ** 1.5
        hours = (float(np.datetime64(t, "s").astype("int64")) / 3600.0) % 24.0
        lst = (hours + self.lon / 15.0) % 24.0
        diurnal = np.cos(2 * math.pi * (lst - 14.5) / 24.0)  # (nx,)
        amp = (6.5 * land + 0.4 * (1.0 - land)) * insol[:, None]
        t2m = t2m + amp * diurnal[None, :]
        t850 = t850 + 0.15 * amp * diurnal[None, :]
        return self.coarsen(z), self.coarsen(t850), self.coarsen(t2m)

    def coarsen(self, a: np.ndarray) -> np.ndarray:
        """Block mean of an internal ``(ny, nx)`` field onto the 5.625° output grid."""
        r = self.r
        if r == 1:
            return a
        return a.reshape(OUT_NLAT, r, OUT_NLON, r).mean(axis=(1, 3))


def _smooth_periodic(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (in grid cells), periodic in longitude, reflecting in latitude."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma=sigma, mode=("nearest", "wrap"))


# ----------------------------------------------------------------------------- driver
def _segments(preset: WeatherPreset) -> list[tuple[str, np.datetime64, np.datetime64]]:
    step = np.timedelta64(preset.cadence_hours, "h")
    out = []
    for name, (a, b) in preset.splits.items():
        start = np.datetime64(f"{a}T00:00:00", "s")
        end = np.datetime64(f"{b}T00:00:00", "s") + np.timedelta64(1, "D") - step
        out.append((name, start, end))
    out.sort(key=lambda x: x[1])
    return out


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def simulate(preset: WeatherPreset, seed: int, device: str = "cpu", progress: bool = True) -> Iterator[tuple]:
    """Yield ``(time, z500, t850, t2m)`` at every output time of ``preset`` (fields ``(32, 64)``)."""
    segs = _segments(preset)
    rng = np.random.default_rng([seed, 20240501])
    first = segs[0][1]
    events = draw_events([(a, b) for _, a, b in segs], rng)
    atm = Atmosphere(preset, events, origin_year=int(str(first)[:4]), device=device)
    yield events  # the first item is the list of events
    model = atm.model
    step_s = preset.dt
    cadence_s = preset.cadence_hours * 3600
    if cadence_s % step_s:
        raise UserError(f"weather preset {preset.name!r}: cadence must be a multiple of dt")
    restart = load_restart(preset)
    if restart is None:  # no shipped restart: spin up from small noise, much longer
        model.randomize(rng, amplitude=3.0e-5)
        cold_start_days = COLD_SPINUP_DAYS
    else:
        model.set_state(restart, rng, noise=0.2)
        cold_start_days = 0
    total_out = sum(int((b - a) / np.timedelta64(preset.cadence_hours, "h")) + 1 for _, a, b in segs)
    from tqdm import tqdm

    bar = tqdm(total=total_out, desc=f"weather {preset.name}", unit="frame", disable=None if progress else True,
               leave=False)
    now: np.datetime64 | None = None
    step = np.timedelta64(int(step_s), "s")

    def run_until(until: np.datetime64) -> None:
        """Step the model from ``now`` to ``until``, refreshing the forcing every 3 model hours."""
        nonlocal now
        while now < until:
            sec = int((now - EPOCH) / np.timedelta64(1, "s"))
            if sec % 10800 == 0:
                atm.set_forcing(sec / 86400.0)
            model.step()
            now = now + step
            if int((now - EPOCH) / np.timedelta64(1, "s")) % 21600 == 0:
                model.symmetrize()

    try:
        for _, a, b in segs:
            if now is None or (a - now) > np.timedelta64(preset.respin_days, "D"):
                spin = preset.spinup_days + cold_start_days if now is None else preset.respin_days
                now = a - np.timedelta64(spin, "D")
            t = a
            while t <= b:
                run_until(t)
                yield (t,) + atm.diagnose(t)
                bar.update(1)
                t = t + np.timedelta64(preset.cadence_hours, "h")
    finally:
        bar.close()


COLD_SPINUP_DAYS = 150
RESTART_DIR = Path(__file__).resolve().parents[2] / "assets" / "synth"


def restart_path(preset: WeatherPreset) -> Path:
    """The shipped restart state of ``preset``'s grid: ``assets/synth/weather_restart_{ny}x{nx}_ld{km}km.npy``."""
    return RESTART_DIR / f"weather_restart_{preset.ny}x{preset.nx}_ld{int(preset.ld / 1e3)}km.npy"


def load_restart(preset: WeatherPreset) -> np.ndarray | None:
    """The equilibrated PV state ``(2, ny, nx)`` for 1 January, or None when it is not shipped."""
    path = restart_path(preset)
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def make_restart(preset_name: str, days: int = 300, seed: int = 12345) -> Path:
    """Spin the model up from noise for ``days`` (no episodes) ending on 1 January 2001 and save the
    state as the restart of ``preset_name``'s grid (run once; the file is shipped in assets/synth)."""
    p = PRESETS[preset_name]
    rng = np.random.default_rng(seed)
    with _single_thread():
        atm = Atmosphere(p, [], origin_year=2001)
        m = atm.model
        m.randomize(rng, amplitude=3.0e-5)
        end = _days(np.datetime64("2001-01-01T00:00:00"))
        steps = int(round(days * 86400 / p.dt))
        for i in range(steps):
            if i % int(round(10800 / p.dt)) == 0:
                atm.set_forcing(end - days + i * p.dt / 86400.0)
            m.step()
            if i % int(round(86400 / p.dt)) == 0:
                m.symmetrize()
    path = restart_path(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, m.get_state(), allow_pickle=False)
    return path


def _write_year(out: Path, year: int, times: list, fields: list[np.ndarray], seed: int, preset: str) -> list[Path]:
    import xarray as xr

    time = np.array(times, dtype="datetime64[ns]")
    paths = []
    for (folder, stem, var, level, attrs), data in zip(WB_VARIABLES, fields):
        coords = {"lon": ("lon", OUT_LON.astype(np.float64), {"units": "degrees_east", "long_name": "longitude"}),
                  "lat": ("lat", OUT_LAT.astype(np.float64), {"units": "degrees_north", "long_name": "latitude"}),
                  "time": ("time", time, {"long_name": "time"})}
        if level is not None:
            coords["level"] = ((), np.int32(level), {"units": "millibars", "long_name": "pressure_level"})
        da = xr.DataArray(np.asarray(data, dtype=np.float32), dims=("time", "lat", "lon"), coords=coords,
                          attrs=dict(attrs), name=var)
        ds = da.to_dataset()
        ds.attrs = {"Conventions": "CF-1.6",
                    "history": f"synthetic atmosphere written by s2kd (two-layer QG model, preset {preset}, "
                               f"seed {seed}); layout of WeatherBench v1 (ERA5 regridded to 5.625 deg)"}
        enc = {var: {"dtype": "float32", "_FillValue": None},
               "time": {"units": "hours since 1979-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
               "lat": {"_FillValue": None}, "lon": {"_FillValue": None}}
        path = wb_path(out, folder, stem, year)
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
        paths.append(path)
    return paths


def generate(out: Path, preset: str, seed: int, device: str = "cpu", progress: bool = True) -> dict:
    """Write the synthetic atmosphere of ``preset`` with ``seed`` into ``out`` (WeatherBench v1 layout).

    Returns a summary: files written, number of frames, years, events.
    """
    from core import __version__
    from core.data.nonstationary import RULE

    if preset not in PRESETS:
        raise UserError(f"unknown weather preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    n = 0
    with _single_thread():
        sim = simulate(p, seed, device=device, progress=progress)
        events = next(sim)
        year, times, buf = None, [], ([], [], [])
        for t, z, t850, t2m in sim:
            y = int(str(t)[:4])
            if year is not None and y != year:
                files += _write_year(out, year, times, buf, seed, preset)
                times, buf = [], ([], [], [])
            year = y
            times.append(t)
            for b, a in zip(buf, (z, t850, t2m)):
                b.append(a.astype(np.float32))
            n += 1
        if times:
            files += _write_year(out, year, times, buf, seed, preset)
    segs = _segments(p)
    atomic_write_json(out / "events.json", _events_json(events))
    meta = {
        "kind": "weather",
        "source": "weatherbench",
        "preset": preset,
        "seed": int(seed),
        "cadence": p.cadence,
        "t_in": 12,
        "t_out": 12,
        "variables": {"z500": "geopotential_500/z", "t850": "temperature_850/t", "t2m": "2m_temperature/t2m"},
        "splits": {name: list(p.splits[name]) for name, _, _ in segs},
        "nonstationary_rule": RULE,
        "generator": {
            "model": "two-layer quasi-geostrophic (Phillips) model, pseudo-spectral on a pole-to-pole channel "
                     "periodic in longitude (method of images), AB3 + exponential filter",
            "internal_grid": [p.ny, p.nx], "dt_s": p.dt, "deformation_radius_m": p.ld,
            "spinup_days": p.spinup_days, "respin_days": p.respin_days,
            "warming_trend": {"k_per_year": WARMING_K_PER_YEAR, "since": f"{segs[0][1].astype(object).year}-01-01",
                              "description": "t850 and t2m warm by this rate (x1.5 over land, up to x2 toward "
                                             "the poles), z500 rises hydrostatically; the test split is the "
                                             "latest and so the warmest"},
            "land_mask": "Natural Earth 1:110m land (assets/naturalearth)",
            "preset": asdict(p),
        },
        "created_with": f"s2kd {__version__}",
    }
    atomic_write_json(out / "s2kd_dataset.json", meta)
    size = sum(f.stat().st_size for f in files)
    return {"files": len(files), "frames": n, "bytes": size, "events": len(events)}
