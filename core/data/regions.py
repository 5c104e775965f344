"""Regions: lat/lon boxes (named or custom, across the 0°/360° seam) and pixel boxes for city grids.

A lat/lon box keeps the grid points with ``lat_min ≤ lat ≤ lat_max`` and longitude inside the arc
that runs **eastward** from ``lon_min`` to ``lon_max`` (bounds inclusive, any convention: −180…180 or
0…360).  When ``lon_min > lon_max`` (mod 360) the arc crosses the 0°/360° seam, e.g. the North Atlantic
280°→20°; the selected longitudes are returned contiguous in the eastward order ``280, …, 354.375, 0,
…, 16.875`` (their original coordinate values are kept).  A box of 360° or more is the whole circle.

A pixel box ``(y0, y1, x0, x1)`` is half-open like a Python slice: rows ``y0 … y1−1`` and columns
``x0 … x1−1`` of the grid's two spatial dims (``y``/``x`` for city grids).

Regions are looked up by name in one registry (:data:`NAMED_REGIONS`, :func:`register_region` raises on
a duplicate name), or parsed from text by :func:`parse_region`: a name, ``"lat0,lat1,lon0,lon1"`` or
``"px:y0,y1,x0,x1"``.  ``Region.spec`` is the text that parses back to the same region (for URLs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import DataError, UserError


def _num(v: float) -> str:
    return f"{float(v):g}"


@dataclass(frozen=True)
class Region:
    """A lat/lon box (``lat_min, lat_max, lon_min, lon_max`` in degrees) or a pixel box (``y0, y1, x0, x1``).

    Exactly one of the two forms must be given.  ``Region("Global", -90, 90, 0, 360)`` is the whole
    sphere; ``Region("CBD", y0=12, y1=20, x0=14, x1=22)`` an 8×8 pixel box of a city grid.
    """

    name: str
    lat_min: float | None = None
    lat_max: float | None = None
    lon_min: float | None = None
    lon_max: float | None = None
    y0: int | None = None
    y1: int | None = None
    x0: int | None = None
    x1: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError("region: a region needs a non-empty name")
        geo = (self.lat_min, self.lat_max, self.lon_min, self.lon_max)
        pix = (self.y0, self.y1, self.x0, self.x1)
        has_geo = any(v is not None for v in geo)
        has_pix = any(v is not None for v in pix)
        if has_geo == has_pix:
            raise UserError(
                f"region '{self.name}': give either lat_min/lat_max/lon_min/lon_max or y0/y1/x0/x1"
            )
        if has_geo:
            if any(v is None for v in geo):
                raise UserError(f"region '{self.name}': lat_min, lat_max, lon_min and lon_max are all needed")
            vals = [float(v) for v in geo]
            if not all(math.isfinite(v) for v in vals):
                raise UserError(f"region '{self.name}': bounds must be finite numbers")
            lat0, lat1, lon0, lon1 = vals
            if not (-90 <= lat0 <= 90 and -90 <= lat1 <= 90):
                raise UserError(f"region '{self.name}': latitudes must lie in −90…90 (got {lat0}, {lat1})")
            if lat0 >= lat1:
                raise UserError(f"region '{self.name}': lat_min {lat0} must be below lat_max {lat1}")
            if not (-180 <= lon0 <= 360 and -180 <= lon1 <= 360):
                raise UserError(
                    f"region '{self.name}': longitudes must lie in −180…360 (got {lon0}, {lon1})"
                )
            if lon0 == lon1:
                raise UserError(f"region '{self.name}': lon_min equals lon_max ({lon0}): empty box")
            for key, v in zip(("lat_min", "lat_max", "lon_min", "lon_max"), vals):
                object.__setattr__(self, key, v)
        else:
            if any(v is None for v in pix):
                raise UserError(f"region '{self.name}': y0, y1, x0 and x1 are all needed")
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pix):
                raise UserError(f"region '{self.name}': pixel bounds must be integers")
            y0, y1, x0, x1 = (int(v) for v in pix)
            if min(y0, x0) < 0:
                raise UserError(f"region '{self.name}': pixel bounds must be ≥ 0")
            if y0 >= y1 or x0 >= x1:
                raise UserError(
                    f"region '{self.name}': empty pixel box (need y0 < y1 and x0 < x1, got {y0},{y1},{x0},{x1})"
                )
            for key, v in zip(("y0", "y1", "x0", "x1"), (y0, y1, x0, x1)):
                object.__setattr__(self, key, v)

    # ------------------------------------------------------------------ properties
    @property
    def is_pixel(self) -> bool:
        """True for a pixel box, False for a lat/lon box."""
        return self.y0 is not None

    @property
    def full_circle(self) -> bool:
        """True if the lon arc covers all longitudes (span ≥ 360°)."""
        return not self.is_pixel and (self.lon_max - self.lon_min) >= 360

    @property
    def is_global(self) -> bool:
        """True for the whole sphere (−90…90 and a full circle): selects every grid point of any grid."""
        return not self.is_pixel and self.full_circle and self.lat_min <= -90 and self.lat_max >= 90

    @property
    def crosses_seam(self) -> bool:
        """True if the eastward arc lon_min → lon_max crosses 0°/360°."""
        return not self.is_pixel and not self.full_circle and self.lon_min % 360 > self.lon_max % 360

    @property
    def spec(self) -> str:
        """Text that :func:`parse_region` turns back into this region (name if registered)."""
        key = _key(self.name)
        if NAMED_REGIONS.get(key) == self:
            return self.name
        if self.is_pixel:
            return f"px:{self.y0},{self.y1},{self.x0},{self.x1}"
        return ",".join(_num(v) for v in (self.lat_min, self.lat_max, self.lon_min, self.lon_max))

    # ------------------------------------------------------------------ grid operations
    def _lon_order(self, lon: np.ndarray) -> np.ndarray:
        """Indices of the selected longitudes in eastward order from lon_min."""
        if self.full_circle:
            return np.arange(lon.size)
        a, b = self.lon_min % 360, self.lon_max % 360
        lm = np.mod(lon, 360.0)
        eps = 1e-9
        if a <= b:
            sel = (lm >= a - eps) & (lm <= b + eps)
        else:
            sel = (lm >= a - eps) | (lm <= b + eps)
        idx = np.flatnonzero(sel)
        return idx[np.argsort(np.mod(lm[idx] - a + eps, 360.0), kind="stable")]

    def _spatial(self, da: Any) -> tuple[str, str]:
        import xarray as xr

        if not isinstance(da, xr.DataArray):
            raise DataError(f"region '{self.name}': expected an xarray.DataArray, got {type(da).__name__}")
        if "lat" in da.dims and "lon" in da.dims:
            return "lat", "lon"
        if "y" in da.dims and "x" in da.dims:
            return "y", "x"
        raise DataError(f"region '{self.name}': array has no (lat, lon) or (y, x) dims (dims {da.dims})")

    def _indices(self, da: Any) -> tuple[str, str, np.ndarray, np.ndarray]:
        ydim, xdim = self._spatial(da)
        ny, nx = da.sizes[ydim], da.sizes[xdim]
        if self.is_pixel:
            if self.y1 > ny or self.x1 > nx:
                raise DataError(
                    f"region '{self.name}': pixel box y {self.y0}…{self.y1}, x {self.x0}…{self.x1} "
                    f"exceeds the {ny}×{nx} grid"
                )
            return ydim, xdim, np.arange(self.y0, self.y1), np.arange(self.x0, self.x1)
        if self.is_global:
            return ydim, xdim, np.arange(ny), np.arange(nx)
        if ydim != "lat":
            raise DataError(
                f"region '{self.name}' is a lat/lon box but the grid is a city grid (y, x): use a pixel box"
            )
        lat = np.asarray(da["lat"].values, dtype=np.float64)
        lon = np.asarray(da["lon"].values, dtype=np.float64)
        iy = np.flatnonzero((lat >= self.lat_min - 1e-9) & (lat <= self.lat_max + 1e-9))
        ix = self._lon_order(lon)
        if iy.size == 0 or ix.size == 0:
            raise DataError(
                f"region '{self.name}' (lat {_num(self.lat_min)}…{_num(self.lat_max)}, lon "
                f"{_num(self.lon_min)}…{_num(self.lon_max)}) contains no grid point of the "
                f"{lat.size}×{lon.size} grid"
            )
        return ydim, xdim, iy, ix

    def select(self, da: Any) -> Any:
        """The part of ``da`` inside the region (other dims untouched).

        Lat/lon boxes keep grid order in latitude and eastward order from ``lon_min`` in longitude
        (contiguous across the seam).  The Global region returns ``da`` unchanged on any grid.
        Raises :class:`DataError` for an empty selection, a pixel box outside the grid, or a lat/lon
        box on a city grid.
        """
        ydim, xdim, iy, ix = self._indices(da)
        out = da.isel({ydim: iy, xdim: ix})
        return out.assign_attrs({**da.attrs, "region": self.name})

    def mask(self, da: Any) -> Any:
        """Boolean ``xarray.DataArray`` over the grid of ``da`` (dims ``(lat, lon)`` or ``(y, x)``)."""
        import xarray as xr

        ydim, xdim, iy, ix = self._indices(da)
        ny, nx = da.sizes[ydim], da.sizes[xdim]
        m = np.zeros((ny, nx), dtype=bool)
        m[np.ix_(iy, ix)] = True
        coords = {d: da[d].values for d in (ydim, xdim) if d in da.coords}
        return xr.DataArray(m, dims=(ydim, xdim), coords=coords, name="mask", attrs={"region": self.name})


# ---------------------------------------------------------------------- registry
def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


NAMED_REGIONS: dict[str, Region] = {}
"""Registry: normalised name (lower case, single spaces) → Region.  Add entries with register_region."""


def register_region(region: Region, replace: bool = False) -> Region:
    """Add ``region`` to :data:`NAMED_REGIONS`; raises :class:`UserError` on a duplicate name
    (``replace=True`` overwrites).  Used e.g. for the districts of a city grid."""
    if not isinstance(region, Region):
        raise UserError(f"register_region: expected a Region, got {type(region).__name__}")
    key = _key(region.name)
    if key in NAMED_REGIONS and not replace and NAMED_REGIONS[key] != region:
        raise UserError(f"region '{region.name}' is already registered")
    NAMED_REGIONS[key] = region
    return region


def get_region(name: str) -> Region:
    """Look a registered region up by name (case, spaces, '-' and '_' do not matter)."""
    try:
        return NAMED_REGIONS[_key(name)]
    except KeyError:
        known = ", ".join(r.name for r in NAMED_REGIONS.values())
        raise UserError(f"unknown region '{name}' (known: {known}; or 'lat0,lat1,lon0,lon1' or "
                        f"'px:y0,y1,x0,x1')") from None


def list_regions(pixel: bool | None = None) -> list[Region]:
    """Registered regions in registration order; ``pixel`` filters pixel (True) or lat/lon (False)."""
    return [r for r in NAMED_REGIONS.values() if pixel is None or r.is_pixel == pixel]


# Boxes follow WeatherBench 2's regions where it has them (Europe, North America, East Asia,
# Tropics, extratropics, Arctic/Antarctic, Australia); North Atlantic and North Pacific are common
# verification boxes crossing or approaching the seam.
for _r in (
    Region("Global", -90, 90, 0, 360),
    Region("Tropics", -20, 20, 0, 360),
    Region("Northern Hemisphere extratropics", 20, 90, 0, 360),
    Region("Southern Hemisphere extratropics", -90, -20, 0, 360),
    Region("Arctic", 60, 90, 0, 360),
    Region("Antarctic", -90, -60, 0, 360),
    Region("Europe", 35, 75, -12.5, 42.5),
    Region("North America", 25, 60, 240, 285),
    Region("East Asia", 25, 60, 102.5, 150),
    Region("North Atlantic", 20, 70, 280, 20),
    Region("North Pacific", 20, 65, 140, 240),
    Region("Australia", -45, -12.5, 120, 175),
):
    register_region(_r)
del _r


# ---------------------------------------------------------------------- parsing
_FLOAT = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_BOX = re.compile(rf"^{_FLOAT},{_FLOAT},{_FLOAT},{_FLOAT}$")
_PIX = re.compile(r"^px:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$", re.IGNORECASE)


def parse_region(text: str | Region) -> Region:
    """Parse a region name, ``"lat0,lat1,lon0,lon1"`` (degrees) or ``"px:y0,y1,x0,x1"`` (pixels, half-open).

    Raises :class:`UserError` with the offending text for an unknown name or an invalid/empty box.
    """
    if isinstance(text, Region):
        return text
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"region: expected a name or a box, got {text!r}")
    s = text.strip()
    if len(s) > 200:  # e.g. a URL carrying thousands of digits (int() refuses > 4300 digits)
        raise UserError(f"region '{s[:40]}…': too long ({len(s)} characters) for a name or a box")
    m = _PIX.match(s)
    if m:
        y0, y1, x0, x1 = (int(v) for v in m.groups())
        return Region(f"pixels {y0}:{y1}, {x0}:{x1}", y0=y0, y1=y1, x0=x0, x1=x1)
    if s.lower().startswith("px:"):
        raise UserError(f"region '{s}': a pixel box is 'px:y0,y1,x0,x1' with non-negative integers")
    m = _BOX.match(s)
    if m:
        lat0, lat1, lon0, lon1 = (float(v) for v in m.groups())
        name = f"lat {_num(lat0)}…{_num(lat1)}, lon {_num(lon0)}…{_num(lon1)}"
        return Region(name, lat0, lat1, lon0, lon1)
    if any(ch.isdigit() for ch in s) and "," in s:
        raise UserError(f"region '{s}': a box is 'lat0,lat1,lon0,lon1' (four numbers)")
    return get_region(s)
