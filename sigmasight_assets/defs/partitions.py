"""``trading_days``: the one daily partitions definition every asset shares.

NYSE sessions in America/New_York: weekends are excluded by cron and every NYSE holiday (regular and
ad hoc, e.g. 2025-01-09) from the start date to five years ahead as explicit dates, taken from the
``exchange_calendars`` library. ``end_offset=1`` makes the day being traded a partition, so the 9 PM
run can target it; on a holiday the "last partition" is therefore the *next* session — always ask
``trading_days.has_partition_key(day)``.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from dagster import DailyPartitionsDefinition

from .. import calendar
from ..config import start_date

TIMEZONE = "America/New_York"
WEEKEND_CRONS = ["0 0 * * 6", "0 0 * * 0"]


def build_trading_days(first: date | None = None, years_ahead: int = 5) -> DailyPartitionsDefinition:
    first = first or start_date()
    last = date(max(pd.Timestamp.today().year, first.year) + years_ahead, 12, 31)
    holidays = [datetime(h.year, h.month, h.day) for h in calendar.holidays(first, last)]
    return DailyPartitionsDefinition(
        start_date=first.isoformat(),
        timezone=TIMEZONE,
        end_offset=1,
        exclusions=[*WEEKEND_CRONS, *holidays],
    )


trading_days = build_trading_days()


def partition_days(partition_keys) -> pd.DatetimeIndex:
    """Partition keys (YYYY-MM-DD) → sorted naive session timestamps."""
    return pd.DatetimeIndex(sorted(pd.Timestamp(k) for k in partition_keys))
