"""NYSE trading calendar (sessions and holidays) from the maintained ``exchange_calendars`` library.

Pure helpers with no Dagster import; the Dagster partitions definition is built from these in
``defs/partitions.py``. Dates are naive ``pandas.Timestamp`` at midnight (the session label).
"""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

# exchange_calendars computes holidays from rules, so far-future years are available offline.
_CAL_FIRST = "1990-01-02"


@lru_cache(maxsize=4)
def _calendar(last_year: int):
    return xcals.get_calendar("XNYS", start=_CAL_FIRST, end=f"{last_year}-12-31")


def _cal_for(d) -> "xcals.ExchangeCalendar":
    year = max(pd.Timestamp(d).year, pd.Timestamp.today().year) + 5
    return _calendar(year)


def sessions(start, end) -> pd.DatetimeIndex:
    """NYSE sessions in [start, end], both inclusive."""
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    s = _cal_for(end).sessions
    return s[(s >= start) & (s <= end)]


def is_session(d) -> bool:
    d = pd.Timestamp(d).normalize()
    return bool(d in _cal_for(d).sessions)


def holidays(start, end) -> list[pd.Timestamp]:
    """Weekdays in [start, end] on which NYSE is closed (regular and ad-hoc holidays)."""
    weekdays = pd.bdate_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize())
    return list(weekdays.difference(sessions(start, end)))


def sessions_back(day, n: int) -> pd.DatetimeIndex:
    """The ``n`` sessions ending at ``day`` (inclusive if ``day`` is a session), oldest first."""
    day = pd.Timestamp(day).normalize()
    s = _cal_for(day).sessions
    idx = s.searchsorted(day, side="right")
    return s[max(0, idx - n) : idx]


def previous_session(day) -> pd.Timestamp:
    """The last session strictly before ``day``."""
    day = pd.Timestamp(day).normalize()
    s = _cal_for(day).sessions
    return s[s.searchsorted(day, side="left") - 1]


def chunks(days: pd.DatetimeIndex, size: int) -> list[pd.DatetimeIndex]:
    """``days`` cut into consecutive pieces of at most ``size`` sessions (a range processed chunk by
    chunk keeps its working set bounded)."""
    return [days[i : i + size] for i in range(0, len(days), size)]


def holiday_name(day) -> str:
    """The name of the NYSE holiday on ``day`` (``ad hoc closure`` for an unscheduled one, ``market
    holiday`` when the calendar has no name for it)."""
    ts = pd.Timestamp(day).normalize()
    cal = _cal_for(ts)
    names = cal.regular_holidays.holidays(pd.Timestamp(ts.year, 1, 1), pd.Timestamp(ts.year, 12, 31), return_name=True)
    if ts in names.index:
        return str(names[ts])
    if ts in set(pd.DatetimeIndex(cal.adhoc_holidays)):
        return "ad hoc closure"
    return "market holiday"
