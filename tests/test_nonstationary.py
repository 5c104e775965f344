"""Non-stationary windows: target-period overlap with events.json events and holiday coordinates."""

import json

import numpy as np
import pytest
import xarray as xr

from core.data.nonstationary import (
    RULE,
    Event,
    event_overlaps,
    load_events,
    nonstationary_mask,
    read_events,
)
from core.data.windows import WindowDataset
from core.errors import DataError

T0 = np.datetime64("2020-01-01T00:00", "ns")
HOUR = np.timedelta64(1, "h")


def dataset(n_hours=48, holiday_hours=None, t_in=2, t_out=2, step=1):
    times = T0 + np.arange(n_hours) * HOUR
    da = xr.DataArray(np.zeros((n_hours, 1, 2, 2), np.float32), dims=("time", "channel", "y", "x"),
                      coords={"time": times, "channel": ["inflow"]}, attrs={"cadence": "PT1H", "grid": "city"})
    if holiday_hours is not None:
        flags = np.zeros(n_hours, bool)
        flags[list(holiday_hours)] = True
        da = da.assign_coords(holiday=("time", flags))
    return WindowDataset(da, t_in, t_out, step=step)


def events_file(tmp_path, events, version=1):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"version": version, "events": events}))
    return path


EVENTS = [
    {"kind": "concert", "start": "2020-01-02T06:00", "end": "2020-01-02T07:00", "place": "Workers' Stadium",
     "description": "evening concert", "size": 40000, "y": 10, "x": 12, "radius": 2},
    {"kind": "blocking", "start": "2020-01-01T10:00:00", "end": "2020-01-01T12:00:00", "place": "Europe",
     "description": "omega block", "size": 1.5, "lat": 55.0, "lon": 10.0, "radius": 15},
]


def test_rule_is_one_sentence():
    assert RULE.count(". ") == 0 and RULE.endswith(".") and "target" in RULE


def test_event_overlap_hand_computed(tmp_path):
    ds = dataset()  # window i: inputs i, i+1; targets i+2, i+3 → target period [i+2, i+4) h; i = 0 … 44
    assert len(ds) == 45
    path = events_file(tmp_path, EVENTS)
    mask = nonstationary_mask(ds, path)
    # blocking [10, 12): i+2 < 12 and i+4 > 10 → i ∈ {7, 8, 9}
    # concert [30, 31): i+2 < 31 and i+4 > 30 → i ∈ {27, 28}
    assert np.flatnonzero(mask).tolist() == [7, 8, 9, 27, 28]
    assert np.flatnonzero(nonstationary_mask(ds, path, kinds=["concert"])).tolist() == [27, 28]
    assert np.flatnonzero(nonstationary_mask(ds, tmp_path, kinds="blocking")).tolist() == [7, 8, 9]
    assert not nonstationary_mask(ds, path, kinds=["heat wave"]).any()
    # the same rule for a single interval
    tin, tout = ds.window_times(8)
    assert [e.kind for e in event_overlaps(read_events(path), tout[0], tout[-1] + HOUR)] == ["blocking"]


def test_instant_and_date_only_events(tmp_path):
    ds = dataset()
    inst = events_file(tmp_path, [{"kind": "match", "start": "2020-01-01T20:00", "end": "2020-01-01T20:00"}])
    # instant at 20 h: i+2 ≤ 20 < i+4 → i ∈ {17, 18}
    assert np.flatnonzero(nonstationary_mask(ds, inst)).tolist() == [17, 18]
    day = events_file(tmp_path, [{"kind": "holiday", "start": "2020-01-02", "end": "2020-01-02"}])
    # the whole of Jan 2 = [24, 48) h: i+2 < 48 and i+4 > 24 → i ∈ 21 … 44
    assert np.flatnonzero(nonstationary_mask(ds, day)).tolist() == list(range(21, 45))
    ev = read_events(day)[0]
    assert ev.end - ev.start == np.timedelta64(24, "h")


def test_step_extends_the_target_period_by_one_cadence(tmp_path):
    ds = dataset(t_in=1, t_out=2, step=3)  # targets i+3, i+6 → period [i+3, i+7)
    path = events_file(tmp_path, [{"kind": "spell", "start": "2020-01-01T12:30", "end": "2020-01-01T12:40"}])
    # 12:30 lies in [i+3, i+7) ⇔ i+3 ≤ 12.5 < i+7 → i ∈ {6, 7, 8, 9}
    assert np.flatnonzero(nonstationary_mask(ds, path)).tolist() == [6, 7, 8, 9]


def test_holiday_coordinate_without_events_file(tmp_path):
    ds = dataset(holiday_hours=range(40, 48))
    # holiday samples h ∈ [40, 48) cover [h, h+1): overlap with [i+2, i+4) ⇔ i+1 < h < i+4 → i ≥ 37
    expected = list(range(37, 45))
    assert np.flatnonzero(nonstationary_mask(ds)).tolist() == expected
    assert np.flatnonzero(nonstationary_mask(ds, tmp_path)).tolist() == expected  # folder, no events.json
    assert not nonstationary_mask(ds, use_holidays=False).any()
    assert not nonstationary_mask(ds, kinds=["concert"]).any()
    # combined with events: union
    path = events_file(tmp_path, EVENTS[1:])
    assert np.flatnonzero(nonstationary_mask(ds, path)).tolist() == [7, 8, 9] + expected


def test_no_events_no_holidays_is_all_false(tmp_path):
    mask = nonstationary_mask(dataset(), tmp_path)
    assert mask.dtype == bool and mask.shape == (45,) and not mask.any()
    assert not nonstationary_mask(dataset(), {"version": 1, "events": []}).any()


def test_event_objects_and_json_roundtrip(tmp_path):
    evs = read_events(events_file(tmp_path, EVENTS))
    assert [e.kind for e in evs] == ["blocking", "concert"]  # sorted by start
    assert evs[1].y == 10 and evs[1].radius == 2 and evs[1].size == 40000 and evs[0].lat == 55.0
    again = load_events({"version": 1, "events": [e.to_json() for e in evs]})
    assert again == evs
    assert load_events(evs) == evs and load_events(None) == []
    assert isinstance(evs[0], Event)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "invalid JSON"),
        (json.dumps({"version": 2, "events": []}), "unsupported events version 2"),
        (json.dumps({"version": 1, "events": {}}), "'events' must be a list"),
        (json.dumps({"version": 1, "events": [{"kind": "x", "start": "2020-01-01"}]}), r"lacks \['end'\]"),
        (json.dumps({"version": 1, "events": [{"kind": "x", "start": "2020-01-02", "end": "2020-01-01"}]}),
         "is before start"),
        (json.dumps({"version": 1, "events": [{"kind": "x", "start": "soon", "end": "2020-01-01"}]}),
         "not an ISO 8601"),
        (json.dumps({"version": 1, "events": [{"kind": "x", "start": "2020-01-01", "end": "2020-01-01",
                                                "radius": "big"}]}), "'radius' must be a finite number"),
    ],
)
def test_bad_events_files(tmp_path, content, message):
    path = tmp_path / "events.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        nonstationary_mask(dataset(), tmp_path)
    assert "events.json" in str(err.value)


def test_missing_events_file(tmp_path):
    with pytest.raises(DataError, match="events file not found"):
        nonstationary_mask(dataset(), tmp_path / "nope.json")
