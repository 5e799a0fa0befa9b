"""In-process runs of a partition range, above the composition root: the CLI demo and the tests
materialise with the code location's own assets and resources, without a daemon."""

from __future__ import annotations

from dagster import materialize

from .defs.common import range_tags
from .definitions import defs


def partitioned_assets() -> list:
    """Every partitioned asset of the code location."""
    return [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]


def materialize_range(start: str, end: str, instance=None, selection=None, run_config=None, resources=None,
                      raise_on_error: bool = True, tags: dict | None = None):
    """Materialise ``selection`` (default every partitioned asset) over [start, end] in one run, in
    this process."""
    return materialize(
        partitioned_assets(),
        instance=instance,
        selection=selection,
        run_config=run_config,
        resources=resources or defs.resources,
        tags={**range_tags(start, end), **(tags or {})},
        raise_on_error=raise_on_error,
    )
