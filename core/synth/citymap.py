"""A Beijing-like city in continuous km coordinates, its road network and its trip-flow patterns.

Coordinates: ``x`` km east and ``y`` km north of the centre (Tiananmen); the city grid covers
``[-HALF_WIDTH, HALF_WIDTH]`` km in both directions.  A raster of ``size × size`` pixels has row 0 at the
north edge and column 0 at the west edge (so ``imshow`` shows north up), pixel ``(row, col)`` has its
centre at ``x = -HALF_WIDTH + (col + 0.5) * cell``, ``y = HALF_WIDTH - (row + 0.5) * cell``.

Trips are routed on a road lattice whose nodes are the centres of the 32×32 TaxiBJ cells (8-neighbour
edges; ring roads, expressways and arterials are faster than local streets).  A trip from zone ``o`` to
zone ``d`` follows the fastest lattice path; every time it passes from one pixel into another it adds one
to the outflow of the pixel it leaves and one to the inflow of the pixel it enters (the TaxiBJ
definition of crowd in/out flow).  On finer rasters (128×128 for TaxiBJ+) roads run through one pixel
per lattice line and trips start and end at pixels spread inside their zone, so both rasters come from
one city and city-wide inflow equals outflow exactly in expectation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

HALF_WIDTH = 20.0  # km
LATTICE = 32  # routing lattice = TaxiBJ grid
_EVAL = 128  # densities are integrated on this raster whatever the output size


# --------------------------------------------------------------------------------------------------
# the map
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    name: str
    kind: str  # cbd, business, residential, university, airport, stadium, arena, exhibition, station, ...
    x: float  # km east
    y: float  # km north
    hx: float  # half extent east-west (km) of its district box
    hy: float  # half extent north-south (km)


#: Districts and points of interest (km), roughly where their Beijing namesakes are.
PLACES: tuple[Place, ...] = (
    Place("CBD (Guomao)", "cbd", 7.0, -0.3, 1.6, 1.3),
    Place("Financial Street", "business", -3.5, 0.8, 0.8, 1.3),
    Place("Zhongguancun", "business", -8.5, 9.5, 1.9, 1.6),
    Place("Shangdi tech park", "business", -6.0, 15.0, 1.5, 1.2),
    Place("Yizhuang development zone", "business", 8.5, -13.0, 2.6, 2.0),
    Place("Wangfujing", "shopping", 1.5, 0.6, 0.9, 0.9),
    Place("Xidan", "shopping", -2.2, 0.3, 0.7, 0.7),
    Place("Forbidden City and Tiananmen", "tourism", 0.0, 0.8, 0.8, 1.2),
    Place("Sanlitun", "nightlife", 5.5, 2.7, 0.9, 0.7),
    Place("Houhai", "nightlife", -1.5, 2.6, 0.8, 0.7),
    Place("University district (Tsinghua, Peking University)", "university", -8.0, 12.0, 2.2, 1.6),
    Place("Wudaokou", "nightlife", -6.5, 11.0, 0.7, 0.6),
    Place("Summer Palace", "park", -13.0, 11.5, 1.6, 1.3),
    Place("Huilongguan", "residential", -5.5, 18.0, 2.6, 1.8),
    Place("Tiantongyuan", "residential", 1.5, 17.5, 2.1, 1.8),
    Place("Wangjing", "residential", 9.5, 8.5, 2.0, 2.0),
    Place("Tongzhou", "residential", 17.5, -3.0, 2.5, 3.0),
    Place("Fengtai", "residential", -6.0, -9.0, 3.0, 2.5),
    Place("Shijingshan", "residential", -16.0, 1.0, 2.5, 2.5),
    Place("Daxing", "residential", -1.0, -16.0, 3.0, 3.0),
    Place("Capital Airport", "airport", 18.5, 16.0, 1.5, 1.3),
    Place("National Stadium (Bird's Nest)", "stadium", -0.3, 9.6, 0.5, 0.5),
    Place("Workers' Stadium", "stadium", 4.7, 2.0, 0.4, 0.4),
    Place("Wukesong Arena", "arena", -13.0, 0.3, 0.4, 0.4),
    Place("China International Exhibition Center", "exhibition", 6.3, 5.3, 0.5, 0.4),
    Place("Beijing Railway Station", "station", 3.3, -0.7, 0.4, 0.3),
    Place("Beijing West Railway Station", "station", -7.6, -1.2, 0.4, 0.4),
    Place("Beijing South Railway Station", "station", -0.8, -6.3, 0.5, 0.4),
    Place("Beijing North Railway Station", "station", -3.8, 3.6, 0.3, 0.3),
)
PLACE = {p.name: p for p in PLACES}

VENUES = ("National Stadium (Bird's Nest)", "Workers' Stadium", "Wukesong Arena",
          "China International Exhibition Center")
STATIONS = {"Beijing Railway Station": 1.0, "Beijing West Railway Station": 1.0,
            "Beijing South Railway Station": 0.9, "Beijing North Railway Station": 0.3}
AIRPORT = "Capital Airport"

#: Ring roads: rounded squares ``(|x|^4 + |y - y0|^4)^(1/4)`` scaled by half-widths ``(ax, ay)`` (km).
RINGS = (("2nd Ring Road", 4.2, 3.6), ("3rd Ring Road", 7.6, 6.9), ("4th Ring Road", 10.6, 9.8),
         ("5th Ring Road", 15.0, 14.2))
RING_Y0 = 0.3
#: Expressways and the main avenue as straight segments (km).
EXPRESSWAYS = (
    ("Airport Expressway", (6.5, 5.8), (18.5, 16.0)),
    ("Jingcheng Expressway", (5.5, 6.9), (9.0, 20.0)),
    ("Badaling Expressway", (-3.0, 6.9), (-10.0, 20.0)),
    ("Jingkai Expressway", (-2.0, -6.6), (-3.0, -20.0)),
    ("Jingtong Expressway", (7.6, -0.3), (20.0, -3.0)),
    ("Jingshi Expressway", (-7.6, -5.0), (-20.0, -14.0)),
    ("Jingjintang Expressway", (7.6, -5.0), (20.0, -14.0)),
)
#: Main avenues (arterial speed): name, start, end (km).
AVENUES = (("Chang'an Avenue", (-20.0, 0.0), (20.0, 0.0)),)
SPEED = {"expressway": 50.0, "ring": 42.0, "arterial": 32.0, "local": 26.0}  # km/h (congested)
ROUTE_DRAWS = 3  # route-choice draws (perturbed travel times) averaged into each pattern
ROUTE_SPREAD = 0.6  # log-normal sd of the travel-time perturbation per road segment


def ring_polyline(ax: float, ay: float, n: int = 256) -> np.ndarray:
    """Points ``(x, y)`` km along a rounded-square ring of half-widths ``ax, ay`` (closed)."""
    t = np.linspace(0.0, 2 * np.pi, n + 1)
    c, s = np.cos(t), np.sin(t)
    r = (np.abs(c) ** 4 + np.abs(s) ** 4) ** -0.25
    return np.stack([ax * r * c, RING_Y0 + ay * r * s], axis=1)


def _gauss(x, y, amp, cx, cy, sx, sy):
    return amp * np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _rsq(x, y):
    return (np.abs(x) ** 4 + np.abs(y - RING_Y0) ** 4) ** 0.25


def density(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Relative density of ``name`` (population, jobs, leisure, night) at km coordinates (x, y)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    rs = _rsq(x, y)
    hills = 1.0 - 0.85 / (1.0 + np.exp(-((-x - 12.0) + (y - 4.0)) / 1.5))  # western hills, NW
    hills = np.minimum(hills, 1.0 - 0.8 / (1.0 + np.exp(-(y - 19.0) / 0.8)) * (x < -8))
    if name == "population":
        d = (0.55 * np.exp(-(rs / 4.5) ** 2) + 0.9 * np.exp(-((rs - 10.0) / 3.8) ** 2)
             + 0.25 * np.exp(-(rs / 16.0) ** 2))
        for amp, cx, cy, sx, sy in ((1.3, -5.5, 18.0, 2.6, 1.8), (1.4, 1.5, 17.5, 2.1, 1.8),
                                    (1.0, 9.5, 8.5, 2.0, 2.0), (1.0, 17.5, -3.0, 2.5, 3.0),
                                    (0.8, -6.0, -9.0, 3.0, 2.5), (0.7, -16.0, 1.0, 2.5, 2.5),
                                    (0.5, 8.5, -13.0, 2.5, 2.0), (0.6, -1.0, -16.0, 3.0, 3.0),
                                    (0.9, -8.0, 12.0, 2.0, 1.5)):
            d = d + _gauss(x, y, amp, cx, cy, sx, sy)
        d = d - _gauss(x, y, 0.9, 18.5, 16.0, 2.0, 1.6)  # airport land
        d = d - _gauss(x, y, 0.5, -0.3, 9.8, 0.9, 1.6)  # Olympic park
    elif name == "jobs":
        d = 0.45 * np.exp(-(rs / 8.0) ** 2) + 0.1 * np.exp(-(rs / 16.0) ** 2)
        for amp, cx, cy, sx, sy in ((2.4, 7.0, -0.3, 1.8, 1.5), (1.8, -3.5, 0.8, 0.9, 1.3),
                                    (1.8, -8.5, 9.5, 1.9, 1.6), (1.5, 1.5, 0.6, 1.1, 0.9),
                                    (1.2, -2.2, 0.3, 0.7, 0.7), (1.6, 8.5, -13.0, 2.4, 1.8),
                                    (1.2, 9.5, 8.5, 1.4, 1.4), (1.6, -6.0, 15.0, 1.4, 1.1),
                                    (1.0, -7.0, -5.0, 1.4, 1.1), (0.9, 18.5, 16.0, 1.4, 1.1),
                                    (1.0, -8.0, 12.0, 1.5, 1.2), (0.8, 6.3, 5.3, 0.8, 0.6)):
            d = d + _gauss(x, y, amp, cx, cy, sx, sy)
    elif name == "leisure":
        d = 0.25 * density("population", x, y) / np.maximum(hills, 1e-3)
        for amp, cx, cy, sx, sy in ((2.0, 1.5, 0.6, 0.9, 0.9), (1.5, -2.2, 0.3, 0.7, 0.7),
                                    (2.0, 5.5, 2.7, 0.9, 0.7), (2.2, 0.0, 0.8, 0.8, 1.1),
                                    (1.0, -13.0, 11.5, 1.5, 1.2), (1.0, -0.3, 9.6, 1.4, 1.8),
                                    (1.0, -8.5, 9.5, 1.5, 1.2), (1.0, -6.5, 11.0, 0.7, 0.6),
                                    (1.2, -1.5, 2.6, 0.8, 0.7), (1.0, 9.0, 1.0, 1.0, 1.0),
                                    (0.8, 9.5, 8.5, 1.2, 1.2), (0.8, 7.0, -0.3, 1.0, 0.8)):
            d = d + _gauss(x, y, amp, cx, cy, sx, sy)
    elif name == "night":
        d = 0.03 * density("population", x, y) / np.maximum(hills, 1e-3)
        for amp, cx, cy, sx, sy in ((3.0, 5.5, 2.7, 0.8, 0.6), (2.0, -1.5, 2.6, 0.7, 0.6),
                                    (1.5, -6.5, 11.0, 0.6, 0.5), (1.0, 7.0, -0.3, 0.9, 0.8),
                                    (0.6, 0.3, 3.0, 0.6, 0.5)):
            d = d + _gauss(x, y, amp, cx, cy, sx, sy)
    else:
        raise ValueError(f"unknown density {name!r}")
    return np.maximum(d, 0.0) * hills


# --------------------------------------------------------------------------------------------------
# rasters
# --------------------------------------------------------------------------------------------------

def cell_km(size: int) -> float:
    return 2.0 * HALF_WIDTH / size


def pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` km of the pixel centres of a ``size × size`` raster, each ``(size, size)``."""
    c = -HALF_WIDTH + (np.arange(size) + 0.5) * cell_km(size)
    return np.meshgrid(c, -c)  # row 0 = north


