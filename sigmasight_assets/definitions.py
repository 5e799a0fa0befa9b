"""Composition root of the ``sigmasight_assets`` code location: wires assets, checks, jobs,
schedules, sensors, resources and the default executor together; nothing else."""

from .defs import preflight

# Every setting is validated before an asset module reads one: a wrong setting stops the code
# location from loading with one line naming it, before any run can write anything.
preflight.check_settings()
preflight.limit_numeric_threads()

from dagster import Definitions  # noqa: E402

from .defs import failures, freshness, schedules, sensors
from .defs.factor_covariance import factor_covariance
from .defs.jobs import JOBS, ROUTE_HINT, run_executor
from .defs.market_assets import daily_valuations, portfolios, prices, symbol_returns, symbol_universe
from .defs.portfolio_assets import portfolio_analytics
from .defs.replays import replay_window_returns
from .defs.resources import MarketDataResource, WarehouseResource
from .defs.risk_assets import risk_analytics
from .defs.symbol_metrics import symbol_metrics
from .defs.symbol_regressions import factor_model, ridge_factors, spread_factors, symbol_betas


def _with_route_hint(assets_def):
    """Every partitioned asset's description names the backfill route for a few days."""
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(description=f"{spec.description or ''}\n\n{ROUTE_HINT}".strip()))


defs = Definitions(
    assets=[
        portfolios,  # observable source asset
        *(
            _with_route_hint(a)
            for a in (
                symbol_universe,
                prices,
                symbol_returns,
                daily_valuations,
                symbol_betas,
                ridge_factors,
                spread_factors,
                factor_model,
                factor_covariance,
                replay_window_returns,
                symbol_metrics,
                portfolio_analytics,
                risk_analytics,
            )
        ),
    ],
    asset_checks=[*freshness.ASSET_CHECKS],
    jobs=[*JOBS, *freshness.JOBS],
    schedules=[*schedules.SCHEDULES, *freshness.SCHEDULES],
    sensors=[*sensors.SENSORS, *failures.SENSORS],
    resources={
        "warehouse": WarehouseResource(),
        "market_data": MarketDataResource(),
    },
    # Runs of assets outside a job (a backfill from the asset graph or `sigmasight backfill`) use the
    # same executor as the daily job: one process per run.
    executor=run_executor,
)
