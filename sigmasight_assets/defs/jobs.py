"""Jobs: the daily graph (nightly run and the job route of backfills) and the removal of a
portfolio's rows.

Parallelism belongs to Dagster's runs: a long backfill becomes runs of at most
``PARTITIONS_PER_RUN`` partitions that the run queue executes side by side (``dagster.yaml``). Each
run executes its steps one after another in one process (``in_process_or_multiprocess`` executor):
the run is the unit of parallelism, and one process per run imports the code once and keeps the
run's price window for all of its steps. ``execution: {config: {multiprocess: {}}}`` still gives a
run one process per step.
"""


from dagster import (
    AssetSelection,
    Config,
    OpExecutionContext,
    define_asset_job,
    job,
    multi_or_in_process_executor,
    op,
)

from ..pipelines.portfolio import TABLES as PORTFOLIO_TABLES
from ..pipelines.portfolio import delete_portfolio_rows
from ..pipelines.risk import TABLES as RISK_TABLES
from . import freshness
from .common import PARTITIONS_PER_RUN
from .resources import WarehouseResource

# Runs of the daily job carry this tag; dagster.yaml lets one run per value execute at a time. A job
# backfill's runs are independent ranges of the whole graph whose look-back windows read the
# previous range: queued in date order and executed one after another, each reads what the one
# before stored. (Backfills of assets — the CLI route and the asset graph — are ordered by Dagster
# itself and are not limited by this tag.)
SERIAL_TAG = {"sigmasight/serial": "daily_risk_graph"}


# Shown on every partitioned asset's page: the asset graph's Materialize with a partition range is an
# asset backfill that Dagster expands along the look-back windows (README: Backfills).
ROUTE_HINT = (
    "To (re)compute a few days, use Jobs → daily_risk_graph → Materialize → the days (exactly those days), "
    "or `sigmasight backfill --from D1 --to D2`. Materialize with partitions here also targets every later "
    "day whose look-back window reads a chosen day (up to 252 days more per asset)."
)


def executor_config(config):
    """The executor's config for a run's ``execution.config``: in-process unless it asks for
    ``multiprocess``."""
    config = dict(config or {})
    if config.get("multiprocess") is not None:
        return {"multiprocess": config["multiprocess"]}
    return {"in_process": config.get("in_process") or {}}


run_executor = multi_or_in_process_executor.configured(executor_config, name="in_process_or_multiprocess")

# The whole graph for a partition (or a range): what the nightly schedule launches and what a
# backfill from the job's page runs. The freshness check is left out: it judges *today's* lateness
# and has its own schedule, so it must not run inside backfills of old days.
daily_graph_job = define_asset_job(
    "daily_risk_graph",
    selection=AssetSelection.all()
    - AssetSelection.assets("portfolios")
    - AssetSelection.checks(freshness.nightly_partition_materialized),
    executor_def=run_executor,
    # Job tags, not run_tags: Dagster 1.13 gives a job backfill's runs the job's tags only; without
    # run_tags the same tags also go to every other run of the job.
    tags=SERIAL_TAG,
    description=(
        "The route for a few days: materialise every partitioned asset (market data → symbol analytics → "
        "portfolio analytics) for a trading day or the selected days — exactly those days, unlike the asset "
        "graph's Materialize, which also targets later days whose look-back windows read them. A backfill "
        "from this job covers exactly the days selected, in "
        f"runs of at most {PARTITIONS_PER_RUN} days executed one after another in date order; for long "
        "histories use `sigmasight backfill` (parallel runs, README: Backfills)."
    ),
)


class RemovePortfoliosConfig(Config):
    """``portfolio_ids``: portfolios removed from the ledger whose analytics rows are to be deleted."""

    portfolio_ids: list[str]


@op(description="Delete every row (all days) of the given portfolios from every portfolio table, in one "
                "transaction.")
def delete_portfolio_analytics(context: OpExecutionContext, config: RemovePortfoliosConfig,
                               warehouse: WarehouseResource) -> dict:
    deleted = delete_portfolio_rows(warehouse.get(), config.portfolio_ids, (*PORTFOLIO_TABLES, *RISK_TABLES))
    context.log.info(f"removed portfolios {sorted(config.portfolio_ids)}: rows deleted {deleted}")
    return deleted


@job(name="remove_portfolio_rows", executor_def=run_executor,
     description="Deletes the analytics rows of portfolios removed from the ledger (requested by "
                 "portfolio_ledger_sensor).")
def remove_portfolios_job():
    delete_portfolio_analytics()


JOBS = [daily_graph_job, remove_portfolios_job]