def km_to_pixel(x: float, y: float, size: int) -> tuple[float, float]:
    """Continuous pixel coordinates ``(row, col)`` (pixel centres at integers) of a km point."""
    cell = cell_km(size)
    return (HALF_WIDTH - y) / cell - 0.5, (x + HALF_WIDTH) / cell - 0.5


def pixel_of(x: float, y: float, size: int) -> tuple[int, int]:
    r, c = km_to_pixel(x, y, size)
    return int(np.clip(round(r), 0, size - 1)), int(np.clip(round(c), 0, size - 1))


def _check_size(size: int) -> int:
    if size % LATTICE or size < LATTICE:
        raise ValueError(f"city raster size must be a multiple of {LATTICE}, got {size}")
    return size // LATTICE


def city_layout(size: int) -> dict:
    """The city map on a ``size × size`` raster, for drawing district outlines and registering regions.

    Returns ``{"size", "half_width_km", "cell_km", "districts": {name: {"kind", "center": [row, col],
    "box": [row0, row1, col0, col1] (half-open pixel box), "polygon": [[row, col], ...]}},
    "roads": {name: {"kind": "ring"|"expressway", "polyline": [[row, col], ...]}}}``; pixel
    coordinates are continuous with pixel centres at integers (row 0 = north).
    """
    _check_size(size)
    districts = {}
    for p in PLACES:
        corners_km = [(p.x - p.hx, p.y + p.hy), (p.x + p.hx, p.y + p.hy), (p.x + p.hx, p.y - p.hy),
                      (p.x - p.hx, p.y - p.hy)]
        poly = [list(map(float, km_to_pixel(cx, cy, size))) for cx, cy in corners_km]
        r0, c0 = km_to_pixel(p.x - p.hx, p.y + p.hy, size)
        r1, c1 = km_to_pixel(p.x + p.hx, p.y - p.hy, size)
        box = [int(np.clip(np.floor(r0 + 0.5), 0, size - 1)), int(np.clip(np.ceil(r1 + 0.5), 1, size)),
               int(np.clip(np.floor(c0 + 0.5), 0, size - 1)), int(np.clip(np.ceil(c1 + 0.5), 1, size))]
        districts[p.name] = {"kind": p.kind, "center": list(map(float, km_to_pixel(p.x, p.y, size))),
                             "box": box, "polygon": poly, "center_km": [p.x, p.y]}
    roads = {}
    for name, ax, ay in RINGS:
        pts = ring_polyline(ax, ay, 64)
        roads[name] = {"kind": "ring", "polyline": [list(map(float, km_to_pixel(x, y, size))) for x, y in pts]}
    for name, a, b in EXPRESSWAYS + AVENUES:
        roads[name] = {"kind": "expressway" if (name, a, b) in EXPRESSWAYS else "avenue",
                       "polyline": [list(map(float, km_to_pixel(*a, size))), list(map(float, km_to_pixel(*b, size)))]}
    return {"size": size, "half_width_km": HALF_WIDTH, "cell_km": cell_km(size), "districts": districts,
            "roads": roads, "orientation": "row 0 = north, column 0 = west"}


