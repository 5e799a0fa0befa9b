"""Composition root of the ``sigmasight_assets`` code location: wires assets, resources and automation."""

from dagster import Definitions, apply_freshness_policy

from .defs import automation, failures
from .defs.jobs import daily_graph_job
from .defs.portfolio_assets import portfolio_analytics
from .defs.market_assets import daily_valuations, portfolios, prices, symbol_universe
from .defs.resources import MarketDataResource, WarehouseResource
from .defs.symbol_assets import factor_covariance, ridge_factors, spread_factors, symbol_betas, symbol_metrics


def _with_nightly_freshness(assets_def):
    """Attach the nightly freshness expectation (evaluated by the freshness daemon, shown in the UI)."""
    return assets_def.map_asset_specs(
        lambda spec: apply_freshness_policy(spec, failures.NIGHTLY_FRESHNESS_POLICY)
        if spec.key in failures.NIGHTLY_ASSETS else spec
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
                factor_covariance,
                symbol_metrics,
                portfolio_analytics,
            )
        ),
    ],
    asset_checks=[*failures.ASSET_CHECKS],
    jobs=[daily_graph_job, *failures.JOBS],
    schedules=[*automation.SCHEDULES, *failures.SCHEDULES],
    sensors=[*automation.SENSORS, *failures.SENSORS],
    resources={
        "warehouse": WarehouseResource(),
        "market_data": MarketDataResource(),
    },
)
