"""Small Plotly figure builders for the dashboard pages (numpy in, ``go.Figure`` out).

No Plotly geo traces (they fetch topojson from a CDN): maps are heatmaps in (display longitude,
latitude) with coastline/border line traces from the shipped Natural Earth files (``core.geo``), or,
for city grids, heatmaps in pixel coordinates with district outlines.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

#: One colour per model, stable across pages.
MODEL_COLORS = {
    "truth": "#111111",
    "teacher-s2": "#1f5fa8",
    "teacher-vision": "#6a8fc7",
    "student-s2kd": "#d1495b",
    "student-spectral": "#edae49",
    "student-none": "#66a182",
    "student-output": "#8d6a9f",
    "student-feature": "#00798c",
    "student-s2kd-no-sem": "#f28482",
    "student-s2kd-no-att": "#f5cac3",
    "student-s2kd-no-spec": "#84a59d",
    "simvp": "#2e4057",
    "convlstm": "#9c6644",
    "persistence": "#999999",
    "climatology": "#bbbbbb",
    "historical-average": "#bbbbbb",
}


def color(name: str) -> str:
    return MODEL_COLORS.get(name, "#444444")


def _grid_cols(n: int, max_cols: int = 4) -> int:
    return max(1, min(max_cols, n))


def field_panels(panels: Sequence[tuple[str, np.ndarray]], x: np.ndarray, y: np.ndarray, *,
                 outlines: tuple[np.ndarray, np.ndarray] | None = None, units: str = "",
                 diverging: bool = False, zrange: tuple[float, float] | None = None,
                 max_cols: int = 4, height_per_row: int = 260, geo: bool = True,
                 colorscale: str | None = None) -> go.Figure:
    """Heatmap panels on one shared colour scale, tiled in a grid of ``max_cols`` columns on one pair of axes.

    ``panels``: (title, field (len(y), len(x))); ``x``/``y``: display longitude and latitude (or pixel
    columns/rows); ``outlines``: NaN-separated line (x, y) drawn on every panel; ``diverging``: a
    symmetric red-blue scale around 0 (difference maps); ``zrange``: fixed colour limits.

    Layout: panel ``i`` sits in row ``r = i // cols``, column ``c = i % cols``, shifted by
    ``c·(W + gap_x)`` along x and ``r·(H + gap_y)`` down the page (``W``, ``H`` the box's extent), so the
    top-left panel keeps its own coordinates.  One subplot instead of one per panel: the browser draws
    (and, on every lead change, redraws) a grid of 8 maps about twice as fast.  Each heatmap carries its
    cells' true (x, y) as ``customdata`` for the hover; the axes label the first column (x) and every row
    (y) with longitudes/latitudes (pixels on city grids); panel titles are annotations.
    """
    n = len(panels)
    cols = _grid_cols(n, max_cols)
    rows = int(np.ceil(n / cols)) if n else 1
    finite = [np.asarray(f)[np.isfinite(f)] for _, f in panels]
    finite = [f for f in finite if f.size]
    if zrange is None and finite:
        allv = np.concatenate(finite)
        if diverging:
            m = float(np.nanpercentile(np.abs(allv), 99)) or 1.0
            zrange = (-m, m)
        else:
            zrange = (float(np.nanmin(allv)), float(np.nanmax(allv)))
    scale = colorscale or ("RdBu_r" if diverging else "Viridis")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dx, dy = _step(x), abs(_step(y))
    width, height = float(np.ptp(x)) + dx, float(np.ptp(y)) + dy
    gap_x, gap_y = 0.04 * max(width, height), 0.12 * max(width, height)  # room for the titles between rows
    down = -1.0 if geo else 1.0  # the direction of the next row in data units (latitude up, pixel rows down)
    hover_x, hover_y, fmt = ("lon", "lat", ".2f") if geo else ("x", "y", ".0f")
    cells = np.stack(np.meshgrid(x, y), axis=-1).astype(np.float32)  # (len(y), len(x), 2) true coordinates
    row_y = [down * r * (height + gap_y) for r in range(rows)]  # offset of each row, each column below
    offsets = [(c * (width + gap_x), row_y[r]) for r, c in (divmod(i, cols) for i in range(n))]
    data: list[dict] = []
    annotations: list[dict] = []
    for (title, field), (ox, oy) in zip(panels, offsets):
        data.append(dict(
            type="heatmap", z=np.asarray(field, dtype=np.float32), x=(x + ox).astype(np.float32),
            y=(y + oy).astype(np.float32), coloraxis="coloraxis", name=title, customdata=cells,
            hovertemplate=(f"{hover_x} %{{customdata[0]:{fmt}}}<br>{hover_y} %{{customdata[1]:{fmt}}}<br>"
                           f"%{{z:.4g}} {units}<extra>{title}</extra>")))
        top = (float(np.max(y)) + 0.5 * dy if geo else float(np.min(y)) - 0.5 * dy) + oy
        annotations.append(dict(text=title, x=float(np.min(x)) - 0.5 * dx + ox + 0.5 * width, y=top, xref="x", yref="y",
                                showarrow=False, yanchor="bottom", font=dict(size=13)))
    if outlines is not None and len(outlines[0]) and n:  # one line trace: a NaN-separated copy per panel
        lx = np.append(np.asarray(outlines[0], dtype=np.float32), np.float32(np.nan))
        ly = np.append(np.asarray(outlines[1], dtype=np.float32), np.float32(np.nan))
        data.append(dict(type="scatter", x=np.concatenate([lx + ox for ox, _ in offsets]),
                         y=np.concatenate([ly + oy for _, oy in offsets]), mode="lines",
                         hoverinfo="skip", line=dict(color="rgba(20,20,20,0.75)", width=0.8), showlegend=False))
    x_range = [float(np.min(x)) - 0.5 * dx, float(np.min(x)) - 0.5 * dx + cols * width + (cols - 1) * gap_x]
    y_lo, y_hi = float(np.min(y)) - 0.5 * dy, float(np.max(y)) + 0.5 * dy
    extra = (rows - 1) * (height + gap_y)
    y_range = [y_lo - extra, y_hi] if geo else [y_hi + extra, y_lo]  # city: rows increase downwards
    if geo:
        xt = _lon_ticks(x)
        xtext = [_lon_label(v) for v in xt]
        yt0, ytext0 = _lat_ticks(y), [_lat_label(v) for v in _lat_ticks(y)]
    else:
        xt = _pixel_ticks(x)
        xtext = [f"{v:.0f}" for v in xt]
        yt0 = _pixel_ticks(y)
        ytext0 = [f"{v:.0f}" for v in yt0]
    yt = [v + oy for oy in row_y for v in yt0]
    ytext = ytext0 * rows
    axis = dict(showgrid=False, zeroline=False, showline=False, ticks="outside", ticklen=3, constrain="domain")
    layout = dict(
        xaxis=dict(axis, range=x_range, tickvals=xt, ticktext=xtext),
        yaxis=dict(axis, range=y_range, tickvals=yt, ticktext=ytext, scaleanchor="x", scaleratio=1),
        annotations=annotations, plot_bgcolor="rgba(0,0,0,0)",
        coloraxis=dict(colorscale=scale, cmin=zrange[0] if zrange else None, cmax=zrange[1] if zrange else None,
                       colorbar=dict(title=dict(text=units, side="right"), thickness=12)),
        height=_grid_height(cols * width + (cols - 1) * gap_x, rows * height + (rows - 1) * gap_y, rows,
                            height_per_row),
        margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
    )
    return go.Figure(data=data, layout=layout)


#: The width (px) of the main column the maps are drawn in, roughly (wide layout, sidebar open, colour bar).
TYPICAL_PLOT_WIDTH_PX = 1050


def _grid_height(total_w: float, total_h: float, rows: int, height_per_row: int) -> int:
    """Figure height (px) for a grid of equal-aspect maps ``total_w`` × ``total_h`` (data units) that fills
    the typical width without blank bands above and below, at most ``rows · height_per_row``."""
    fit = 40 + int(TYPICAL_PLOT_WIDTH_PX * total_h / max(total_w, 1e-9))
    return int(min(max(180, fit), max(180, rows * height_per_row)))


def _pixel_ticks(v: np.ndarray) -> list[float]:
    lo, hi = float(np.min(v)), float(np.max(v))
    step = max(1.0, float(10 ** np.floor(np.log10(max(hi - lo, 1.0)))) / 2)
    while (hi - lo) / step > 5:
        step *= 2
    return [float(t) for t in np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)]


def _step(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.median(np.diff(v))) if v.size > 1 else 1.0


def _lon_ticks(x: np.ndarray) -> list[float]:
    lo, hi = float(np.min(x)), float(np.max(x))
    step = 60.0 if hi - lo > 180 else 30.0 if hi - lo > 60 else 10.0
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + 1e-9, step)]


def _lat_ticks(y: np.ndarray) -> list[float]:
    lo, hi = max(float(np.min(y)), -90.0), min(float(np.max(y)), 90.0)
    step = 30.0 if hi - lo > 90 else 10.0 if hi - lo > 20 else 5.0
    return [float(v) for v in np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)]


def _lat_label(v: float) -> str:
    return "0°" if abs(v) < 1e-9 else f"{abs(v):.0f}°{'N' if v > 0 else 'S'}"


def _lon_label(v: float) -> str:
    v = ((v + 180.0) % 360.0) - 180.0
    if abs(v) < 1e-9 or abs(abs(v) - 180.0) < 1e-9:
        return f"{abs(v):.0f}°"
    return f"{abs(v):.0f}°{'E' if v > 0 else 'W'}"


def lead_curves(curves: Mapping[str, Sequence[float]], leads: Sequence[float], *, ylabel: str,
                xlabel: str = "lead time", highlight: Sequence[str] = ()) -> go.Figure:
    """Metric-vs-lead lines, one per model (``None`` values are gaps)."""
    fig = go.Figure()
    for name, values in curves.items():
        fig.add_trace(go.Scatter(
            x=list(leads), y=[np.nan if v is None else v for v in values], mode="lines+markers", name=name,
            line=dict(color=color(name), width=3 if name in highlight else 1.6,
                      dash="dot" if name in ("persistence", "climatology", "historical-average") else None),
            marker=dict(size=5),
        ))
    fig.update_layout(xaxis_title=xlabel, yaxis_title=ylabel, height=380, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.25), hovermode="x unified")
    return fig


def spectrum_figure(k: np.ndarray, spectra: Mapping[str, np.ndarray], *, xlabel: str, ylabel: str,
                    cutoff_k: float | None = None) -> go.Figure:
    """Log-log spectra, one line per model (wavenumber 0 is dropped)."""
    fig = go.Figure()
    k = np.asarray(k, dtype=np.float64)
    keep = k > 0
    for name, p in spectra.items():
        p = np.asarray(p, dtype=np.float64)
        fig.add_trace(go.Scatter(x=k[keep], y=p[keep], mode="lines", name=name,
                                 line=dict(color=color(name), width=2.5 if name == "truth" else 1.6)))
    if cutoff_k:  # on a log axis a shape takes the data value, an annotation its log10
        fig.add_shape(type="line", x0=float(cutoff_k), x1=float(cutoff_k), yref="paper", y0=0, y1=1,
                      line=dict(color="#888", dash="dash"))
        fig.add_annotation(x=float(np.log10(cutoff_k)), y=1, yref="paper", text="band cut-off", showarrow=False,
                           xanchor="left", yanchor="top", font=dict(color="#666", size=11))
    fig.update_xaxes(type="log", title=xlabel)
    fig.update_yaxes(type="log", title=ylabel, exponentformat="power")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def overlay(field: np.ndarray, weights: np.ndarray, x: np.ndarray, y: np.ndarray, *, title: str,
            outlines: tuple[np.ndarray, np.ndarray] | None = None, geo: bool = True, top_fraction: float = 0.1,
            height: int = 320) -> go.Figure:
    """An attention map over a field: the field in greys, the map in a translucent heat scale, and the
    contour of its top ``top_fraction`` of cells."""
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=field, x=x, y=y, colorscale="Greys", showscale=False, opacity=0.9,
                             hovertemplate="%{z:.4g}<extra>field</extra>"))
    fig.add_trace(go.Heatmap(z=weights, x=x, y=y, colorscale="Hot_r", opacity=0.55, zmin=0,
                             colorbar=dict(title="weight", thickness=10),
                             hovertemplate="attention %{z:.3g}<extra></extra>"))
    thr = float(np.quantile(weights, 1 - top_fraction)) if weights.size else 0.0
    fig.add_trace(go.Contour(z=(weights >= thr).astype(float), x=x, y=y, showscale=False,
                             contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                             line=dict(color="#d1495b", width=2), hoverinfo="skip"))
    if outlines is not None and len(outlines[0]):
        fig.add_trace(go.Scatter(x=outlines[0], y=outlines[1], mode="lines", hoverinfo="skip",
                                 line=dict(color="rgba(20,20,20,0.8)", width=0.8), showlegend=False))
    xr_ = [float(np.min(x)) - 0.5 * _step(x), float(np.max(x)) + 0.5 * _step(x)]
    yr_ = [float(np.min(y)) - 0.5 * _step(y), float(np.max(y)) + 0.5 * _step(y)]
    fig.update_xaxes(range=xr_)
    fig.update_yaxes(range=yr_ if geo else yr_[::-1], scaleanchor="x", scaleratio=1)
    if geo:
        fig.update_xaxes(tickvals=_lon_ticks(x), ticktext=[_lon_label(v) for v in _lon_ticks(x)])
        fig.update_yaxes(tickvals=_lat_ticks(y), ticktext=[_lat_label(v) for v in _lat_ticks(y)])
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def animated_panels(stacks: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray, lead_labels: Sequence[str], *,
                    outlines: tuple[np.ndarray, np.ndarray] | None = None, units: str = "", geo: bool = True,
                    start: int = 0, max_cols: int = 5, height_per_row: int = 240) -> go.Figure:
    """Panels of ``stacks`` (name → ``(T, len(y), len(x))``) animated over the lead times in the browser:
    one Plotly frame per lead, a play/pause button and a lead slider (no server round trip)."""
    names = list(stacks)
    t = len(lead_labels)
    allv = np.concatenate([np.asarray(s, dtype=np.float64)[np.isfinite(s)] for s in stacks.values()])
    zrange = (float(allv.min()), float(allv.max())) if allv.size else None
    cols = _grid_cols(len(names), max_cols)
    aspect = float(np.clip((np.ptp(y) + _step(y)) / max(np.ptp(x) + _step(x), 1e-9), 0.3, 1.5))
    height_per_row = int(min(height_per_row, 70 + 950 / cols * aspect))  # rows as tall as the maps need
    fig = field_panels([(n, stacks[n][start]) for n in names], x, y, outlines=outlines, units=units, geo=geo,
                       zrange=zrange, max_cols=max_cols, height_per_row=height_per_row)
    heat_idx = [i for i, tr in enumerate(fig.data) if tr.type == "heatmap"]
    frames = [go.Frame(name=str(k), data=[go.Heatmap(z=np.asarray(stacks[n][k], dtype=np.float32)) for n in names],
                       traces=heat_idx, layout=go.Layout(title_text=f"lead {lead_labels[k]}"))
              for k in range(t)]
    fig.frames = frames
    steps = [dict(method="animate", label=lead_labels[k],
                  args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
             for k in range(t)]
    fig.update_layout(
        title_text=f"lead {lead_labels[start]}",
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.16, xanchor="left", yanchor="top",
                          showactive=False, buttons=[
                              dict(label="▶ Play", method="animate",
                                   args=[None, dict(frame=dict(duration=600, redraw=True), fromcurrent=True,
                                                    transition=dict(duration=0))]),
                              dict(label="❚❚ Pause", method="animate",
                                   args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=start, steps=steps, x=0.16, len=0.84, y=-0.1, yanchor="top",
                      currentvalue=dict(prefix="lead ", visible=True))],
    )
    fig.update_layout(height=fig.layout.height + 120, margin=dict(l=10, r=10, t=50, b=120))
    return fig


def scorecard_colors(value: float | None, scale: float = 0.25) -> str:
    """CSS background for a relative difference (negative = better = blue, positive = worse = red)."""
    if value is None or not np.isfinite(value):
        return ""
    a = min(1.0, abs(float(value)) / scale)
    rgb = (33, 102, 172) if value < 0 else (178, 24, 43)
    return f"background-color: rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.12 + 0.6 * a:.2f})"


def styled_scorecard(frame):
    """A pandas Styler of a scorecard (relative differences) with coloured cells and percentages."""
    return frame.style.format(lambda v: "—" if v is None or not np.isfinite(v) else f"{100 * v:+.1f} %") \
        .map(scorecard_colors)


def single_map(field: np.ndarray, x: np.ndarray, y: np.ndarray, *, title: str, units: str = "",
               outlines: tuple[np.ndarray, np.ndarray] | None = None, geo: bool = True,
               colorscale: str = "Viridis", height: int = 320) -> go.Figure:
    """One heatmap with its own colour scale (e.g. a latent band)."""
    fig = field_panels([(title, field)], x, y, outlines=outlines, units=units, geo=geo, max_cols=1,
                       colorscale=colorscale, height_per_row=height)
    return fig
