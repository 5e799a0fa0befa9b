"""Freshness of the nightly partitions, judged by the newest partition, not by the last run.

* The ``nightly_partition_materialized`` checks — run by ``nightly_freshness_schedule`` at 23:30 New
  York on weekdays and by nothing else — fail when the latest trading day whose deadline has passed
  (21:00 + ``SIGMASIGHT_FRESHNESS_GRACE_MINUTES``, default 120) has no materialisation. The check uses
  the NYSE calendar, so a holiday is never reported as late (the stock time-partition freshness checks
  would expect the *next* session there, because of ``end_offset=1``). Its metadata names the newest
  materialised partition and how many sessions it is behind.
* No Dagster ``FreshnessPolicy``: Dagster 1.13 evaluates a time-window policy on the asset's last
  materialisation of *any* partition, so backfilling an old day would read "fresh" after a missed night.
  The nightly check is the freshness signal.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DefaultScheduleStatus,
    define_asset_job,
    multi_asset_check,
    schedule,
)

from .. import calendar, config
from .partitions import TIMEZONE

GRACE_ENV = "SIGMASIGHT_FRESHNESS_GRACE_MINUTES"
DEFAULT_GRACE_MINUTES = 120
NIGHTLY_HOUR = 21

NIGHTLY_ASSETS = [AssetKey(k) for k in (
    "symbol_universe", "prices", "symbol_returns", "daily_valuations", "symbol_betas", "ridge_factors", "spread_factors",
    "factor_model", "factor_covariance", "replay_window_returns", "symbol_metrics", "portfolio_snapshots", "correlations",
    "aggregated_exposures", "stress_results", "portfolio_risk", "risk_contributions", "var_backtest")]

def grace_minutes() -> float:
    return config.positive_number(GRACE_ENV, DEFAULT_GRACE_MINUTES, cast=float, noun="a number of minutes")


# -- freshness of the nightly partitions -----------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc)


def expected_nightly_partition(now: datetime | None = None) -> str:
    """The latest trading day whose nightly deadline (21:00 New York + grace) has passed at ``now``."""
    now = pd.Timestamp(now or _now())
    local = now.tz_convert(TIMEZONE) if now.tzinfo else now.tz_localize("UTC").tz_convert(TIMEZONE)
    deadline_offset = pd.Timedelta(hours=NIGHTLY_HOUR) + pd.Timedelta(minutes=grace_minutes())
    day = (local - deadline_offset).tz_localize(None).normalize()
    sess = calendar.sessions_back(day, 1)
    return sess[-1].date().isoformat()


def newest_partition(instance, key: AssetKey) -> str | None:
    """The newest (latest-dated) materialised partition of ``key``, whenever it was materialised."""
    keys = instance.get_materialized_partitions(key)
    return max(keys) if keys else None


def sessions_behind(newest: str | None, expected: str) -> int:
    """Trading sessions from ``newest`` (exclusive) to ``expected`` (inclusive); -1 when nothing is there."""
    if newest is None:
        return -1
    if newest >= expected:
        return 0
    return len(calendar.sessions(pd.Timestamp(newest) + pd.Timedelta(days=1), expected))


@multi_asset_check(
    name="nightly_partition_materialized",
    specs=[AssetCheckSpec("nightly_partition_materialized", asset=key,
                          description="The latest trading day whose nightly deadline (21:00 New York + "
                                      "SIGMASIGHT_FRESHNESS_GRACE_MINUTES, default 120) has passed is materialised.")
           for key in NIGHTLY_ASSETS],
    can_subset=True,
    description="Freshness of the nightly partitions against the NYSE calendar (holidays are not late).",
)
def nightly_partition_materialized(context):
    expected = expected_nightly_partition()
    # Inside a run of (other, older) partitions — e.g. an asset backfill launched from the UI that
    # pulled the check in — lateness of today's partition is information, not that run's failure.
    tags = context.run.tags
    in_partition_run = "dagster/partition" in tags or "dagster/asset_partition_range_start" in tags
    severity = AssetCheckSeverity.WARN if in_partition_run else AssetCheckSeverity.ERROR
    for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
        key = check_key.asset_key
        found = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[expected]), limit=1).records
        passed = bool(found)
        newest = newest_partition(context.instance, key)
        meta = {"expected_partition": expected, "newest_partition": newest or "none",
                "sessions_behind": sessions_behind(newest, expected)}
        if found:
            meta["materialized_at"] = datetime.fromtimestamp(found[0].timestamp, tz=timezone.utc).isoformat()
        yield AssetCheckResult(
            asset_key=key,
            check_name="nightly_partition_materialized",
            passed=passed,
            severity=severity,
            description=(f"partition {expected} is materialised" if passed else
                         f"partition {expected} is overdue: not materialised by its nightly deadline; the newest "
                         f"materialised partition is {newest or 'none'} (fill the gap with a backfill: Jobs → "
                         "daily_risk_graph → Materialize, README Backfills)"),
            metadata=meta,
        )


nightly_freshness_job = define_asset_job(
    "nightly_freshness_checks",
    selection=AssetSelection.checks(nightly_partition_materialized),
    description="Evaluates nightly_partition_materialized on every nightly asset (no asset is materialised).",
)


@schedule(
    name="nightly_freshness_schedule",
    cron_schedule="30 23 * * 1-5",
    execution_timezone=TIMEZONE,
    job=nightly_freshness_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="23:30 America/New_York, Monday–Friday: checks that the day's nightly partitions arrived.",
)
def nightly_freshness_schedule(context):
    return {}


SCHEDULES = [nightly_freshness_schedule]
JOBS = [nightly_freshness_job]
ASSET_CHECKS = [nightly_partition_materialized]