# --------------------------------------------------------------------------------------------------
# road lattice and routing
# --------------------------------------------------------------------------------------------------

_DIRS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def _seg_dist(px, py, a, b):
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ab = b - a
    t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / (ab @ ab), 0.0, 1.0)
    return np.hypot(px - a[0] - t * ab[0], py - a[1] - t * ab[1])


@functools.lru_cache(maxsize=1)
def road_graph():
    """The routing lattice: ``((edge sources, edge targets, travel minutes), node_x, node_y)``."""
    n = LATTICE
    cell = cell_km(n)
    X, Y = pixel_centres(n)
    nx_, ny_ = X.ravel(), Y.ravel()
    tol = 0.55 * cell
    road_ids = []  # per road: boolean node mask, kind
    for name, ax, ay in RINGS:
        pts = ring_polyline(ax, ay, 512)
        d = np.min(np.hypot(nx_[:, None] - pts[None, :, 0], ny_[:, None] - pts[None, :, 1]), axis=1)
        road_ids.append((d < tol, "ring"))
    for name, a, b in EXPRESSWAYS:
        road_ids.append((_seg_dist(nx_, ny_, a, b) < tol, "expressway"))
    for name, a, b in AVENUES:
        road_ids.append((_seg_dist(nx_, ny_, a, b) < tol, "arterial"))
    rows, cols = np.divmod(np.arange(n * n), n)
    arterial = (rows % 3 == 1) | (cols % 3 == 1)
    src, dst, w = [], [], []
    for dr, dc in _DIRS:
        if (dr, dc) < (0, 0):  # each undirected edge once
            continue
        r2, c2 = rows + dr, cols + dc
        ok = (r2 >= 0) & (r2 < n) & (c2 >= 0) & (c2 < n)
        a = np.nonzero(ok)[0]
        b = r2[ok] * n + c2[ok]
        length = cell * np.hypot(dr, dc)
        speed = np.full(a.size, SPEED["local"] * (0.8 if dr and dc else 1.0))
        if dr == 0:
            art = (rows[a] % 3 == 1)
        elif dc == 0:
            art = (cols[a] % 3 == 1)
        else:
            art = np.zeros(a.size, bool)
        speed = np.where(art & arterial[a], SPEED["arterial"], speed)
        inner = _rsq(nx_[a], ny_[a]) < 4.0
        speed = np.where(inner, speed * 0.8, speed)  # congested old city
        for mask, kind in road_ids:
            on = mask[a] & mask[b]
            speed = np.where(on, np.maximum(speed, SPEED[kind]), speed)
        src.append(a)
        dst.append(b)
        w.append(60.0 * length / speed)
    src = np.concatenate(src)
    dst = np.concatenate(dst)
    w = np.concatenate(w)
    return (src, dst, w), nx_, ny_


