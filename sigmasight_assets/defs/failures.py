"""Operations: failed runs, runs that take too long, and freshness of the nightly partitions.

* ``run_failure_sensor`` records every failed run of this code location (run id, job, partition or
  range, failed steps, error message, time) in the warehouse table ``run_failures`` and logs it; if
  ``SIGMASIGHT_ALERT_WEBHOOK`` is set it also POSTs the record as JSON to that URL.
* ``long_run_sensor`` flags runs still in progress after ``SIGMASIGHT_MAX_RUNTIME_MINUTES`` (default
  20, the legacy warning threshold): one ``run_failures`` row of kind ``max_runtime`` per run, a
  warning in the sensor log and the webhook. It never stops the run; an opt-in hard limit is the
  ``dagster/max_runtime`` tag (``SIGMASIGHT_KILL_AFTER_MINUTES``, enforced by run monitoring).
* Freshness: every nightly asset carries a time-window ``FreshnessPolicy`` (evaluated by the
  freshness daemon, shown in the UI), and the ``nightly_partition_materialized`` checks — run by
  ``nightly_freshness_schedule`` at 23:30 New York on weekdays — fail when the latest trading day
  whose deadline has passed (21:00 + ``SIGMASIGHT_FRESHNESS_GRACE_MINUTES``, default 120) has no
  materialisation. The check uses the NYSE calendar, so a holiday is never reported as late (the
  stock time-partition freshness checks would expect the *next* session there, because of
  ``end_offset=1``).

Provider outages are retried inside the assets (``RetryRequested`` with exponential backoff) and a
transient warehouse error inside ``Warehouse.replace_partitions``; what still fails lands here.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
    RunFailureSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    multi_asset_check,
    run_failure_sensor,
    schedule,
    sensor,
)

from .. import calendar, config
from .partitions import TIMEZONE
from .resources import WarehouseResource

log = logging.getLogger(__name__)

MAX_RUNTIME_ENV = "SIGMASIGHT_MAX_RUNTIME_MINUTES"
DEFAULT_MAX_RUNTIME_MINUTES = 20.0
ALERT_ENV = "SIGMASIGHT_ALERT_WEBHOOK"
GRACE_ENV = "SIGMASIGHT_FRESHNESS_GRACE_MINUTES"
DEFAULT_GRACE_MINUTES = 120
NIGHTLY_HOUR = 21

NIGHTLY_ASSETS = [AssetKey(k) for k in (
    "symbol_universe", "prices", "daily_valuations", "symbol_betas", "ridge_factors", "spread_factors",
    "factor_covariance", "symbol_metrics", "portfolio_snapshots", "correlations", "aggregated_exposures",
    "stress_results")]

# Coarse, calendar-free expectation for the UI: a nightly asset is materialised at least every
# ~3 days (a plain weekend, Fri 21:00 → Mon 21:00, is 72 h) and must not go 4 days (the longest
# regular closure, a holiday next to a weekend, is 96 h) — plus 2 h for the run itself.
NIGHTLY_FRESHNESS_POLICY = FreshnessPolicy.time_window(fail_window=timedelta(hours=98),
                                                       warn_window=timedelta(hours=74))


def _env_float(name: str, default: float) -> float:
    return config.positive_number(name, default, cast=float, noun="a number of minutes")


def max_runtime_minutes() -> float:
    return _env_float(MAX_RUNTIME_ENV, DEFAULT_MAX_RUNTIME_MINUTES)


def grace_minutes() -> float:
    return _env_float(GRACE_ENV, DEFAULT_GRACE_MINUTES)


# -- recording and alerting ------------------------------------------------------------------------
def _utc_naive(ts: float | None) -> datetime:
    value = datetime.fromtimestamp(ts, tz=timezone.utc) if ts else datetime.now(timezone.utc)
    return value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)


def partition_label(tags) -> str | None:
    """``2025-01-02`` for a one-partition run, ``start...end`` for a single-run range, else None."""
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def trigger_label(tags) -> str | None:
    return (tags.get("sigmasight/trigger") or tags.get("dagster/schedule_name") or tags.get("dagster/sensor_name")
            or (f"backfill {tags['dagster/backfill']}" if tags.get("dagster/backfill") else None))


def record_run_problem(wh, row: dict) -> None:
    """Write one ``run_failures`` row, replacing an earlier one for the same run and kind."""
    frame = pd.DataFrame([{**row, "recorded_at": _utc_naive(None)}])
    with wh.engine.begin() as conn:
        t = wh.table("run_failures")
        conn.execute(t.delete().where(t.c.run_id == row["run_id"], t.c.kind == row["kind"]))
        wh.insert(conn, "run_failures", frame)


def post_alert(payload: dict, url: str | None = None, timeout: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url`` (default ``SIGMASIGHT_ALERT_WEBHOOK``). Never raises:
    an unreachable webhook must not hide the failure it reports; it is logged instead."""
    url = url if url is not None else os.environ.get(ALERT_ENV, "").strip()
    if not url:
        return False
    body = json.dumps(payload, default=str).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "sigmasight-assets"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except Exception as exc:  # noqa: BLE001 - any transport problem is reported, not raised
        log.warning(f"alert webhook {url} failed: {exc}")
        return False


