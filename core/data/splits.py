"""Train / validation / test splits of canonical fields along time.

Three ways to split, each returning ``{name: DataArray}`` (slices of the input, in time order):

* :func:`split_by_years` — whole calendar years; the WeatherBench standard is
  :data:`WEATHERBENCH_YEARS` (train 2010–2015, val 2016, test 2017–2018).
* :func:`split_by_dates` — inclusive ISO 8601 date ranges, e.g. the ``splits`` of a dataset folder's
  ``s2kd_dataset.json`` (read with :func:`read_dataset_manifest`, applied by :func:`split_from_manifest`).
  A date-only end (``"2016-12-31"``) includes that whole day; a date-time end is inclusive to the instant.
* :func:`split_by_last_days` — TaxiBJ convention: the last ``test_days`` calendar days are the test
  split, the ``val_days`` days before them validation, everything earlier training.

Splits that overlap or select no time step are refused with a :class:`DataError`.  Normalisation
statistics are then fitted on the ``"train"`` split only (:class:`core.data.normalize.Normalizer`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from core.errors import DataError

WEATHERBENCH_YEARS: Mapping[str, tuple[int, int]] = {
    "train": (2010, 2015),
    "val": (2016, 2016),
    "test": (2017, 2018),
}
"""The WeatherBench (Rasp et al. 2020) standard split, inclusive year ranges."""

TAXIBJ_TEST_DAYS = 28
"""TaxiBJ convention (ST-ResNet, OpenSTL): the last 28 days are the test split."""

MANIFEST_NAME = "s2kd_dataset.json"
SPLIT_NAMES = ("train", "val", "test")

_NS_PER_DAY = 86400 * 10**9
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


# ---------------------------------------------------------------------- time parsing
def parse_time(text: Any, setting: str, end: bool = False) -> np.datetime64:
    """Parse an ISO 8601 date or date-time to ``datetime64[ns]`` (UTC offsets are converted to UTC).

    With ``end=True`` a date-only string means the *end* of that day (the last nanosecond), so that
    inclusive date ranges cover the whole day.  Errors name ``setting``.
    """
    if isinstance(text, np.datetime64):
        return text.astype("datetime64[ns]")
    if not isinstance(text, str) or not _ISO_DATE.match(text.strip()):
        raise DataError(f"{setting}: {text!r} is not an ISO 8601 date or date-time (YYYY-MM-DD[Thh:mm])")
    try:
        ts = pd.Timestamp(text.strip())
    except (ValueError, TypeError):
        raise DataError(f"{setting}: {text!r} is not an ISO 8601 date or date-time") from None
    if ts is pd.NaT:
        raise DataError(f"{setting}: {text!r} is not an ISO 8601 date or date-time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    value = np.datetime64(ts.to_datetime64(), "ns")
    if end and is_date_only(text):
        value = value + np.timedelta64(_NS_PER_DAY - 1, "ns")
    return value


def is_date_only(text: str) -> bool:
    """True for a date without a time of day (``"2016-12-31"``)."""
    return "T" not in text.strip().upper() and " " not in text.strip() and len(text.strip()) <= 10


# ---------------------------------------------------------------------- core splitting
def _times(fields: Any) -> np.ndarray:
    import xarray as xr

    if not isinstance(fields, xr.DataArray) or "time" not in fields.dims:
        raise DataError("splits: expected an xarray.DataArray with a 'time' dimension")
    times = np.asarray(fields["time"].values)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise DataError(f"splits: the time coordinate is not datetime64 (got {times.dtype})")
    if times.size == 0:
        raise DataError("splits: the fields have no time steps")
    return times.astype("datetime64[ns]")


def _span(times: np.ndarray) -> str:
    fmt = lambda t: str(np.datetime_as_string(t, unit="s"))  # noqa: E731
    return f"{fmt(times.min())} … {fmt(times.max())}"


def split_by_ranges(
    fields: Any, ranges: Mapping[str, tuple[np.datetime64, np.datetime64]], what: str = "split"
) -> dict[str, Any]:
    """Split by inclusive ``datetime64`` ranges ``{name: (start, end)}``.

    Raises :class:`DataError` if a range is reversed, two ranges overlap, or a range selects nothing.
    """
    times = _times(fields)
    if not ranges:
        raise DataError(f"{what}: no splits given")
    items = [(str(n), np.datetime64(a, "ns"), np.datetime64(b, "ns")) for n, (a, b) in ranges.items()]
    for name, a, b in items:
        if a > b:
            raise DataError(f"{what} '{name}': start {_d(a)} is after end {_d(b)}")
    for i, (n1, a1, b1) in enumerate(items):
        for n2, a2, b2 in items[i + 1:]:
            if a1 <= b2 and a2 <= b1:
                raise DataError(
                    f"{what}: splits '{n1}' ({_d(a1)} … {_d(b1)}) and '{n2}' ({_d(a2)} … {_d(b2)}) overlap"
                )
    out: dict[str, Any] = {}
    for name, a, b in items:
        idx = np.flatnonzero((times >= a) & (times <= b))
        if idx.size == 0:
            raise DataError(
                f"{what} '{name}' ({_d(a)} … {_d(b)}) selects no time step of the data ({_span(times)})"
            )
        out[name] = fields.isel(time=idx)
    return out


def _d(t: np.datetime64) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


def split_by_years(
    fields: Any, years: Mapping[str, int | tuple[int, int] | Sequence[int]] = WEATHERBENCH_YEARS
) -> dict[str, Any]:
    """Split by calendar years: ``{name: year | (first, last) inclusive}``.

    Default: the WeatherBench standard, ``train`` 2010–2015, ``val`` 2016, ``test`` 2017–2018.
    """
    ranges = {}
    for name, spec in years.items():
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            first = last = int(spec)
        elif (isinstance(spec, (tuple, list)) and len(spec) == 2
              and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in spec)):
            first, last = int(spec[0]), int(spec[1])
        else:
            raise DataError(f"split '{name}': years must be a year or a (first, last) pair, got {spec!r}")
        if first > last:
            raise DataError(f"split '{name}': first year {first} is after last year {last}")
        ranges[name] = (
            np.datetime64(f"{first:04d}-01-01T00:00:00", "ns"),
            np.datetime64(f"{last + 1:04d}-01-01T00:00:00", "ns") - np.timedelta64(1, "ns"),
        )
    return split_by_ranges(fields, ranges, what="year split")


def split_by_dates(fields: Any, splits: Mapping[str, Sequence[str]], source: str | os.PathLike | None = None
                   ) -> dict[str, Any]:
    """Split by inclusive ISO date ranges ``{name: [start, end]}`` (the manifest's ``splits``).

    A date-only end includes its whole day.  ``source`` (a file) is named in error messages.
    """
    prefix = f"{os.fspath(source)}: " if source is not None else ""
    if not isinstance(splits, Mapping):
        raise DataError(f"{prefix}splits must be a mapping name → [start, end]")
    ranges = {}
    for name, rng in splits.items():
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise DataError(f"{prefix}split '{name}' must be [start, end], got {rng!r}")
        ranges[name] = (
            parse_time(rng[0], f"{prefix}split '{name}' start"),
            parse_time(rng[1], f"{prefix}split '{name}' end", end=True),
        )
    try:
        return split_by_ranges(fields, ranges, what="date split")
    except DataError as exc:
        if source is None:
            raise
        raise DataError(str(exc), path=source) from None


def split_by_last_days(
    fields: Any, test_days: int = TAXIBJ_TEST_DAYS, val_days: int | None = TAXIBJ_TEST_DAYS
) -> dict[str, Any]:
    """TaxiBJ-style split by calendar days counted back from the last time step.

    ``test`` = the last ``test_days`` calendar days present in the span of the data (the day of the last
    time step counts as one), ``val`` = the ``val_days`` days before (omitted when ``val_days`` is 0 or
    None), ``train`` = everything earlier.
    """
    for name, value in (("test_days", test_days), ("val_days", val_days or 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataError(f"last-days split: '{name}' must be a non-negative integer, got {value!r}")
    if test_days < 1:
        raise DataError(f"last-days split: 'test_days' must be ≥ 1, got {test_days}")
    times = _times(fields)
    last_day = times.max().astype("datetime64[D]")
    test_start = (last_day - np.timedelta64(int(test_days) - 1, "D")).astype("datetime64[ns]")
    day = np.timedelta64(1, "D").astype("timedelta64[ns]")
    one = np.timedelta64(1, "ns")
    end = last_day.astype("datetime64[ns]") + day - one
    ranges: dict[str, tuple[np.datetime64, np.datetime64]] = {}
    val_days = int(val_days or 0)
    val_start = test_start - val_days * day
    ranges["train"] = (times.min(), val_start - one)
    if val_days:
        ranges["val"] = (val_start, test_start - one)
    ranges["test"] = (test_start, end)
    if ranges["train"][0] > ranges["train"][1]:
        raise DataError(
            f"last-days split: the data ({_span(times)}) is too short for {val_days} validation and "
            f"{test_days} test days plus a training split"
        )
    return split_by_ranges(fields, ranges, what="last-days split")


# ---------------------------------------------------------------------- dataset manifest
def read_dataset_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``{root}/s2kd_dataset.json`` (or the file itself if ``root`` is a file).

    Required keys: ``kind``, ``source``, ``splits`` (``{"train": [start, end], "val": …, "test": …}``
    with ISO dates); optional keys are type-checked when present (``cadence`` ISO duration, ``t_in`` /
    ``t_out`` positive integers, ``nonstationary_rule`` string).  Returns the parsed dict.
    """
    path = Path(root)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise DataError(f"dataset manifest {MANIFEST_NAME} not found (is this a dataset folder?)", path=path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the dataset manifest ({exc.__class__.__name__})", path=path) from None
    if not isinstance(obj, dict):
        raise DataError("the dataset manifest must be a JSON object", path=path)
    missing = [k for k in ("kind", "source", "splits") if k not in obj]
    if missing:
        raise DataError(f"missing key(s) {missing} in the dataset manifest", path=path)
    for key in ("kind", "source"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise DataError(f"'{key}' must be a non-empty string", path=path)
    splits = obj["splits"]
    if not isinstance(splits, dict) or not splits:
        raise DataError("'splits' must be an object {name: [start, end]}", path=path)
    absent = [s for s in SPLIT_NAMES if s not in splits]
    if absent:
        raise DataError(f"'splits' lacks {absent} (needs {list(SPLIT_NAMES)})", path=path)
    ranges = {}
    for name, rng in splits.items():
        if not isinstance(rng, list) or len(rng) != 2:
            raise DataError(f"split '{name}' must be [start, end], got {rng!r}", path=path)
        a = parse_time(rng[0], f"{path}: split '{name}' start")
        b = parse_time(rng[1], f"{path}: split '{name}' end", end=True)
        if a > b:
            raise DataError(f"split '{name}': start {rng[0]} is after end {rng[1]}", path=path)
        ranges[name] = (a, b)
    names = list(ranges)
    for i, n1 in enumerate(names):
        for n2 in names[i + 1:]:
            (a1, b1), (a2, b2) = ranges[n1], ranges[n2]
            if a1 <= b2 and a2 <= b1:
                raise DataError(f"splits '{n1}' and '{n2}' overlap", path=path)
    if "cadence" in obj:
        from core.data.windows import parse_cadence

        try:
            parse_cadence(obj["cadence"])
        except DataError as exc:
            raise DataError(str(exc), path=path) from None
    for key in ("t_in", "t_out"):
        if key in obj and (isinstance(obj[key], bool) or not isinstance(obj[key], int) or obj[key] < 1):
            raise DataError(f"'{key}' must be a positive integer, got {obj[key]!r}", path=path)
    if "nonstationary_rule" in obj and not isinstance(obj["nonstationary_rule"], str):
        raise DataError("'nonstationary_rule' must be a string", path=path)
    return obj


def split_from_manifest(fields: Any, root: str | os.PathLike) -> dict[str, Any]:
    """Split ``fields`` by the date ranges of the dataset folder's ``s2kd_dataset.json``."""
    path = Path(root)
    manifest = read_dataset_manifest(path)
    source = path / MANIFEST_NAME if path.is_dir() else path
    return split_by_dates(fields, manifest["splits"], source=source)
