"""Per-symbol trailing returns and realised volatility as of each partition day."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sigmasight_assets.calc.frames import concat_parts
from sigmasight_assets.calc.returns import check_wide_frame, clean_prices, day_positions

__all__ = [
    "METRIC_COLUMNS",
    "LOOKBACKS",
    "VOL_WINDOWS",
    "VOL_MIN_FRACTION",
    "TRADING_DAYS_PER_YEAR",
    "symbol_returns_metrics",
]

METRIC_COLUMNS = [
    "date", "symbol", "return_1d", "return_mtd", "return_ytd", "return_1m", "return_3m",
    "return_1y", "volatility_21d", "volatility_63d",
]
#: column -> number of sessions back
LOOKBACKS = {"return_1d": 1, "return_1m": 21, "return_3m": 63, "return_1y": 252}
VOL_WINDOWS = {"volatility_21d": 21, "volatility_63d": 63}
#: a realised volatility needs at least this share of its window's returns present
VOL_MIN_FRACTION = 0.8
TRADING_DAYS_PER_YEAR = 252


def _vol_min_count(window: int) -> int:
    # 80 % rounded up: 17 of 21, 51 of 63.
    return max(2, math.ceil(VOL_MIN_FRACTION * window - 1e-9))


def _ratio_minus_one(values: np.ndarray, pos: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``P[pos] / P[base] - 1`` row-wise; a negative base (before the frame) gives NaN."""
    out = np.full((len(pos), values.shape[1]), np.nan)
    have = base >= 0
    if have.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[have] = values[pos[have]] / values[base[have]] - 1.0
    return out


def _period_base(index: pd.DatetimeIndex, days: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Row of the last session strictly before the month/year containing each day (-1: none)."""
    starts = days.to_period(freq).start_time
    return index.searchsorted(starts, side="left").astype(np.int64) - 1


def symbol_returns_metrics(prices_wide: pd.DataFrame, days) -> pd.DataFrame:
    """Trailing returns and realised volatility per symbol and day.

    Definitions for day ``D`` (row positions count sessions; prices are ``adj_close``):

    * ``return_1d`` = ``P_D / P_{D-1} - 1``; ``return_1m``, ``return_3m``, ``return_1y`` the same
      with 21, 63 and 252 sessions back.
    * ``return_mtd`` = ``P_D / P_B - 1`` with ``B`` the last session *before* the first day of
      ``D``'s month (the previous month's last close); ``return_ytd`` likewise with the previous
      year's last close.
    * ``volatility_21d`` / ``volatility_63d`` = sample standard deviation (ddof = 1) of the simple
      daily returns in the last 21 / 63 rows ending at ``D``, times ``sqrt(252)``.

    Units: decimal (0.05 = 5 %); volatilities annualised.

    NaN policy (nothing is filled or searched for further back):

    * a return is ``NaN`` if the price on ``D`` or on the base session is missing, or if the base
      session lies before the first row of the frame (e.g. a 1y return needs 253 rows);
    * a volatility uses the returns present in its window and is ``NaN`` unless at least 80 % of
      them are present (17 of 21, 51 of 63); a return spanning a missing price is itself missing
      (see ``returns.simple_returns``).

    Parameters
    ----------
    prices_wide : pandas.DataFrame
        Wide adjusted-close frame (sessions x symbols).
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``prices_wide``.

    Returns
    -------
    pandas.DataFrame
        Columns ``[date, symbol, return_1d, return_mtd, return_ytd, return_1m, return_3m,
        return_1y, volatility_21d, volatility_63d]``; one row per (day, symbol), ordered by date
        then column order -- including rows whose metrics are all ``NaN``, so missing stays
        visible and countable.
    """
    check_wide_frame(prices_wide, "prices_wide")
    values = clean_prices(prices_wide)
    days, pos = day_positions(prices_wide.index, days)
    n_days, n_sym = len(days), values.shape[1]

    out: dict[str, np.ndarray] = {}
    for col, lag in LOOKBACKS.items():
        out[col] = _ratio_minus_one(values, pos, pos - lag)
    out["return_mtd"] = _ratio_minus_one(values, pos, _period_base(prices_wide.index, days, "M"))
    out["return_ytd"] = _ratio_minus_one(values, pos, _period_base(prices_wide.index, days, "Y"))

    returns = np.full_like(values, np.nan)
    if len(values) > 1:
        returns[1:] = values[1:] / values[:-1] - 1.0
    for col, window in VOL_WINDOWS.items():
        need = _vol_min_count(window)
        vol = np.full((n_days, n_sym), np.nan)
        for i, p in enumerate(pos):
            block = returns[max(0, p - window + 1): p + 1]
            mask = np.isfinite(block)
            n = mask.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(mask, block, 0.0).sum(axis=0) / n
                dev = np.where(mask, block - mean, 0.0)
                var = (dev * dev).sum(axis=0) / (n - 1)
            vol[i] = np.where(n >= need, np.sqrt(var) * math.sqrt(TRADING_DAYS_PER_YEAR), np.nan)
        out[col] = vol

    parts = [{
        "date": np.repeat(days.to_numpy(dtype="datetime64[ns]"), n_sym),
        "symbol": np.tile(np.asarray(prices_wide.columns, dtype=object), n_days),
        **{col: out[col].ravel() for col in METRIC_COLUMNS[2:]},
    }]
    return concat_parts(parts, METRIC_COLUMNS)
