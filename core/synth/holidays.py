"""The official Chinese public-holiday calendar (State Council notices), 2013–2020.

Each holiday period lists its days off and the make-up working days (调休: a Saturday or Sunday that is
worked to bridge the break).  ``day_type`` turns a date into the kind of day that drives the crowd-flow
simulator: ``"workday"``, ``"weekend"``, ``"holiday"`` (an official day off) or ``"makeup"`` (a weekend
day that is worked, so it behaves like a workday).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["HolidayPeriod", "HOLIDAYS", "YEARS", "day_type", "holiday_periods", "is_day_off"]


@dataclass(frozen=True)
class HolidayPeriod:
    """One official holiday: ``name``, first and last day off (inclusive), make-up working days."""

    name: str
    start: dt.date
    end: dt.date
    makeup: tuple[dt.date, ...] = ()

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]


def _p(name: str, start: str, end: str, *makeup: str) -> HolidayPeriod:
    d = dt.date.fromisoformat
    return HolidayPeriod(name, d(start), d(end), tuple(d(m) for m in makeup))


#: Official holiday periods by the year of the State Council notice (a New Year holiday that starts on
#: 30/31 December belongs to the following year's notice).
HOLIDAYS: dict[int, tuple[HolidayPeriod, ...]] = {
    2013: (
        _p("New Year", "2013-01-01", "2013-01-03", "2013-01-05", "2013-01-06"),
        _p("Spring Festival", "2013-02-09", "2013-02-15", "2013-02-16", "2013-02-17"),
        _p("Qingming Festival", "2013-04-04", "2013-04-06", "2013-04-07"),
        _p("Labour Day", "2013-04-29", "2013-05-01", "2013-04-27", "2013-04-28"),
        _p("Dragon Boat Festival", "2013-06-10", "2013-06-12", "2013-06-08", "2013-06-09"),
        _p("Mid-Autumn Festival", "2013-09-19", "2013-09-21", "2013-09-22"),
        _p("National Day golden week", "2013-10-01", "2013-10-07", "2013-09-29", "2013-10-12"),
    ),
    2014: (
        _p("New Year", "2014-01-01", "2014-01-01"),
        _p("Spring Festival", "2014-01-31", "2014-02-06", "2014-01-26", "2014-02-08"),
        _p("Qingming Festival", "2014-04-05", "2014-04-07"),
        _p("Labour Day", "2014-05-01", "2014-05-03", "2014-05-04"),
        _p("Dragon Boat Festival", "2014-05-31", "2014-06-02"),
        _p("Mid-Autumn Festival", "2014-09-06", "2014-09-08"),
        _p("National Day golden week", "2014-10-01", "2014-10-07", "2014-09-28", "2014-10-11"),
    ),
    2015: (
        _p("New Year", "2015-01-01", "2015-01-03", "2015-01-04"),
        _p("Spring Festival", "2015-02-18", "2015-02-24", "2015-02-15", "2015-02-28"),
        _p("Qingming Festival", "2015-04-04", "2015-04-06"),
        _p("Labour Day", "2015-05-01", "2015-05-03"),
        _p("Dragon Boat Festival", "2015-06-20", "2015-06-22"),
        _p("Victory Day (70th anniversary)", "2015-09-03", "2015-09-05", "2015-09-06"),
        _p("Mid-Autumn Festival", "2015-09-26", "2015-09-27"),
        _p("National Day golden week", "2015-10-01", "2015-10-07", "2015-10-10"),
    ),
    2016: (
        _p("New Year", "2016-01-01", "2016-01-03"),
        _p("Spring Festival", "2016-02-07", "2016-02-13", "2016-02-06", "2016-02-14"),
        _p("Qingming Festival", "2016-04-02", "2016-04-04"),
        _p("Labour Day", "2016-04-30", "2016-05-02"),
        _p("Dragon Boat Festival", "2016-06-09", "2016-06-11", "2016-06-12"),
        _p("Mid-Autumn Festival", "2016-09-15", "2016-09-17", "2016-09-18"),
        _p("National Day golden week", "2016-10-01", "2016-10-07", "2016-10-08", "2016-10-09"),
    ),
    2017: (
        _p("New Year", "2016-12-31", "2017-01-02"),
        _p("Spring Festival", "2017-01-27", "2017-02-02", "2017-01-22", "2017-02-04"),
        _p("Qingming Festival", "2017-04-02", "2017-04-04", "2017-04-01"),
        _p("Labour Day", "2017-04-29", "2017-05-01"),
        _p("Dragon Boat Festival", "2017-05-28", "2017-05-30", "2017-05-27"),
        _p("National Day and Mid-Autumn", "2017-10-01", "2017-10-08", "2017-09-30"),
    ),
    2018: (
        _p("New Year", "2017-12-30", "2018-01-01"),
        _p("Spring Festival", "2018-02-15", "2018-02-21", "2018-02-11", "2018-02-24"),
        _p("Qingming Festival", "2018-04-05", "2018-04-07", "2018-04-08"),
        _p("Labour Day", "2018-04-29", "2018-05-01", "2018-04-28"),
        _p("Dragon Boat Festival", "2018-06-16", "2018-06-18"),
        _p("Mid-Autumn Festival", "2018-09-22", "2018-09-24"),
        _p("National Day golden week", "2018-10-01", "2018-10-07", "2018-09-29", "2018-09-30"),
    ),
    2019: (
        _p("New Year", "2018-12-30", "2019-01-01", "2018-12-29"),
        _p("Spring Festival", "2019-02-04", "2019-02-10", "2019-02-02", "2019-02-03"),
        _p("Qingming Festival", "2019-04-05", "2019-04-07"),
        _p("Labour Day", "2019-05-01", "2019-05-04", "2019-04-28", "2019-05-05"),
        _p("Dragon Boat Festival", "2019-06-07", "2019-06-09"),
        _p("Mid-Autumn Festival", "2019-09-13", "2019-09-15"),
        _p("National Day golden week", "2019-10-01", "2019-10-07", "2019-09-29", "2019-10-12"),
    ),
    2020: (
        _p("New Year", "2020-01-01", "2020-01-01"),
        _p("Spring Festival (extended)", "2020-01-24", "2020-02-02", "2020-01-19"),
        _p("Qingming Festival", "2020-04-04", "2020-04-06"),
        _p("Labour Day", "2020-05-01", "2020-05-05", "2020-04-26", "2020-05-09"),
        _p("Dragon Boat Festival", "2020-06-25", "2020-06-27", "2020-06-28"),
        _p("National Day and Mid-Autumn", "2020-10-01", "2020-10-08", "2020-09-27", "2020-10-10"),
    ),
}

#: Years whose calendar is known (dates from 30 Dec of the year before are covered by the next notice).
YEARS = tuple(sorted(HOLIDAYS))

_OFF: dict[dt.date, HolidayPeriod] = {}
_MAKEUP: dict[dt.date, HolidayPeriod] = {}
for _periods in HOLIDAYS.values():
    for _hp in _periods:
        for _d in _hp.days:
            _OFF[_d] = _hp
        for _d in _hp.makeup:
            _MAKEUP[_d] = _hp


def _check_year(day: dt.date) -> None:
    if not (YEARS[0] <= day.year <= YEARS[-1]):
        raise ValueError(f"no Chinese holiday calendar for {day.isoformat()} (known: {YEARS[0]}–{YEARS[-1]})")


def holiday_of(day: dt.date) -> HolidayPeriod | None:
    """The holiday period that ``day`` is a day off of, or None."""
    _check_year(day)
    return _OFF.get(day)


def day_type(day: dt.date) -> str:
    """``"holiday"``, ``"makeup"`` (worked weekend day), ``"weekend"`` or ``"workday"``."""
    _check_year(day)
    if day in _OFF:
        return "holiday"
    if day in _MAKEUP:
        return "makeup"
    return "weekend" if day.weekday() >= 5 else "workday"


def is_day_off(day: dt.date) -> bool:
    """True on official holidays and on ordinary weekends (not on make-up working days)."""
    return day_type(day) in ("holiday", "weekend")


def holiday_periods(start: dt.date, end: dt.date) -> list[HolidayPeriod]:
    """Holiday periods whose days off or make-up days touch ``[start, end]`` (inclusive), in date order."""
    _check_year(start)
    _check_year(end)
    out = []
    for periods in HOLIDAYS.values():
        for hp in periods:
            days = hp.days + list(hp.makeup)
            if any(start <= d <= end for d in days):
                out.append(hp)
    return sorted(set(out), key=lambda p: p.start)