def _error_text(event) -> str | None:
    data = getattr(event, "event_specific_data", None)
    err = getattr(data, "error", None)
    if err is not None:
        cause = getattr(err, "cause", None)
        text = f"{err.cls_name}: {err.message.strip()}" if getattr(err, "cls_name", None) else err.message.strip()
        if cause is not None and getattr(cause, "message", None):
            text += f" (caused by {cause.cls_name}: {cause.message.strip()})"
        return text
    return getattr(event, "message", None)


# -- failed runs -----------------------------------------------------------------------------------
@run_failure_sensor(
    name="run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Records every failed run of this code location in the warehouse table run_failures (run id, "
        "job, partition or range, failed steps, error, time), logs it, and POSTs it as JSON to "
        "SIGMASIGHT_ALERT_WEBHOOK when that is set."
    ),
)
def run_failure_sensor(context: RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    step_events = context.get_step_failure_events()
    errors = [e for e in (_error_text(ev) for ev in step_events) if e]
    if not errors:
        errors = [_error_text(context.failure_event) or "run failed"]
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = getattr(record, "end_time", None) if record else None
    started = getattr(record, "start_time", None) if record else None
    row = {
        "run_id": run.run_id,
        "kind": "failure",
        "job_name": run.job_name,
        "partition_range": partition_label(run.tags),
        "step_keys": ",".join(sorted({ev.step_key for ev in step_events if ev.step_key})) or None,
        "error": "\n".join(errors)[:4000],
        "trigger": trigger_label(run.tags),
        "runtime_minutes": (ended - started) / 60 if ended and started else None,
        "occurred_at": _utc_naive(ended),
    }
    record_run_problem(warehouse.get(), row)
    context.log.error(
        f"run {run.run_id} of {run.job_name} failed (partition {row['partition_range'] or '-'}, steps "
        f"{row['step_keys'] or '-'}): {row['error'].splitlines()[0] if row['error'] else ''}"
    )
    post_alert({"event": "run_failure", **row})


# -- runs that take too long -----------------------------------------------------------------------
@sensor(
    name="long_run_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Flags runs still in progress after SIGMASIGHT_MAX_RUNTIME_MINUTES (default 20): a run_failures "
        "row of kind max_runtime, a warning and the alert webhook. It does not stop the run."
    ),
)
def long_run_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    limit = max_runtime_minutes()
    flagged = set(json.loads(context.cursor)) if context.cursor else set()
    now = time.time()
    records = context.instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    running = {r.dagster_run.run_id for r in records}
    new = []
    for rec in records:
        run = rec.dagster_run
        if run.run_id in flagged or rec.start_time is None:
            continue
        minutes = (now - rec.start_time) / 60
        if minutes <= limit:
            continue
        row = {
            "run_id": run.run_id,
            "kind": "max_runtime",
            "job_name": run.job_name,
            "partition_range": partition_label(run.tags),
            "step_keys": None,
            "error": f"still running after {minutes:.1f} min (limit {limit:g} min, {MAX_RUNTIME_ENV})",
            "trigger": trigger_label(run.tags),
            "runtime_minutes": minutes,
            "occurred_at": _utc_naive(now),
        }
        record_run_problem(warehouse.get(), row)
        context.log.warning(f"run {run.run_id} of {run.job_name} ({row['partition_range'] or '-'}) {row['error']}")
        post_alert({"event": "max_runtime", **row})
        new.append(run.run_id)
    # Keep only runs still in progress so the cursor stays small.
    cursor = json.dumps(sorted((flagged | set(new)) & running))
    if new:
        return SensorResult(skip_reason=SkipReason(f"flagged {len(new)} run(s) over {limit:g} min: {new}"), cursor=cursor)
    return SensorResult(skip_reason=SkipReason(f"{len(running)} run(s) in progress, none over {limit:g} min"),
                        cursor=cursor)


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
        meta = {"expected_partition": expected}
        if found:
            meta["materialized_at"] = datetime.fromtimestamp(found[0].timestamp, tz=timezone.utc).isoformat()
        yield AssetCheckResult(
            asset_key=key,
            check_name="nightly_partition_materialized",
            passed=passed,
            severity=severity,
            description=(f"partition {expected} is materialised" if passed else
                         f"partition {expected} is overdue: not materialised by its nightly deadline "
                         "(fill it with a backfill, README Operations / Backfills)"),
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


SENSORS = [run_failure_sensor, long_run_sensor]
SCHEDULES = [nightly_freshness_schedule]
JOBS = [nightly_freshness_job]
ASSET_CHECKS = [nightly_partition_materialized]
