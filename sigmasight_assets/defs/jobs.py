"""Jobs and in-process helpers to materialise partition ranges (used by the CLI demo and tests)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, materialize, multi_or_in_process_executor

from . import failures
from .common import MEMORY_HEAVY_TAG

# The executor of the daily job: Dagster's default (multiprocess, one step per core; `in_process` on
# request, as the sensors ask), except that a multiprocess run executes at most one memory-heavy step
# at a time. symbol_metrics and portfolio_analytics (whose chunk workers already use every core)
# would otherwise overlap at the end of the symbol phase and together pass 4 GB on a year's
# backfill. An executor, not run config: a job with its own run config refuses backfills that are
# launched with run config ("partition-scoped and backfill-scoped run config").
MEMORY_LIMITS = [{"key": k, "value": v, "limit": 1} for k, v in MEMORY_HEAVY_TAG.items()]


def _memory_limited(config):
    config = dict(config or {})
    if "in_process" in config:
        return config
    multiprocess = dict(config.get("multiprocess") or {})
    multiprocess.setdefault("tag_concurrency_limits", MEMORY_LIMITS)
    return {"multiprocess": multiprocess}


daily_executor = multi_or_in_process_executor.configured(_memory_limited, name="memory_limited_executor")

# The whole graph for a partition (or a range, as one run): what the nightly schedule launches.
# Its partitions are those of the selected assets (all share `trading_days`). The freshness check
# is left out: it judges *today's* lateness and has its own schedule, so it must not run inside
# backfills of old days.
daily_graph_job = define_asset_job(
    "daily_risk_graph",
    selection=AssetSelection.all()
    - AssetSelection.assets("portfolios")
    - AssetSelection.checks(failures.nightly_partition_materialized),
    executor_def=daily_executor,
    description="Materialise every partitioned asset (market data → symbol analytics → portfolio analytics) for a trading day or range.",
)


def range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def materialize_range(start: str, end: str, instance=None, selection=None, run_config=None, resources=None,
                      raise_on_error: bool = True):
    """Materialise ``selection`` (default all partitioned assets) over [start, end] in one run."""
    from ..definitions import defs

    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    return materialize(
        assets,
        instance=instance,
        selection=selection,
        run_config=run_config,
        resources=resources or defs.resources,
        tags=range_tags(start, end),
        raise_on_error=raise_on_error,
    )
