"""Operations: failed runs recorded in ``run_failures`` (and POSTed to the alert webhook), runs over the
maximum runtime flagged, the nightly freshness expectation, and a transient warehouse error retried
inside a real step before it could fail the run."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.events import DagsterEvent
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id
from sqlalchemy.exc import OperationalError

from sigmasight_assets.defs import failures, freshness
from sigmasight_assets.defs.failures import long_run_sensor, run_failure_sensor
from sigmasight_assets.defs.freshness import NIGHTLY_ASSETS, expected_nightly_partition
from sigmasight_assets.local_runs import materialize_range
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.warehouse import repository

NY = ZoneInfo("America/New_York")
DAY = "2025-03-05"


def res(url, spec="synthetic"):
    return {"warehouse": WarehouseResource(url=url), "market_data": MarketDataResource(spec=spec, seed=7)}


# -- a local webhook -------------------------------------------------------------------------------
class Hook:
    """An HTTP server on 127.0.0.1 (random port) that keeps the JSON bodies POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    with Hook() as h:
        yield h


# -- failed runs -----------------------------------------------------------------------------------
@pytest.fixture
def failed_run(warehouse, loaded_sample):
    """A real failed run: prices with a provider spec that does not exist."""
    instance = DagsterInstance.ephemeral()
    result = materialize_range(DAY, DAY, instance=instance, selection=["symbol_universe", "prices"],
                               resources=res(warehouse.url, spec="no-such-provider"), raise_on_error=False)
    assert not result.success
    return instance, result


def evaluate_failure_sensor(instance, result, url):
    ctx = build_run_status_sensor_context(
        sensor_name="run_failure_sensor", dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"warehouse": WarehouseResource(url=url)},
    ).for_run_failure()
    return run_failure_sensor(ctx)


def test_failed_run_is_recorded_with_step_partition_and_error(failed_run, warehouse, monkeypatch):
    monkeypatch.delenv("SIGMASIGHT_ALERT_WEBHOOK", raising=False)
    instance, result = failed_run
    evaluate_failure_sensor(instance, result, warehouse.url)
    rows = warehouse.read("run_failures")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["run_id"] == result.run_id and row["kind"] == "failure"
    assert row["job_name"] == result.dagster_run.job_name
    assert row["partition_range"] == DAY
    assert row["step_keys"] == "prices"
    assert "no-such-provider" in row["error"] and "SIGMASIGHT_MARKET_DATA" in row["error"]
    assert abs((pd.Timestamp.utcnow().tz_localize(None) - row["occurred_at"]).total_seconds()) < 600
    assert row["runtime_minutes"] >= 0
    # Evaluating the same failure again (a daemon restart) keeps one row.
    evaluate_failure_sensor(instance, result, warehouse.url)
    assert len(warehouse.read("run_failures")) == 1


def test_failure_is_posted_to_the_webhook(failed_run, warehouse, hook, monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_ALERT_WEBHOOK", hook.url)
    instance, result = failed_run
    evaluate_failure_sensor(instance, result, warehouse.url)
    [(content_type, payload)] = hook.received
    assert content_type == "application/json"
    assert payload["event"] == "run_failure"
    assert payload["run_id"] == result.run_id
    assert payload["partition_range"] == DAY and payload["step_keys"] == "prices"
    assert "no-such-provider" in payload["error"]


def test_unreachable_webhook_does_not_hide_the_failure(failed_run, warehouse, monkeypatch):
    with Hook() as h:
        dead = h.url  # closed when the block ends: nothing listens on that port any more
    monkeypatch.setenv("SIGMASIGHT_ALERT_WEBHOOK", dead)
    instance, result = failed_run
    evaluate_failure_sensor(instance, result, warehouse.url)
    assert list(warehouse.read("run_failures")["run_id"]) == [result.run_id]
    assert failures.post_alert({"x": 1}, url=dead, timeout=2) is False


def test_range_runs_are_labelled_with_their_range():
    assert failures.partition_label({"dagster/asset_partition_range_start": "2025-01-02",
                                     "dagster/asset_partition_range_end": "2025-03-31"}) == "2025-01-02...2025-03-31"
    assert failures.partition_label({"dagster/partition": "2025-01-02"}) == "2025-01-02"
    assert failures.partition_label({}) is None
    assert failures.trigger_label({"dagster/schedule_name": "nightly_risk_schedule"}) == "nightly_risk_schedule"
    assert failures.trigger_label({"sigmasight/trigger": "new_symbol_sensor",
                                   "dagster/sensor_name": "new_symbol_sensor"}) == "new_symbol_sensor"


# -- runs over the maximum runtime -----------------------------------------------------------------
def started_run(instance, tags) -> str:
    run = DagsterRun(job_name="daily_risk_graph", run_id=make_new_run_id(), status=DagsterRunStatus.NOT_STARTED,
                     tags=tags)
    instance.add_run(run)
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id)
    return run.run_id


