"""Coastlines and borders from the shipped Natural Earth files, as line traces for map panels.

The app draws lat-lon fields as heatmaps (no Plotly geo traces: they fetch topojson from a CDN), with
these polylines on top.  Longitudes are expressed in a *display window* ``[lon0, lon0 + 360)`` so that a
region crossing the 0°/360° seam (e.g. the North Atlantic, 280°→20°) is drawn contiguously as
280…380; a polyline is broken (NaN separator) wherever it jumps across the window's edge.

Files: ``assets/naturalearth/shapefiles/natural_earth/{physical,cultural}/ne_110m_*.shp`` (public
domain), laid out as cartopy's ``pre_existing_data_dir`` expects, read here with pyshp.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from core.errors import DataError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NATURAL_EARTH_DIR = ASSETS / "naturalearth"

LAYERS = {
    "coastline": ("physical", "coastline"),
    "land": ("physical", "land"),
    "borders": ("cultural", "admin_0_boundary_lines_land"),
}


def shapefile_path(layer: str, resolution: str = "110m") -> Path:
    """Path of a shipped Natural Earth shapefile (``layer`` in :data:`LAYERS`)."""
    try:
        category, name = LAYERS[layer]
    except KeyError:
        raise DataError(f"unknown map layer {layer!r}; choose from {', '.join(LAYERS)}") from None
    return NATURAL_EARTH_DIR / "shapefiles" / "natural_earth" / category / f"ne_{resolution}_{name}.shp"


@functools.lru_cache(maxsize=8)
def polylines(layer: str, resolution: str = "110m") -> tuple[np.ndarray, ...]:
    """All polylines (lines, or polygon rings) of a layer as ``(n, 2)`` arrays of (lon ∈ [-180, 180], lat)."""
    import shapefile  # pyshp

    path = shapefile_path(layer, resolution)
    if not path.is_file():
        raise DataError("Natural Earth shapefile missing (it ships in assets/naturalearth)", path=path)
    lines: list[np.ndarray] = []
    with shapefile.Reader(str(path)) as reader:
        for shape in reader.iterShapes():
            pts = np.asarray(shape.points, dtype=np.float64)
            if pts.size == 0:
                continue
            parts = list(shape.parts) + [len(pts)]
            for a, b in zip(parts[:-1], parts[1:]):
                if b - a >= 2:
                    lines.append(pts[a:b])
    return tuple(lines)


def to_display_lon(lon: np.ndarray, lon0: float) -> np.ndarray:
    """Map longitudes (any convention) into the display window ``[lon0, lon0 + 360)``."""
    return lon0 + np.mod(np.asarray(lon, dtype=np.float64) - lon0, 360.0)


def line_trace_xy(layers: tuple[str, ...] = ("coastline",), lon_range: tuple[float, float] = (0.0, 360.0),
                  lat_range: tuple[float, float] = (-90.0, 90.0), resolution: str = "110m",
                  margin: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """x (display longitude) and y (latitude) arrays, NaN-separated, for one Plotly line trace.

    ``lon_range = (lon_min, lon_max)`` in degrees east; ``lon_max < lon_min`` (or a range wider than the
    window) means the box crosses the seam, and the window starts at ``lon_min``.  Points farther than
    ``margin`` degrees outside the box are dropped (the plot's axis range clips the rest exactly).
    """
    lon_min, lon_max = float(lon_range[0]), float(lon_range[1])
    lon0 = lon_min
    if lon_max - lon_min >= 360.0:
        width = 360.0
    else:
        width = (lon_max - lon_min) % 360.0 or 360.0
    x_hi = lon0 + width
    lat_lo, lat_hi = lat_range
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for layer in layers:
        for line in polylines(layer, resolution):
            x = to_display_lon(line[:, 0], lon0 - margin if width < 360.0 else lon0)
            y = line[:, 1]
            keep = (x >= lon0 - margin) & (x <= x_hi + margin) & (y >= lat_lo - margin) & (y <= lat_hi + margin)
            # break the line where points are dropped or where it jumps across the window edge
            breaks = np.zeros(len(x), dtype=bool)
            breaks[1:] = np.abs(np.diff(x)) > 180.0
            seg_id = np.cumsum(breaks | ~keep)
            for sid in np.unique(seg_id[keep]):
                sel = keep & (seg_id == sid)
                if sel.sum() >= 2:
                    xs.append(x[sel])
                    ys.append(y[sel])
    if not xs:
        return np.array([], dtype=np.float64), np.array([], dtype=np.float64)
    nan = np.array([np.nan])
    x_out = np.concatenate([np.concatenate([s, nan]) for s in xs])
    y_out = np.concatenate([np.concatenate([s, nan]) for s in ys])
    return x_out, y_out
