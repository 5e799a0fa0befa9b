"""Market data providers behind one protocol (no Dagster imports here)."""

from .base import (
    PRICE_COLUMNS,
    REJECTED_COLUMNS,
    VALUATION_COLUMNS,
    FetchResult,
    MarketDataProvider,
    ProviderUnavailableError,
)

__all__ = [
    "PRICE_COLUMNS",
    "REJECTED_COLUMNS",
    "VALUATION_COLUMNS",
    "FetchResult",
    "MarketDataProvider",
    "ProviderUnavailableError",
]
