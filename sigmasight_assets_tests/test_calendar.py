"""NYSE calendar helpers and the shared ``trading_days`` partitions definition."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
from dagster import DailyPartitionsDefinition, PartitionKeyRange

from sigmasight_assets import calendar
from sigmasight_assets.config import DEFAULT_START_DATE, ConfigError
from sigmasight_assets.defs.partitions import TIMEZONE, build_trading_days, partition_days, trading_days

TS = pd.Timestamp

# The ten regular NYSE holidays of 2025 that fall on weekdays, plus the national day of mourning
# for President Carter (2025-01-09, an ad hoc closure).
NYSE_2025_CLOSED_WEEKDAYS = [
    "2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26",
    "2025-06-19", "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25",
]


def _keys_2025() -> list[str]:
    return trading_days.get_partition_keys_in_range(PartitionKeyRange("2025-01-02", "2025-12-31"))


# -- calendar.py -----------------------------------------------------------------------------------
def test_2025_has_exactly_250_sessions():
    s = calendar.sessions("2025-01-01", "2025-12-31")
    assert len(s) == 250
    assert s[0] == TS("2025-01-02") and s[-1] == TS("2025-12-31")
    # 261 weekdays minus 11 closures.
    assert len(pd.bdate_range("2025-01-01", "2025-12-31")) - len(NYSE_2025_CLOSED_WEEKDAYS) == 250


@pytest.mark.parametrize(
    "day, why",
    [
        ("2025-01-20", "Martin Luther King Jr. Day"),
        ("2025-01-09", "national day of mourning (Carter)"),
        ("2025-04-18", "Good Friday"),
        ("2025-07-04", "Independence Day"),
        ("2025-11-27", "Thanksgiving"),
        ("2025-01-04", "Saturday"),
        ("2025-01-05", "Sunday"),
    ],
)
def test_closed_days_are_not_sessions(day, why):
    assert not calendar.is_session(day), why
    assert TS(day) not in calendar.sessions("2025-01-01", "2025-12-31")


def test_no_weekend_sessions_and_regular_days_present():
    s = calendar.sessions("2025-01-01", "2025-12-31")
    assert (s.dayofweek < 5).all()
    assert calendar.is_session("2025-01-08") and calendar.is_session("2025-01-10")
    assert calendar.is_session("2025-04-17") and calendar.is_session("2025-04-21")


def test_holidays_2025_are_the_weekday_closures():
    assert [d.strftime("%Y-%m-%d") for d in calendar.holidays("2025-01-01", "2025-12-31")] == NYSE_2025_CLOSED_WEEKDAYS


def test_sessions_is_inclusive_on_both_ends():
    s = calendar.sessions("2025-01-16", "2025-01-22")
    assert list(s) == [TS("2025-01-16"), TS("2025-01-17"), TS("2025-01-21"), TS("2025-01-22")]


def test_sessions_back_includes_a_session_day_and_skips_holidays():
    assert list(calendar.sessions_back("2025-01-21", 3)) == [TS("2025-01-16"), TS("2025-01-17"), TS("2025-01-21")]
    # A non-session day is not included: the window ends at the previous session.
    assert list(calendar.sessions_back("2025-01-20", 2)) == [TS("2025-01-16"), TS("2025-01-17")]
    assert list(calendar.sessions_back("2025-01-04", 2)) == [TS("2025-01-02"), TS("2025-01-03")]
    # Across the 2025-01-09 closure.
    assert list(calendar.sessions_back("2025-01-10", 3)) == [TS("2025-01-07"), TS("2025-01-08"), TS("2025-01-10")]
    assert len(calendar.sessions_back("2025-12-31", 252)) == 252


def test_previous_session_is_strictly_before():
    assert calendar.previous_session("2025-01-21") == TS("2025-01-17")  # over MLK weekend
    assert calendar.previous_session("2025-01-10") == TS("2025-01-08")  # over the 01-09 closure
    assert calendar.previous_session("2025-01-22") == TS("2025-01-21")  # a plain day
    assert calendar.previous_session("2025-01-04") == TS("2025-01-03")  # from a Saturday
    assert calendar.previous_session("2025-04-21") == TS("2025-04-17")  # over Good Friday


def test_a_window_of_n_returns_reads_n_plus_one_prices():
    assert calendar.sessions_back("2025-01-21", 3)[0] == TS("2025-01-16")  # prices 16, 17, 21 → 2 returns
    d = TS("2025-06-30")
    for n in (1, 30, 90, 252):
        first = calendar.sessions_back(d, n + 1)[0]
        assert len(calendar.sessions(first, d)) == n + 1


# -- trading_days ----------------------------------------------------------------------------------
def test_trading_days_shape():
    assert isinstance(trading_days, DailyPartitionsDefinition)
    assert trading_days.timezone == TIMEZONE == "America/New_York"
    assert trading_days.end_offset == 1


def test_trading_days_2025_keys_equal_the_calendar():
    expected = [d.strftime("%Y-%m-%d") for d in calendar.sessions("2025-01-01", "2025-12-31")]
    keys = _keys_2025()
    assert keys == expected
    assert len(keys) == 250


def test_partition_days_round_trips_keys():
    keys = ["2025-01-21", "2025-01-16", "2025-01-17"]
    assert list(partition_days(keys)) == [TS("2025-01-16"), TS("2025-01-17"), TS("2025-01-21")]


@pytest.mark.parametrize("day", ["2025-01-04", "2025-01-05", "2025-01-20", "2025-01-09", "2025-04-18", "2025-12-25"])
def test_has_partition_key_false_for_weekends_and_holidays(day):
    assert not trading_days.has_partition_key(day)


@pytest.mark.parametrize("day", ["2025-01-02", "2025-01-08", "2025-01-10", "2025-04-17", "2025-12-31"])
def test_has_partition_key_true_for_sessions(day):
    assert trading_days.has_partition_key(day)


def test_first_key_is_the_default_start():
    assert DEFAULT_START_DATE == date(2000, 1, 3)
    assert trading_days.get_first_partition_key() == "2000-01-03"


def test_every_key_from_start_to_five_years_ahead_is_a_session():
    """Exclusions cover every NYSE closure from 2000 to today's year + 5 (ad hoc ones included)."""
    last_year = pd.Timestamp.today().year + 5
    keys = trading_days.get_partition_keys(current_time=datetime(last_year + 1, 1, 10, 12))
    keys = [k for k in keys if k <= f"{last_year}-12-31"]
    expected = [d.strftime("%Y-%m-%d") for d in calendar.sessions("2000-01-03", f"{last_year}-12-31")]
    assert keys == expected
    # Spot checks: ad hoc closures and far-future holidays.
    for closed in ("2001-09-11", "2012-10-29", "2018-12-05", f"{last_year}-12-25", f"{last_year}-07-04"):
        assert closed not in keys
    christmas_eve = date(last_year, 12, 24)
    if christmas_eve.weekday() < 5:
        assert christmas_eve.isoformat() in keys


