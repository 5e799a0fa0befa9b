"""Composition root of the ``sigmasight_assets`` code location: wires assets, resources and automation."""

from dagster import Definitions

from .defs.market_assets import daily_valuations, portfolios, prices, symbol_universe
from .defs.resources import MarketDataResource, WarehouseResource

defs = Definitions(
    assets=[portfolios, symbol_universe, prices, daily_valuations],
    resources={
        "warehouse": WarehouseResource(),
        "market_data": MarketDataResource(),
    },
)