class Clock:
    def __init__(self, offset_s: float):
        self.offset = offset_s

    def time(self):
        return time.time() + self.offset


def tick_long(instance, url, cursor=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource(url=url)})
    return long_run_sensor.evaluate_tick(ctx)


def test_long_run_is_flagged_once_after_the_limit(warehouse, hook, monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_ALERT_WEBHOOK", hook.url)
    monkeypatch.delenv("SIGMASIGHT_MAX_RUNTIME_MINUTES", raising=False)
    instance = DagsterInstance.ephemeral()
    run_id = started_run(instance, {"dagster/partition": DAY, "dagster/schedule_name": "nightly_risk_schedule"})

    monkeypatch.setattr(failures, "time", Clock(19 * 60))
    res = tick_long(instance, warehouse.url)
    assert "none over 20" in res.skip_message and warehouse.read("run_failures").empty

    monkeypatch.setattr(failures, "time", Clock(21 * 60))
    res = tick_long(instance, warehouse.url, res.cursor)
    assert run_id in res.skip_message
    [row] = warehouse.read("run_failures").to_dict("records")
    assert row["run_id"] == run_id and row["kind"] == "max_runtime"
    assert row["partition_range"] == DAY and row["trigger"] == "nightly_risk_schedule"
    assert 20.9 < row["runtime_minutes"] < 22 and "limit 20 min" in row["error"]
    assert [p["event"] for _, p in hook.received] == ["max_runtime"]

    # Flagged once, not on every tick; the run is not touched.
    res = tick_long(instance, warehouse.url, res.cursor)
    assert len(hook.received) == 1 and len(warehouse.read("run_failures")) == 1
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
    # Once it has finished, the cursor forgets it.
    instance.report_run_canceled(instance.get_run_by_id(run_id))
    res = tick_long(instance, warehouse.url, res.cursor)
    assert json.loads(res.cursor) == []


def test_max_runtime_is_configurable(warehouse, monkeypatch):
    instance = DagsterInstance.ephemeral()
    started_run(instance, {})
    monkeypatch.setattr(failures, "time", Clock(21 * 60))
    monkeypatch.setenv("SIGMASIGHT_MAX_RUNTIME_MINUTES", "30")
    assert "none over 30" in tick_long(instance, warehouse.url).skip_message
    monkeypatch.setenv("SIGMASIGHT_MAX_RUNTIME_MINUTES", "10")
    assert "flagged 1 run" in tick_long(instance, warehouse.url).skip_message
    monkeypatch.setenv("SIGMASIGHT_MAX_RUNTIME_MINUTES", "twenty")
    with pytest.raises(Exception, match="SIGMASIGHT_MAX_RUNTIME_MINUTES='twenty'"):
        tick_long(instance, warehouse.url)


# -- freshness --------------------------------------------------------------------------------------
@pytest.mark.parametrize("local, expected", [
    ("2025-01-21 23:30", "2025-01-21"),  # Tuesday after the deadline (21:00 + 2 h)
    ("2025-01-21 22:59", "2025-01-17"),  # before it: the previous session (MLK Day is not one)
    ("2025-01-20 23:30", "2025-01-17"),  # MLK Day: Friday's partition, the holiday is never "late"
    ("2025-01-18 12:00", "2025-01-17"),  # Saturday
    ("2025-01-09 23:30", "2025-01-08"),  # national day of mourning
    ("2025-03-10 23:30", "2025-03-10"),  # first Monday after the DST change
])
def test_expected_nightly_partition(local, expected):
    now = datetime.fromisoformat(local).replace(tzinfo=NY)
    assert expected_nightly_partition(now) == expected


def test_grace_is_configurable(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_FRESHNESS_GRACE_MINUTES", "30")
    assert expected_nightly_partition(datetime(2025, 1, 21, 21, 45, tzinfo=NY)) == "2025-01-21"


def test_freshness_checks_pass_only_for_assets_with_the_expected_partition(warehouse, loaded_sample, monkeypatch):
    from sigmasight_assets.definitions import defs

    instance = DagsterInstance.ephemeral()
    assert materialize_range(DAY, DAY, instance=instance, selection=["symbol_universe"], resources=res(warehouse.url)).success
    monkeypatch.setattr(freshness, "_now", lambda: datetime(2025, 3, 5, 23, 30, tzinfo=NY))
    result = defs.get_job_def("nightly_freshness_checks").execute_in_process(instance=instance, resources=res(warehouse.url))
    outcomes = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert set(outcomes) == {k.to_user_string() for k in NIGHTLY_ASSETS}
    assert outcomes["symbol_universe"].passed
    assert not outcomes["prices"].passed and "2025-03-05 is overdue" in outcomes["prices"].description
    # Next morning before the deadline nothing new is expected; Thursday 23:30 it is again overdue.
    monkeypatch.setattr(freshness, "_now", lambda: datetime(2025, 3, 6, 23, 30, tzinfo=NY))
    result = defs.get_job_def("nightly_freshness_checks").execute_in_process(instance=instance, resources=res(warehouse.url))
    assert not {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}["symbol_universe"].passed


def test_freshness_is_the_nightly_check_on_the_newest_partition_not_a_policy_on_the_last_run():
    """No time-window FreshnessPolicy (Dagster evaluates it on the last materialisation of any partition,
    so an old-day fill would read fresh); the nightly check runs on its own schedule only."""
    from sigmasight_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    assert {k.to_user_string(): graph.get(k).freshness_policy for k in graph.get_all_asset_keys()
            if graph.get(k).freshness_policy is not None} == {}
    schedule = defs.get_repository_def().get_schedule_def("nightly_freshness_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "30 23 * * 1-5", "America/New_York", "nightly_freshness_checks")
    daily = defs.resolve_job_def("daily_risk_graph")
    assert not [k for k in daily.asset_layer.asset_graph.asset_check_keys if k.name == "nightly_partition_materialized"]


def test_an_old_day_filled_after_a_missed_night_does_not_mask_it(warehouse, loaded_sample, monkeypatch):
    from sigmasight_assets.definitions import defs

    instance = DagsterInstance.ephemeral()
    # 2025-03-04 was materialised, the night of 2025-03-05 was missed, then an old day (03-03) is filled.
    for day in ("2025-03-04", "2025-03-03"):
        assert materialize_range(day, day, instance=instance, selection=["symbol_universe"],
                                 resources=res(warehouse.url)).success
    monkeypatch.setattr(freshness, "_now", lambda: datetime(2025, 3, 5, 23, 30, tzinfo=NY))
    result = defs.get_job_def("nightly_freshness_checks").execute_in_process(instance=instance, resources=res(warehouse.url))
    ev = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}["symbol_universe"]
    assert not ev.passed
    assert ev.metadata["newest_partition"].value == "2025-03-04" and ev.metadata["sessions_behind"].value == 1
    assert "the newest materialised partition is 2025-03-04" in ev.description


# -- transient warehouse errors ---------------------------------------------------------------------
def test_dropped_connection_is_retried_inside_the_step(warehouse, loaded_sample, monkeypatch):
    """The first COPY/INSERT into ``prices`` loses its connection: replace_partitions retries on a
    fresh transaction and the step — and the run — succeed with exactly the right rows."""
    original = repository.Warehouse._bulk_insert
    calls = {"prices": 0}

    def flaky(self, conn, table, frame):
        if table.name == "prices":
            calls["prices"] += 1
            if calls["prices"] == 1:
                raise OperationalError("COPY prices", {}, Exception("server closed the connection unexpectedly"))
        return original(self, conn, table, frame)

    monkeypatch.setattr(repository.Warehouse, "_bulk_insert", flaky)
    monkeypatch.setattr(repository.time, "sleep", lambda s: None)
    result = materialize_range(DAY, DAY, instance=DagsterInstance.ephemeral(), selection=["symbol_universe", "prices"],
                               resources=res(warehouse.url))
    assert result.success
    assert calls["prices"] == 2
    step_failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert step_failures == []
    stored = warehouse.read("prices", DAY, DAY)
    universe = warehouse.read("symbol_universe", DAY, DAY)
    assert not stored.duplicated(["date", "symbol"]).any()
    assert len(stored) > 0 and set(stored["symbol"]) <= set(universe.loc[universe["fetch"], "symbol"])


def test_a_non_transient_error_fails_the_step_and_keeps_the_old_rows(warehouse, loaded_sample, monkeypatch):
    assert materialize_range(DAY, DAY, instance=DagsterInstance.ephemeral(), selection=["symbol_universe", "prices"],
                             resources=res(warehouse.url)).success
    before = warehouse.read("prices", DAY, DAY)
    original = repository.Warehouse._bulk_insert

    def broken(self, conn, table, frame):
        if table.name == "prices":
            raise OperationalError("INSERT", {}, Exception("no such column: bogus"))
        return original(self, conn, table, frame)

    monkeypatch.setattr(repository.Warehouse, "_bulk_insert", broken)
    result = materialize_range(DAY, DAY, instance=DagsterInstance.ephemeral(), selection=["prices"],
                               resources=res(warehouse.url), raise_on_error=False)
    assert not result.success
    pd.testing.assert_frame_equal(warehouse.read("prices", DAY, DAY), before)
