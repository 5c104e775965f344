"""Land fraction on a regular lat-lon grid, rasterised from the shipped Natural Earth land polygons.

``land_fraction(lat, lon)`` samples ``sub × sub`` points inside every grid cell and tests them against
the polygons of ``assets/naturalearth/.../ne_110m_land.shp`` (even–odd rule over all rings, so holes
such as the Caspian Sea stay water).  The result is cached per grid.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from core.errors import DataError

#: Root of the shipped Natural Earth files (laid out as cartopy's ``pre_existing_data_dir`` expects).
NATURAL_EARTH_DIR = Path(__file__).resolve().parents[2] / "assets" / "naturalearth"
LAND_SHP = NATURAL_EARTH_DIR / "shapefiles" / "natural_earth" / "physical" / "ne_110m_land.shp"


def land_rings(path: Path = LAND_SHP) -> list[np.ndarray]:
    """The polygon rings of a Natural Earth land shapefile, each ``(n, 2)`` (lon −180…180, lat)."""
    import shapefile  # pyshp

    try:
        reader = shapefile.Reader(str(path))
        shapes = reader.shapes()
    except Exception as exc:  # pyshp raises its own exception types and OSError
        raise DataError(f"cannot read the Natural Earth land polygons ({exc})", path=path) from None
    rings = []
    for shape in shapes:
        parts = list(shape.parts) + [len(shape.points)]
        pts = np.asarray(shape.points, dtype=np.float64)
        for a, b in zip(parts[:-1], parts[1:]):
            if b - a >= 3:
                rings.append(pts[a:b])
    return rings


@functools.lru_cache(maxsize=16)
def _land_fraction_cached(lat: tuple[float, ...], lon: tuple[float, ...], sub: int) -> np.ndarray:
    from matplotlib.path import Path as MplPath

    lat_c = np.asarray(lat)
    lon_c = np.asarray(lon)
    dlat = abs(lat_c[1] - lat_c[0]) if len(lat_c) > 1 else 180.0
    dlon = abs(lon_c[1] - lon_c[0]) if len(lon_c) > 1 else 360.0
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    sub_lat = (lat_c[:, None] + offs[None, :] * dlat).ravel()  # (ny*sub,)
    sub_lon = (lon_c[:, None] + offs[None, :] * dlon).ravel()  # (nx*sub,)
    sub_lon = (sub_lon + 180.0) % 360.0 - 180.0
    glon, glat = np.meshgrid(sub_lon, sub_lat)
    points = np.column_stack([glon.ravel(), glat.ravel()])
    inside = np.zeros(len(points), dtype=bool)
    for ring in land_rings():
        lo, hi = ring.min(axis=0), ring.max(axis=0)
        cand = np.flatnonzero((points[:, 0] >= lo[0]) & (points[:, 0] <= hi[0])
                              & (points[:, 1] >= lo[1]) & (points[:, 1] <= hi[1]))
        if cand.size:
            hit = MplPath(ring).contains_points(points[cand])
            inside[cand[hit]] ^= True
    frac = inside.reshape(len(lat_c), sub, len(lon_c), sub).mean(axis=(1, 3))
    frac.setflags(write=False)
    return frac


def land_fraction(lat: np.ndarray, lon: np.ndarray, sub: int = 4) -> np.ndarray:
    """Fraction of land (0…1) in each cell of the grid with centres ``lat`` × ``lon`` (degrees).

    ``lat`` ascending or descending, ``lon`` in any 360° convention; returns ``(len(lat), len(lon))``.
    """
    key_lat = tuple(float(x) for x in np.asarray(lat, dtype=np.float64))
    key_lon = tuple(float(x) for x in np.asarray(lon, dtype=np.float64))
    return np.array(_land_fraction_cached(key_lat, key_lon, int(sub)))
