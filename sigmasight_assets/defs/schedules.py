"""``nightly_risk_schedule``: 21:00 America/New_York, Monday–Friday, the whole graph
(``daily_risk_graph``) for *that same day's* partition; a non-trading day is skipped with a reason.

With ``end_offset=1`` the "last partition" on a holiday is the *next* session, so the schedule asks
``trading_days.has_partition_key(day)`` instead of using ``build_schedule_from_partitioned_job``.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from .. import calendar
from .common import TRIGGER_TAG, kill_after_tags
from .jobs import daily_graph_job
from .partitions import TIMEZONE, trading_days

NY = ZoneInfo(TIMEZONE)


def closed_reason(day: date) -> str | None:
    """Why NYSE has no session on ``day`` (None on a trading day)."""
    key = day.isoformat()
    if trading_days.has_partition_key(key):
        return None
    if day.weekday() >= 5:
        return f"{key} is a {day:%A}: NYSE is closed on weekends, no partition to materialise"
    return f"{key} ({day:%A}) is an NYSE holiday ({calendar.holiday_name(day)}): the market is closed, no partition"


@schedule(
    name="nightly_risk_schedule",
    cron_schedule="0 21 * * 1-5",
    execution_timezone=TIMEZONE,
    job=daily_graph_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "21:00 America/New_York, Monday–Friday: materialise every partitioned asset for that same day's "
        "trading_days partition (the day's data is final after the close). Holidays such as MLK Day or "
        "the 2025-01-09 national day of mourning are skipped with the reason. Missed nights are filled "
        "by partition backfills (README, Backfills)."
    ),
)
def nightly_risk_schedule(context: ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(NY).date()
    reason = closed_reason(day)
    if reason:
        return SkipReason(reason)
    key = day.isoformat()
    return RunRequest(run_key=f"nightly-{key}", partition_key=key, tags={TRIGGER_TAG: "nightly", **kill_after_tags()})


SCHEDULES = [nightly_risk_schedule]
