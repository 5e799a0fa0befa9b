"""In-process runs of a partition range, above the composition root: the CLI demo and the tests
materialise with the code location's own assets and resources, without a daemon."""

from __future__ import annotations

from dagster import materialize

from . import calendar
from .defs.common import range_tags
from .definitions import defs


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
    """Materialise ``selection`` (default every partitioned asset) over [start, end] — bounds moved
    inward to trading days — in one run, in this process."""
    start, end = snap_range(start, end)
    return materialize(
        partitioned_assets(),
        instance=instance,
        selection=selection,
        run_config=run_config,
        resources=resources or defs.resources,
        tags={**range_tags(start, end), **(tags or {})},
        raise_on_error=raise_on_error,
    )
