"""Summaries of opened data sources (what ``s2kd data inspect`` prints).

:func:`summarize` turns a canonical ``fields`` DataArray into a JSON-ready dict::

    {"source": "weatherbench", "root": "...", "grid": "latlon",
     "variables": ["z500", "t850"], "units": {"z500": "m**2 s**-2", "t850": "K"},
     "dims": {"time": 48, "channel": 2, "lat": 32, "lon": 64},
     "n_times": 48, "time_start": "2016-01-01T00:00:00", "time_end": "2016-01-02T23:00:00",
     "cadence": "PT1H", "n_gaps": 0,
     "lat_range": [-87.1875, 87.1875], "lon_range": [0.0, 354.375],      # lat-lon grids
     "time_coords": ["holiday", ...],                                     # context along time
     "stats": {"z500": {"min": ..., "mean": ..., "max": ...}, ...}}        # when stats=True

Computing ``stats`` reads every value, so it also runs the NaN/Inf check of lazy sources.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import duration_seconds, infer_cadence, iso


def summarize(da, stats: bool = True) -> dict[str, Any]:
    """JSON-ready summary of a canonical ``fields`` DataArray (see module docstring)."""
    import dask

    times = da["time"].values
    channels = [str(c) for c in da["channel"].values]
    cadence = str(da.attrs.get("cadence", ""))
    step, _ = infer_cadence(times)
    if cadence:
        step = duration_seconds(cadence)
    n_gaps = 0
    if step and times.size > 1:
        d = np.diff(times.astype("datetime64[ns]").astype("int64")) // 1_000_000_000
        n_gaps = int((d > step).sum())
    out: dict[str, Any] = {
        "source": da.attrs.get("source"),
        "root": da.attrs.get("root"),
        "grid": da.attrs.get("grid"),
        "variables": channels,
        "units": {c: str(u) for c, u in zip(channels, da["units"].values)},
        "dims": {str(k): int(v) for k, v in da.sizes.items()},
        "n_times": int(times.size),
        "time_start": iso(times[0]) if times.size else None,
        "time_end": iso(times[-1]) if times.size else None,
        "cadence": cadence or None,
        "n_gaps": n_gaps,
        "time_coords": sorted(str(n) for n, c in da.coords.items() if c.dims == ("time",) and n != "time"),
    }
    if "lat" in da.dims:
        out["lat_range"] = [float(da["lat"].min()), float(da["lat"].max())]
        out["lon_range"] = [float(da["lon"].min()), float(da["lon"].max())]
    for key in ("synthetic_time", "t_in", "t_out", "splits", "resolution"):
        if key in da.attrs:
            out[key] = da.attrs[key]
    if stats and times.size:
        spatial = tuple(d for d in da.dims if d not in ("channel",))
        with _progress("reading values"):
            mn, mean, mx = dask.compute(da.min(spatial), da.mean(spatial, dtype="float64"), da.max(spatial))
        out["stats"] = {c: {"min": float(mn.values[i]), "mean": float(mean.values[i]), "max": float(mx.values[i])}
                        for i, c in enumerate(channels)}
    return out


class _progress:
    """A tqdm bar on stderr over the dask tasks computed inside the ``with`` block (quiet when not a TTY)."""

    def __init__(self, desc: str):
        self.desc = desc

    def __enter__(self):
        from dask.callbacks import Callback
        from tqdm import tqdm

        bar = tqdm(desc=self.desc, unit="task", disable=None, leave=False)

        class _Bar(Callback):
            def _start_state(self, dsk, state):
                bar.reset(total=len(state["ready"]) + len(state["waiting"]) + len(state["finished"]))

            def _posttask(self, key, result, dsk, state, worker_id):
                bar.update(1)

        self._bar, self._cb = bar, _Bar()
        self._cb.__enter__()
        return self

    def __exit__(self, *exc):
        self._cb.__exit__(*exc)
        self._bar.close()
        return False


def inspect_source(name: str, root: str | os.PathLike, variables: Sequence[str] | None = None,
                   years: Iterable[int] | None = None, stats: bool = True, **kw: Any) -> dict[str, Any]:
    """Open source ``name`` at ``root`` (see :func:`core.data.open_source`) and :func:`summarize` it."""
    from core.data import open_source

    return summarize(open_source(name, root, variables=variables, years=years, **kw), stats=stats)


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of a :func:`summarize` dict (several lines)."""
    lines = [f"source     {summary['source']}  ({summary['grid']} grid)", f"root       {summary['root']}"]
    dims = " × ".join(f"{k} {v}" for k, v in summary["dims"].items())
    lines.append(f"dims       {dims}")
    lines.append(f"time       {summary['time_start']} .. {summary['time_end']}  ({summary['n_times']} steps, "
                 f"cadence {summary['cadence']}, {summary['n_gaps']} gap{'s' if summary['n_gaps'] != 1 else ''})")
    if "lat_range" in summary:
        lines.append(f"lat / lon  {summary['lat_range'][0]:g}..{summary['lat_range'][1]:g} / "
                     f"{summary['lon_range'][0]:g}..{summary['lon_range'][1]:g}")
    if summary.get("time_coords"):
        lines.append(f"context    {', '.join(summary['time_coords'])}")
    if summary.get("synthetic_time"):
        lines.append(f"samples    synthetic time axis, {summary.get('t_in')} → {summary.get('t_out')} frames; "
                     f"splits {', '.join(summary.get('splits', {}))}")
    lines.append("channels")
    width = max(len(c) for c in summary["variables"])
    for c in summary["variables"]:
        row = f"  {c:<{width}}  [{summary['units'][c]}]"
        st = summary.get("stats", {}).get(c)
        if st:
            row += f"  min {st['min']:.6g}  mean {st['mean']:.6g}  max {st['max']:.6g}"
        lines.append(row)
    return "\n".join(lines)
