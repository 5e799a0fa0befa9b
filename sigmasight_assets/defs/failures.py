"""Operations: failed runs and runs that take too long (freshness: ``freshness.py``).

* ``run_failure_sensor`` records every failed run of this code location (run id, job, partition or
  range, failed steps, error message, time) in the warehouse table ``run_failures`` and logs it; if
  ``SIGMASIGHT_ALERT_WEBHOOK`` is set it also POSTs the record as JSON to that URL.
* ``long_run_sensor`` flags runs still in progress after ``SIGMASIGHT_MAX_RUNTIME_MINUTES`` (default
  20, the legacy warning threshold): one ``run_failures`` row of kind ``max_runtime`` per run, a
  warning in the sensor log and the webhook. It never stops the run; an opt-in hard limit is the
  ``dagster/max_runtime`` tag (``SIGMASIGHT_KILL_AFTER_MINUTES``, enforced by run monitoring).
Provider outages are retried inside the assets (``RetryRequested`` with exponential backoff) and a
transient warehouse error inside ``Warehouse.replace_partitions``; what still fails lands here.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from datetime import datetime, timezone

import pandas as pd
from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from .. import config
from .resources import WarehouseResource

log = logging.getLogger(__name__)

MAX_RUNTIME_ENV = "SIGMASIGHT_MAX_RUNTIME_MINUTES"
DEFAULT_MAX_RUNTIME_MINUTES = 20.0
ALERT_ENV = "SIGMASIGHT_ALERT_WEBHOOK"


def max_runtime_minutes() -> float:
    return config.positive_number(MAX_RUNTIME_ENV, DEFAULT_MAX_RUNTIME_MINUTES, cast=float, noun="a number of minutes")


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
IN_PROCESS_TRIGGER = "in-process run"


def failure_row(instance, run, step_events, failure_event=None) -> dict:
    """The ``run_failures`` row of a failed run: its failed steps and their errors (else the run's
    own failure message), partition range, trigger and runtime."""
    errors = [e for e in (_error_text(ev) for ev in step_events) if e]
    if not errors:
        errors = [(_error_text(failure_event) if failure_event is not None else None) or "run failed"]
    record = instance.get_run_record_by_id(run.run_id)
    ended = getattr(record, "end_time", None) if record else None
    started = getattr(record, "start_time", None) if record else None
    return {
        "run_id": run.run_id,
        "kind": "failure",
        "job_name": run.job_name,
        "partition_range": partition_label(run.tags),
        "step_keys": ",".join(sorted({ev.step_key for ev in step_events if ev.step_key})) or None,
        "error": "\n".join(errors)[:4000],
        "trigger": trigger_label(run.tags) or IN_PROCESS_TRIGGER,
        "runtime_minutes": (ended - started) / 60 if ended and started else None,
        "occurred_at": _utc_naive(ended),
    }


def record_failed_run(instance, run_id: str, warehouse) -> dict | None:
    """Record a failed run that no daemon watches (an in-process run: ``sigmasight demo``, a script or
    a test) in ``run_failures``, as ``run_failure_sensor`` would; returns the row, or None when the
    run did not fail. ``warehouse`` is the run's warehouse resource. Never raises: a warehouse that
    cannot take the record must not hide the run's own failure; the problem is logged instead."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != DagsterRunStatus.FAILURE or warehouse is None:
        return None
    steps = [e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]
    failed = [e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)]
    row = failure_row(instance, run, steps, failed[-1] if failed else None)
    try:
        record_run_problem(warehouse.get(), row)
    except Exception as exc:  # noqa: BLE001 - reported, never raised over the run's own error
        log.warning(f"could not record failed run {run_id} in run_failures: {exc}")
        return None
    post_alert({"event": "run_failure", **row})
    return row


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
    row = failure_row(context.instance, run, context.get_step_failure_events(), context.failure_event)
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


SENSORS = [run_failure_sensor, long_run_sensor]
