"""Composition root of the ``sigmasight_assets`` code location: wires assets, checks, jobs,
schedules, sensors, resources and the default executor together; nothing else."""

from dagster import Definitions, apply_freshness_policy

from .defs import failures, freshness, schedules, sensors
from .defs.factor_covariance import factor_covariance
from .defs.jobs import JOBS, run_executor
from .defs.market_assets import daily_valuations, portfolios, prices, symbol_universe
from .defs.portfolio_assets import portfolio_analytics
from .defs.resources import MarketDataResource, WarehouseResource
from .defs.risk_assets import risk_analytics
from .defs.symbol_metrics import symbol_metrics
from .defs.symbol_regressions import factor_model, ridge_factors, spread_factors, symbol_betas


def _with_nightly_freshness(assets_def):
    """Attach the nightly freshness expectation (evaluated by the freshness daemon, shown in the UI)."""
    return assets_def.map_asset_specs(
        lambda spec: apply_freshness_policy(spec, freshness.NIGHTLY_FRESHNESS_POLICY)
        if spec.key in freshness.NIGHTLY_ASSETS else spec
    )


defs = Definitions(
    assets=[
        portfolios,  # observable source asset: no freshness policy
        *(
            _with_nightly_freshness(a)
            for a in (
                symbol_universe,
                prices,
                daily_valuations,
                symbol_betas,
                ridge_factors,
                spread_factors,
                factor_model,
                factor_covariance,
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
