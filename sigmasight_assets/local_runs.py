"""In-process runs of a partition range, above the composition root: the CLI demo and the tests
materialise with the code location's own assets and resources, without a daemon."""

from __future__ import annotations

import uuid

from dagster import DagsterInstance, RunsFilter, materialize

from . import calendar
from .defs.common import range_tags
from .defs.failures import record_failed_run
from .definitions import defs

LOCAL_RUN_TAG = "sigmasight/local_run"  # finds the run again when it raised


def partitioned_assets() -> list:
    """Every partitioned asset of the code location."""
    return [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]


def snap_range(start: str, end: str) -> tuple[str, str]:
    """[start, end] moved inward to trading days (a range may start on a holiday or a weekend); a
    range without one raises ``ValueError`` naming it."""
    days = calendar.sessions(start, end)
    if not len(days):
        raise ValueError(f"no NYSE trading day in {start}..{end}")
    return days[0].date().isoformat(), days[-1].date().isoformat()


def materialize_range(start: str, end: str, instance=None, selection=None, run_config=None, resources=None,
                      raise_on_error: bool = True, tags: dict | None = None):
    """Materialise ``selection`` (default every partitioned asset) over [start, end] in one run, in
    this process; the bounds are moved inward to trading days.

    A failed run is recorded in the warehouse's ``run_failures`` like a daemon-launched one (no
    ``run_failure_sensor`` watches an in-process run), then raised or returned as Dagster does.
    """
    if instance is None:
        with DagsterInstance.ephemeral() as owned:
            return materialize_range(start, end, owned, selection, run_config, resources, raise_on_error, tags)
    start, end = snap_range(start, end)
    run_resources = resources or defs.resources
    marker = uuid.uuid4().hex
    try:
        result = materialize(
            partitioned_assets(),
            instance=instance,
            selection=selection,
            run_config=run_config,
            resources=run_resources,
            tags={**range_tags(start, end), **(tags or {}), LOCAL_RUN_TAG: marker},
            raise_on_error=raise_on_error,
        )
    except Exception:
        for run in instance.get_runs(RunsFilter(tags={LOCAL_RUN_TAG: marker}), limit=1):
            record_failed_run(instance, run.run_id, run_resources.get("warehouse"))
        raise
    if not result.success:
        record_failed_run(instance, result.run_id, run_resources.get("warehouse"))
    return result
