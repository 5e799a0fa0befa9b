"""Tick tests of ``nightly_risk_schedule``: a run of that same day's partition on NYSE sessions, a
SkipReason that says why on weekends and holidays (MLK Day, the 2025-01-09 national day of mourning),
and the schedule's wiring (cron, time zone, job, description)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_schedule_context

from sigmasight_assets.defs.schedules import nightly_risk_schedule
from sigmasight_assets.defs.partitions import trading_days

NY = ZoneInfo("America/New_York")


def evaluate(when: datetime):
    """One tick as the scheduler daemon runs it: with the code location (to resolve the partition)."""
    from sigmasight_assets.definitions import defs

    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=when,
                                         repository_def=defs.get_repository_def())
        return nightly_risk_schedule.evaluate_tick(context)


def tick(day: str, hour: int = 21, minute: int = 0):
    return evaluate(datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=NY))


@pytest.mark.parametrize("day", ["2025-01-16", "2025-01-17", "2025-01-21", "2025-01-10"],
                         ids=["thursday", "friday", "tuesday-after-mlk", "friday-after-mourning-day"])
def test_session_requests_that_same_days_partition(day):
    result = tick(day)
    assert result.skip_message is None
    [request] = result.run_requests
    assert isinstance(request, RunRequest)
    assert request.partition_key == day
    assert request.run_key == f"nightly-{day}"
    assert request.tags["sigmasight/trigger"] == "nightly"


@pytest.mark.parametrize(
    "day, words",
    [
        ("2025-01-18", ["2025-01-18", "Saturday", "weekend"]),
        ("2025-01-19", ["2025-01-19", "Sunday", "weekend"]),
        ("2025-01-20", ["2025-01-20", "Monday", "holiday", "Martin Luther King"]),
        ("2025-01-09", ["2025-01-09", "Thursday", "holiday", "ad hoc"]),
    ],
    ids=["saturday", "sunday", "mlk-day", "national-mourning-day"],
)
def test_non_trading_day_is_skipped_with_the_reason(day, words):
    result = tick(day)
    assert result.run_requests == []
    assert result.skip_message
    for w in words:
        assert w in result.skip_message, result.skip_message


def test_holiday_does_not_fall_through_to_the_next_session():
    # The trap the schedule avoids: with end_offset=1 the "last partition" on MLK Day is the next
    # session, which a partitioned-job schedule would request.
    from dagster._core.definitions.partitions.context import partition_loading_context

    with partition_loading_context(datetime(2025, 1, 20, 21, 0, tzinfo=NY)):
        assert trading_days.get_last_partition_key() == "2025-01-21"
    assert tick("2025-01-20").run_requests == []


def test_the_time_zone_decides_the_day():
    # 21:00 New York on Friday is 02:00 UTC on Saturday: the partition is still Friday's.
    result = evaluate(datetime(2025, 1, 18, 2, 0, tzinfo=ZoneInfo("UTC")))
    assert [r.partition_key for r in result.run_requests] == ["2025-01-17"]


def test_schedule_wiring():
    assert nightly_risk_schedule.cron_schedule == "0 21 * * 1-5"
    assert nightly_risk_schedule.execution_timezone == "America/New_York"
    assert nightly_risk_schedule.job_name == "daily_risk_graph"
    assert "21:00" in nightly_risk_schedule.description


def test_kill_after_tag_is_opt_in(monkeypatch):
    from dagster import MAX_RUNTIME_SECONDS_TAG

    assert MAX_RUNTIME_SECONDS_TAG not in tick("2025-01-16").run_requests[0].tags
    monkeypatch.setenv("SIGMASIGHT_KILL_AFTER_MINUTES", "90")
    assert tick("2025-01-16").run_requests[0].tags[MAX_RUNTIME_SECONDS_TAG] == "5400"


def test_schedule_is_in_the_code_location():
    from sigmasight_assets.definitions import defs

    repo = defs.get_repository_def()
    assert repo.get_schedule_def("nightly_risk_schedule").job_name == "daily_risk_graph"
    # The cron fires on MLK Day too (weekdays at 21:00 New York, across DST); the tick itself skips it.
    from dagster._utils.schedules import cron_string_iterator

    it = cron_string_iterator(datetime(2025, 1, 17, 22, 0, tzinfo=NY).timestamp(),
                              nightly_risk_schedule.cron_schedule, nightly_risk_schedule.execution_timezone)
    ticks = [next(it) for _ in range(4)]
    assert [t.strftime("%Y-%m-%d %H:%M %a") for t in ticks] == [
        "2025-01-20 21:00 Mon", "2025-01-21 21:00 Tue", "2025-01-22 21:00 Wed", "2025-01-23 21:00 Thu"]