def test_christmas_five_years_ahead_is_excluded():
    year = pd.Timestamp.today().year + 5
    now = datetime(year + 1, 1, 10, 12)  # pretend it is January after that year
    keys = trading_days.get_partition_keys(current_time=now)
    december = [k for k in keys if k.startswith(f"{year}-12-")]
    assert f"{year}-12-25" not in december
    # Every weekday of that December except Christmas is a key.
    expected = [d.strftime("%Y-%m-%d") for d in pd.bdate_range(f"{year}-12-01", f"{year}-12-31")
                if d != pd.Timestamp(f"{year}-12-25")]
    assert december == expected


def test_build_trading_days_with_another_start():
    td = build_trading_days(first=date(2015, 1, 2))
    assert td.get_first_partition_key() == "2015-01-02"
    # A start on a holiday begins at the next session.
    td = build_trading_days(first=date(2021, 1, 1))
    assert td.get_first_partition_key() == "2021-01-04"
    assert td.get_partition_keys_in_range(PartitionKeyRange("2025-01-02", "2025-12-31")) == _keys_2025()


def test_start_date_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_START_DATE", "2019-06-03")
    td = build_trading_days()
    assert td.get_first_partition_key() == "2019-06-03"
    assert not td.has_partition_key("2019-05-31")


def test_bad_start_date_names_the_variable(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_START_DATE", "03/06/2019")
    with pytest.raises(ConfigError, match="SIGMASIGHT_START_DATE.*03/06/2019"):
        build_trading_days()
