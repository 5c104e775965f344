"""Non-stationary windows: the forecasts whose target period contains an event.

Rule (:data:`RULE`, written verbatim into ``s2kd_dataset.json`` as ``nonstationary_rule``):
a window is non-stationary when its target period — from its first target time up to one cadence
after its last target time — overlaps the period of any listed event (or of the selected kinds), or
contains a time flagged by the data's ``holiday`` coordinate.

Formally, with target times ``τ_1 … τ_T`` and cadence ``Δ`` the target period is the half-open
interval ``[τ_1, τ_T + Δ)`` (each frame stands for the slot it starts); an event ``[s, e)`` overlaps it
iff ``s < τ_T + Δ`` and ``e > τ_1`` (an instantaneous event ``s = e`` iff ``τ_1 ≤ s < τ_T + Δ``).  A
date-only event end (``"2015-10-07"``) means the end of that day.  A ``holiday`` sample at time ``h``
covers ``[h, h + Δ)``.

Events come from a dataset folder's ``events.json``::

    {"version": 1, "events": [{"kind", "start", "end", "place", "description", "size",
                               "lat"/"lon" or "y"/"x", "radius"}, ...]}

Datasets without ``events.json`` (e.g. real TaxiBJ) still get a non-stationary subset from their
``holiday`` time coordinate; datasets with neither have none (an all-False mask).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.splits import is_date_only, parse_time
from core.errors import DataError

RULE = (
    "A window is non-stationary when its target period (from its first target time up to one cadence "
    "after its last target time) overlaps the period of an event in events.json or contains a time "
    "flagged as a holiday."
)

EVENTS_NAME = "events.json"
EVENTS_VERSION = 1
HOLIDAY_KIND = "holiday"


@dataclass(frozen=True)
class Event:
    """One event of ``events.json``; ``start``/``end`` are ``datetime64[ns]`` (``end`` exclusive).

    Located events carry ``lat``/``lon`` (weather) or ``y``/``x`` (city grid) and a ``radius`` (same
    units: degrees or pixels); ``extra`` holds any other keys of the JSON object.
    """

    kind: str
    start: np.datetime64
    end: np.datetime64
    place: str = ""
    description: str = ""
    size: float | None = None
    lat: float | None = None
    lon: float | None = None
    y: float | None = None
    x: float | None = None
    radius: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (ISO times to the second; located keys only when set)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "start": str(np.datetime_as_string(self.start, unit="s")),
            "end": str(np.datetime_as_string(self.end, unit="s")),
            "place": self.place,
            "description": self.description,
        }
        for key in ("size", "lat", "lon", "y", "x", "radius"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _number(value: Any, key: str, where: str, path: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(f"{where}: '{key}' must be a finite number, got {value!r}", path=path)
    return float(value)


def parse_events(obj: Any, path: str | os.PathLike | None = None) -> list[Event]:
    """Validate a parsed ``events.json`` object and return its events sorted by start time."""
    if not isinstance(obj, dict):
        raise DataError("events file must be a JSON object", path=path)
    if obj.get("version") != EVENTS_VERSION:
        raise DataError(f"unsupported events version {obj.get('version')!r} (expected 1)", path=path)
    raw = obj.get("events")
    if not isinstance(raw, list):
        raise DataError("'events' must be a list", path=path)
    events = []
    for n, ev in enumerate(raw):
        where = f"event #{n}"
        if not isinstance(ev, dict):
            raise DataError(f"{where} must be a JSON object", path=path)
        missing = [k for k in ("kind", "start", "end") if k not in ev]
        if missing:
            raise DataError(f"{where} lacks {missing}", path=path)
        if not isinstance(ev["kind"], str) or not ev["kind"]:
            raise DataError(f"{where}: 'kind' must be a non-empty string", path=path)
        prefix = f"{os.fspath(path)}: " if path is not None else ""
        start = parse_time(ev["start"], f"{prefix}{where} ({ev['kind']}) start")
        end = parse_time(ev["end"], f"{prefix}{where} ({ev['kind']}) end", end=True)
        if end < start:
            raise DataError(f"{where} ({ev['kind']}): end {ev['end']} is before start {ev['start']}", path=path)
        if isinstance(ev["end"], str) and is_date_only(ev["end"]):
            end = end + np.timedelta64(1, "ns")  # whole day: exclusive end at the next midnight
        events.append(Event(
            kind=ev["kind"], start=start, end=end,
            place=str(ev.get("place", "")), description=str(ev.get("description", "")),
            **{k: _number(ev.get(k), k, where, path) for k in ("size", "lat", "lon", "y", "x", "radius")},
        ))
    events.sort(key=lambda e: (e.start, e.end, e.kind))
    return events


def read_events(path: str | os.PathLike) -> list[Event]:
    """Read ``events.json`` (``path`` is the file or a dataset folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / EVENTS_NAME
    if not p.exists():
        raise DataError("events file not found", path=p)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the events file ({exc.__class__.__name__})", path=p) from None
    return parse_events(obj, path=p)


def load_events(events: Any) -> list[Event]:
    """Normalise the ``events`` argument: None → [], a folder without events.json → [], a file path →
    :func:`read_events`, a parsed dict → :func:`parse_events`, a list of :class:`Event` → itself."""
    if events is None:
        return []
    if isinstance(events, (str, os.PathLike)):
        p = Path(events)
        if p.is_dir():
            return read_events(p) if (p / EVENTS_NAME).exists() else []
        return read_events(p)
    if isinstance(events, dict):
        return parse_events(events)
    if isinstance(events, (list, tuple)) and all(isinstance(e, Event) for e in events):
        return list(events)
    raise DataError(f"events: expected a path, a parsed events.json or a list of Event, got {type(events).__name__}")


def nonstationary_mask(
    dataset: Any,
    events: Any = None,
    kinds: Sequence[str] | None = None,
    use_holidays: bool = True,
) -> np.ndarray:
    """Boolean ``(len(dataset),)``: True for the windows that are non-stationary under :data:`RULE`.

    Args:
        dataset: a :class:`~core.data.windows.WindowDataset`.
        events: ``events.json`` path or dataset folder (a folder without one means no events), a parsed
            dict, a list of :class:`Event`, or None.
        kinds: only events of these kinds count (None = all).  The holiday coordinate counts when
            ``"holiday"`` is among ``kinds`` (or ``kinds`` is None) and ``use_holidays`` is True.
        use_holidays: whether a ``holiday`` time coordinate of the data flags windows.
    """
    evs = load_events(events)
    if kinds is not None:
        kinds = [str(k) for k in ([kinds] if isinstance(kinds, str) else kinds)]
        evs = [e for e in evs if e.kind in kinds]
    cadence = np.timedelta64(dataset.cadence, "ns")
    span_start = dataset.target_start_times.astype("datetime64[ns]")  # (N,)
    span_end = dataset.target_end_times.astype("datetime64[ns]") + cadence  # (N,) exclusive
    if span_start.size != len(dataset):
        raise DataError(
            f"nonstationary_mask: expected a WindowDataset ({type(dataset).__name__} has {len(dataset)} items "
            f"but {span_start.size} windows); for a subset use the parent's mask indexed by the subset"
        )
    mask = np.zeros(len(dataset), dtype=bool)

    if evs:
        starts = np.array([e.start for e in evs], dtype="datetime64[ns]")
        ends = np.array([e.end for e in evs], dtype="datetime64[ns]")
        ends = np.where(ends > starts, ends, starts + np.timedelta64(1, "ns"))  # instants: [s, s+1ns)
        # process events in blocks to bound memory (N × E booleans)
        for b in range(0, starts.size, 512):
            s, e = starts[b:b + 512], ends[b:b + 512]
            mask |= ((s[None, :] < span_end[:, None]) & (e[None, :] > span_start[:, None])).any(axis=1)

    if use_holidays and (kinds is None or HOLIDAY_KIND in kinds) and "holiday" in dataset.context_names:
        mask |= _holiday_mask(dataset, span_start, span_end, cadence)
    return mask


def _holiday_mask(dataset: Any, span_start: np.ndarray, span_end: np.ndarray,
                  cadence: np.timedelta64) -> np.ndarray:
    flags = np.asarray(dataset.time_coord("holiday"))
    if flags.dtype.kind not in "biu":
        raise DataError(f"the 'holiday' coordinate must be boolean, got dtype {flags.dtype}")
    h = np.sort(dataset.times[flags.astype(bool)].astype("datetime64[ns]"))
    if h.size == 0:
        return np.zeros(span_start.size, dtype=bool)
    # a holiday sample h covers [h, h + Δ): overlap iff span_start − Δ < h < span_end
    lo = np.searchsorted(h, span_start - cadence, side="right")
    hi = np.searchsorted(h, span_end, side="left")
    return hi > lo


def event_overlaps(events: Iterable[Event], start: np.datetime64, end: np.datetime64) -> list[Event]:
    """Events whose period overlaps the half-open interval ``[start, end)`` (same rule as the mask)."""
    start, end = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    out = []
    for e in events:
        e_end = e.end if e.end > e.start else e.start + np.timedelta64(1, "ns")
        if e.start < end and e_end > start:
            out.append(e)
    return out
