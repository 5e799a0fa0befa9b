"""Composition root of the ``sigmasight_assets`` code location: wires assets, resources and automation."""

from dagster import Definitions

from .defs.jobs import daily_graph_job
from .defs.portfolio_assets import portfolio_analytics
from .defs.market_assets import daily_valuations, portfolios, prices, symbol_universe
from .defs.resources import MarketDataResource, WarehouseResource
from .defs.symbol_assets import factor_covariance, ridge_factors, spread_factors, symbol_betas, symbol_metrics

defs = Definitions(
    assets=[
        portfolios,
        symbol_universe,
        prices,
        daily_valuations,
        symbol_betas,
        ridge_factors,
        spread_factors,
        factor_covariance,
        symbol_metrics,
        portfolio_analytics,
    ],
    jobs=[daily_graph_job],
    resources={
        "warehouse": WarehouseResource(),
        "market_data": MarketDataResource(),
    },
)
