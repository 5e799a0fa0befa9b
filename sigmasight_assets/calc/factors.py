"""The factor ETFs and the estimation windows of the symbol analytics: one definition of each.

Pure constants, importable from every layer (``calc`` is the bottom of the package), so the
providers, the pipelines, the Dagster assets and the maths all name the same tickers and windows.

Windows count daily returns ending at and including the partition day (trading sessions, no
look-ahead); "minimum observations" are the complete cases a result needs; caps bound a stored
beta to ``[-BETA_CAP, BETA_CAP]`` (the raw estimate is stored beside it).
"""

from __future__ import annotations

# -- the factor ETFs -----------------------------------------------------------------------------------
MARKET_ETF = "SPY"
RATES_ETF = "TLT"
#: style factor -> the ETF whose daily return stands for it (ridge style factors)
STYLE_ETFS: dict[str, str] = {
    "value": "VTV",
    "growth": "VUG",
    "momentum": "MTUM",
    "quality": "QUAL",
    "size": "IWM",
    "low_volatility": "USMV",
}
#: every day's universe carries these; also the order of the factor covariance matrix
FACTOR_ETFS: tuple[str, ...] = (MARKET_ETF, RATES_ETF, *STYLE_ETFS.values())
#: spread factor -> (long ETF, short ETF); the spread return is r_long - r_short
SPREAD_DEFINITIONS: dict[str, tuple[str, str]] = {
    "growth_value": (STYLE_ETFS["growth"], STYLE_ETFS["value"]),
    "momentum_spread": (STYLE_ETFS["momentum"], MARKET_ETF),
    "size_spread": (STYLE_ETFS["size"], MARKET_ETF),
    "quality_spread": (STYLE_ETFS["quality"], MARKET_ETF),
}

# -- market and rates betas (symbol_betas): OLS with intercept --------------------------------------------
BETA_WINDOW = 90
BETA_MIN_OBS = 30
BETA_CAP = 5.0

# -- ridge style factors (ridge_factors): standardised regressors, unpenalised intercept ------------------
RIDGE_WINDOW = 90
RIDGE_MIN_OBS = 30
RIDGE_ALPHA = 1.0  # penalty on the standardised scale

# -- spread factors (spread_factors): one univariate OLS per spread ----------------------------------------
SPREAD_WINDOW = 180
SPREAD_MIN_OBS = 60

# -- factor covariance (factor_covariance): EWMA of the ETF returns ------------------------------------------
COV_WINDOW = 252
COV_LAMBDA = 0.94
COV_MIN_OBS = 30
COV_CLIP = 0.95  # bound on |off-diagonal correlation|

__all__ = [
    "MARKET_ETF", "RATES_ETF", "STYLE_ETFS", "FACTOR_ETFS", "SPREAD_DEFINITIONS",
    "BETA_WINDOW", "BETA_MIN_OBS", "BETA_CAP", "RIDGE_WINDOW", "RIDGE_MIN_OBS", "RIDGE_ALPHA",
    "SPREAD_WINDOW", "SPREAD_MIN_OBS", "COV_WINDOW", "COV_LAMBDA", "COV_MIN_OBS", "COV_CLIP",
]
