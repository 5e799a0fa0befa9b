"""Long-short spread factor returns and rolling univariate spread betas (``spread_factors``).

A spread return is the difference of two ETF daily returns, ``s_t = r_long,t - r_short,t``, so a
symbol's spread beta measures its tilt towards the long leg *net of* the short leg (for three of
the four spreads the short leg is the market, SPY).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.calc.regression import (
    BETA_CAP,
    OK,
    aligned_regressors,
    aligned_returns,
    cap_betas,
    ols_block,
    ols_reasons,
    trailing_window,
    validate_window_params,
)
from sigmasight_assets.calc.frames import concat_parts
from sigmasight_assets.calc.returns import check_wide_frame, day_positions

__all__ = [
    "SPREAD_DEFINITIONS",
    "SPREAD_WINDOW",
    "SPREAD_MIN_OBSERVATIONS",
    "SPREAD_RESULT_COLUMNS",
    "SPREAD_SKIPPED_COLUMNS",
    "spread_returns",
    "rolling_spread_betas",
]

#: spread factor -> (long ETF, short ETF)
SPREAD_DEFINITIONS: dict[str, tuple[str, str]] = {
    "growth_value": ("VUG", "VTV"),
    "momentum_spread": ("MTUM", "SPY"),
    "size_spread": ("IWM", "SPY"),
    "quality_spread": ("QUAL", "SPY"),
}
SPREAD_WINDOW = 180
SPREAD_MIN_OBSERVATIONS = 60

SPREAD_RESULT_COLUMNS = [
    "date", "symbol", "factor", "beta", "raw_beta", "capped", "alpha", "r_squared", "observations",
]
SPREAD_SKIPPED_COLUMNS = ["date", "symbol", "factor", "reason"]


def spread_returns(etf_returns_wide: pd.DataFrame) -> pd.DataFrame:
    """Daily long-short spread returns from ETF returns.

    Formula: ``growth_value = VUG - VTV``, ``momentum_spread = MTUM - SPY``,
    ``size_spread = IWM - SPY``, ``quality_spread = QUAL - SPY`` (simple daily returns, decimal).

    Parameters
    ----------
    etf_returns_wide : pandas.DataFrame
        Wide daily returns whose columns include the ETF tickers above (other columns ignored).

    Returns
    -------
    pandas.DataFrame
        Same index; columns in ``SPREAD_DEFINITIONS`` order. NaN policy: a spread is missing on a
        session where either leg is missing.

    Raises
    ------
    KeyError
        If a required ETF column is absent.
    """
    check_wide_frame(etf_returns_wide, "etf_returns_wide")
    needed = sorted({t for pair in SPREAD_DEFINITIONS.values() for t in pair})
    missing = [t for t in needed if t not in etf_returns_wide.columns]
    if missing:
        raise KeyError(f"etf_returns_wide lacks the ETF columns {missing}")
    return pd.DataFrame(
        {
            name: etf_returns_wide[long].astype(float) - etf_returns_wide[short].astype(float)
            for name, (long, short) in SPREAD_DEFINITIONS.items()
        },
        index=etf_returns_wide.index,
    )


def rolling_spread_betas(
    returns_wide: pd.DataFrame,
    spreads_wide: pd.DataFrame,
    days,
    window: int = SPREAD_WINDOW,
    min_obs: int = SPREAD_MIN_OBSERVATIONS,
    cap: float = BETA_CAP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling univariate OLS beta of every symbol on each spread factor.

    For each day ``D``, symbol and spread column: OLS with intercept of ``r_symbol`` on
    ``s_spread`` over the complete cases of that pair within the last ``window`` rows ending at
    ``D`` -- the same core and formulas as ``regression.rolling_ols`` (one separate regression per
    spread, not a joint one, so each spread has its own r² and observation count).

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide simple daily returns (sessions x symbols).
    spreads_wide : pandas.DataFrame
        Spread returns, one column per spread factor (output of :func:`spread_returns`),
        aligned by date.
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``returns_wide``.
    window : int, default 180
    min_obs : int, default 60
    cap : float, default 5.0
        ``beta`` is ``raw_beta`` clipped to ``[-cap, cap]``.

    Returns
    -------
    results : pandas.DataFrame
        Columns ``[date, symbol, factor, beta, raw_beta, capped, alpha, r_squared,
        observations]``, ordered date, symbol, factor. ``alpha`` is the daily OLS intercept.
    skipped : pandas.DataFrame
        Columns ``[date, symbol, factor, reason]`` (per spread, since completeness and variance
        can differ between spreads): ``insufficient_history`` or ``constant_regressor``.
    """
    validate_window_params(window, min_obs, cap, least=3)
    values = aligned_returns(returns_wide)
    if not isinstance(spreads_wide, pd.DataFrame) or spreads_wide.shape[1] == 0:
        raise ValueError("spreads_wide must be a DataFrame with at least one spread column")
    x_all = aligned_regressors(spreads_wide, returns_wide.index, "spreads_wide")
    factors = np.asarray([str(c) for c in spreads_wide.columns], dtype=object)
    days, positions = day_positions(returns_wide.index, days)
    symbols = np.asarray(returns_wide.columns, dtype=object)
    n_sym, k = len(symbols), len(factors)

    res_parts: list[dict] = []
    skip_parts: list[dict] = []
    for day, pos in zip(days, positions):
        # One call for all spreads: the symbol-side work is shared between them.
        block = ols_block(
            trailing_window(values, pos, window), trailing_window(x_all, pos, window), min_obs, inference=False
        )
        # (symbols, factors) arrays raveled row-major: rows come out symbol by symbol.
        status = block.status.ravel()
        raw = block.raw_beta.ravel()
        alpha = block.alpha.ravel()
        r2 = block.r_squared.ravel()
        nobs = block.observations.ravel()
        sym = np.repeat(symbols, k)
        fac = np.tile(factors, n_sym)
        ok = status == OK
        beta, capped = cap_betas(raw[ok], cap)
        res_parts.append({
            "date": np.full(ok.sum(), day.to_datetime64()),
            "symbol": sym[ok],
            "factor": fac[ok],
            "beta": beta,
            "raw_beta": raw[ok],
            "capped": capped,
            "alpha": alpha[ok],
            "r_squared": r2[ok],
            "observations": nobs[ok],
        })
        bad = np.flatnonzero(~ok)
        if bad.size:
            skip_parts.append({
                "date": np.full(bad.size, day.to_datetime64()),
                "symbol": sym[bad],
                "factor": fac[bad],
                "reason": ols_reasons(status, nobs, bad, min_obs),
            })
    return (
        concat_parts(res_parts, SPREAD_RESULT_COLUMNS),
        concat_parts(skip_parts, SPREAD_SKIPPED_COLUMNS),
    )