def _shortest_paths(draw: int):
    """All-pairs fastest paths with the travel times of route-choice ``draw`` perturbed (fixed seed)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    (src, dst, w), _, _ = road_graph()
    n = LATTICE * LATTICE
    rng = np.random.default_rng([20160410, draw])
    w = w * np.exp(rng.normal(0.0, ROUTE_SPREAD, w.size)) if draw else w
    g = coo_matrix((np.concatenate([w, w]), (np.concatenate([src, dst]), np.concatenate([dst, src]))),
                   shape=(n, n)).tocsr()
    dist, pred = dijkstra(g, directed=True, return_predecessors=True)
    return dist, pred.astype(np.int32)


# --------------------------------------------------------------------------------------------------
# trip purposes and their flow patterns
# --------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _zone_fields():
    """Densities on the 128-raster (fine weights) and summed per lattice zone."""
    X, Y = pixel_centres(_EVAL)
    f = _EVAL // LATTICE
    fine = {k: density(k, X, Y) for k in ("population", "jobs", "leisure", "night")}
    zone = {k: v.reshape(LATTICE, f, LATTICE, f).sum(axis=(1, 3)).ravel() for k, v in fine.items()}
    return fine, zone


def _gravity(origin: np.ndarray, attract: np.ndarray, beta_km: float) -> np.ndarray:
    """Production-constrained gravity model: ``T[o, d] = O[o] A[d] e^{-r/β} / Σ_d' A[d'] e^{-r'/β}``."""
    _, nx_, ny_ = road_graph()
    r = np.hypot(nx_[:, None] - nx_[None, :], ny_[:, None] - ny_[None, :])
    k = attract[None, :] * np.exp(-r / beta_km)
    np.fill_diagonal(k, 0.0)
    k /= np.maximum(k.sum(axis=1, keepdims=True), 1e-300)
    return origin[:, None] * k


def _point_zone(name: str) -> int:
    p = PLACE[name]
    r, c = pixel_of(p.x, p.y, LATTICE)
    return r * LATTICE + c


def _onehot_fine(name: str, size: int) -> np.ndarray:
    p = PLACE[name]
    a = np.zeros((size, size))
    a[pixel_of(p.x, p.y, size)] = 1.0
    return a


def _purposes(size: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Purpose → ``(source zones (S,), trips (S, N), origin fine weights, destination fine weights)``."""
    fine, zone = _zone_fields()
    if size != _EVAL:  # resample the fine weights to ``size`` (block sums of the 128 evaluation)
        X, Y = pixel_centres(size)
        fine = {k: density(k, X, Y) for k in fine}
    pop, jobs, lei, night = zone["population"], zone["jobs"], zone["leisure"], zone["night"]
    allz = np.arange(LATTICE * LATTICE)
    out = {
        "commute": (allz, _gravity(pop, jobs, 9.0), fine["population"], fine["jobs"]),
        "leisure": (allz, _gravity(pop, lei, 6.0), fine["population"], fine["leisure"]),
        "business": (allz, _gravity(jobs, jobs, 5.0), fine["jobs"], fine["jobs"]),
        "errand": (allz, _gravity(pop, pop + 0.5 * lei, 2.5), fine["population"],
                   fine["population"] + 0.5 * fine["leisure"]),
        "night": (allz, _gravity(pop, night, 7.0), fine["population"], fine["night"]),
    }
    _, nx_, ny_ = road_graph()

    def from_point(names_weights, attract, beta, fine_attract):
        srcs, rows, ow = [], [], np.zeros((size, size))
        for name, wgt in names_weights.items():
            z = _point_zone(name)
            r = np.hypot(nx_ - nx_[z], ny_ - ny_[z])
            row = attract * np.exp(-r / beta)
            row[z] = 0.0
            rows.append(wgt * row / row.sum())
            srcs.append(z)
            ow += wgt * _onehot_fine(name, size)
        return np.array(srcs), np.array(rows), ow, fine_attract

    out["airport"] = from_point({AIRPORT: 1.0}, pop + 2.0 * jobs, 40.0, fine["population"] + 2.0 * fine["jobs"])
    out["stations"] = from_point(STATIONS, pop + 0.5 * jobs, 15.0, fine["population"] + 0.5 * fine["jobs"])
    for v in VENUES:
        out[f"venue:{v}"] = from_point({v: 1.0}, pop, 12.0, fine["population"])
    return out


def _intra_weights(field: np.ndarray, f: int) -> np.ndarray:
    """Normalise a fine field to sum 1 inside each lattice zone (uniform where it is zero)."""
    n = field.shape[0]
    blocks = field.reshape(LATTICE, f, LATTICE, f)
    s = blocks.sum(axis=(1, 3), keepdims=True)
    w = np.where(s > 0, blocks / np.where(s > 0, s, 1.0), 1.0 / (f * f))
    return w.reshape(n, n)


@functools.lru_cache(maxsize=1)
def _edge_flows():
    """Trips per purpose ``W (N, N, K)``, their totals, and mean flow per lattice edge ``(K, N*8)``."""
    n = LATTICE
    N = n * n
    purposes = _purposes(_EVAL)
    names = list(purposes)
    K = len(names)
    # trips (source zone, destination zone, purpose): every purpose shares each source's route tree
    W = np.zeros((N, N, K), np.float32)
    for k, name in enumerate(names):
        src, rows, _, _ = purposes[name]
        np.add.at(W[:, :, k], src, rows.astype(np.float32))
    totals = W.sum(axis=(0, 1), dtype=np.float64)
    node_r, node_c = np.divmod(np.arange(N), n)
    edge = np.zeros((K, N * 8))
    ridx = np.arange(N)
    for draw in range(ROUTE_DRAWS):
        dist, pred = _shortest_paths(draw)
        order = np.argsort(-dist, axis=1, kind="stable")
        acc = W.copy()
        for j in range(N - 1):  # farthest nodes first: push subtree flows to the parent
            nodes = order[:, j]
            par = pred[ridx, nodes]
            ok = par >= 0
            acc[ridx[ok], par[ok]] += acc[ridx[ok], nodes[ok]]  # one index per row: no duplicates
        ok = pred >= 0
        child = np.broadcast_to(np.arange(N), pred.shape)[ok]
        parent = pred[ok]
        di = (node_r[child] - node_r[parent] + 1) * 3 + (node_c[child] - node_c[parent] + 1)
        di = np.where(di > 4, di - 1, di)  # 3×3 minus the centre → 0..7 in the order of _DIRS
        flows = acc[ok]  # (E, K)
        for k in range(K):
            edge[k] += np.bincount(parent * 8 + di, weights=flows[:, k], minlength=N * 8)
        del acc, flows
    edge /= ROUTE_DRAWS
    return W, totals, edge


@functools.lru_cache(maxsize=4)
def flow_patterns(size: int) -> dict[str, np.ndarray]:
    """Expected in/out flow per trip of each purpose on a ``size × size`` raster.

    Returns purpose → ``(2, size, size)`` float64 (channel 0 inflow, 1 outflow), each the flow produced
    by one trip of that purpose distributed over its origin–destination table and averaged over
    ``ROUTE_DRAWS`` route choices; the reverse trips (going home, leaving a venue) have the channels
    swapped.  City-wide inflow = outflow exactly for every pattern.
    """
    f = _check_size(size)
    n = LATTICE
    N = n * n
    purposes = _purposes(size)
    W, totals, edge = _edge_flows()
    node_r, node_c = np.divmod(np.arange(N), n)
    npix_r, npix_c = f * node_r + f // 2, f * node_c + f // 2  # node pixel on the fine raster
    out = {}
    for k, (name, (_, _, ow, dw)) in enumerate(purposes.items()):
        e8 = edge[k].reshape(N, 8)
        inflow = np.zeros((size, size))
        outflow = np.zeros((size, size))
        for d, (ddr, ddc) in enumerate(_DIRS):
            e = e8[:, d]
            m = e > 0
            for s in range(f):
                fr, fc = npix_r[m] + s * ddr, npix_c[m] + s * ddc
                np.add.at(outflow, (fr, fc), e[m])
                np.add.at(inflow, (fr + ddr, fc + ddc), e[m])
        if f > 1:  # access legs inside the origin / destination zones
            Wk = W[:, :, k].astype(np.float64)
            np.fill_diagonal(Wk, 0.0)
            dep = Wk.sum(axis=1).reshape(n, n)
            arr = Wk.sum(axis=0).reshape(n, n)
            wo, wd = _intra_weights(ow, f), _intra_weights(dw, f)
            node_mask = np.zeros((size, size), bool)
            node_mask[npix_r, npix_c] = True
            dep_f = np.kron(dep, np.ones((f, f))) * wo * ~node_mask
            arr_f = np.kron(arr, np.ones((f, f))) * wd * ~node_mask
            outflow += dep_f
            inflow[npix_r, npix_c] += dep_f.reshape(n, f, n, f).sum(axis=(1, 3)).ravel()
            inflow += arr_f
            outflow[npix_r, npix_c] += arr_f.reshape(n, f, n, f).sum(axis=(1, 3)).ravel()
        out[name] = np.stack([inflow, outflow]) / totals[k]
    return out
