"""The factor ETFs: one definition for the whole calc layer.

Order matters: it is the row/column order of the factor covariance matrix and of the basis map
``A`` of ``factor_model`` (market, rates, then the six style ETFs).
"""

from __future__ import annotations

__all__ = ["MARKET_ETF", "RATES_ETF", "STYLE_ETFS", "FACTOR_ETFS"]

MARKET_ETF = "SPY"
RATES_ETF = "TLT"
#: Value, Growth, Momentum, Quality, Size, Low Volatility.
STYLE_ETFS: tuple[str, ...] = ("VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV")
FACTOR_ETFS: tuple[str, ...] = (MARKET_ETF, RATES_ETF, *STYLE_ETFS)
