"""Per-symbol trailing returns and realised volatility as of each partition day."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .frames import concat_columns
from .returns import check_wide_frame, day_positions

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
#: returns the longest metric reads (one year; MTD and YTD fit inside it), plus its base row
METRICS_WINDOW = max(LOOKBACKS.values())
VOL_WINDOWS = {"volatility_21d": 21, "volatility_63d": 63}
#: a realised volatility needs at least this share of its window's returns present
VOL_MIN_FRACTION = 0.8
TRADING_DAYS_PER_YEAR = 252


def _vol_min_count(window: int) -> int:
    # 80 % rounded up: 17 of 21, 51 of 63.
    return max(2, math.ceil(VOL_MIN_FRACTION * window - 1e-9))


def _compound(cum_log: np.ndarray, cum_missing: np.ndarray, pos: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``Π (1 + r)`` − 1 over rows ``base+1 .. pos`` from the cumulative sums of ``log1p(r)`` and of
    missing returns; NaN when a return of the span is missing or ``base`` is before the frame."""
    out = np.full((len(pos), cum_log.shape[1]), np.nan)
    have = base >= 0
    if have.any():
        p, b = pos[have], base[have]
        gaps = cum_missing[p] - cum_missing[b]
        with np.errstate(invalid="ignore", over="ignore"):
            out[have] = np.where(gaps == 0, np.expm1(cum_log[p] - cum_log[b]), np.nan)
    return out


def _period_base(index: pd.DatetimeIndex, days: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Row of the last session strictly before the month/year containing each day (-1: none)."""
    starts = days.to_period(freq).start_time
    return index.searchsorted(starts, side="left").astype(np.int64) - 1


def symbol_returns_metrics(returns_wide: pd.DataFrame, days) -> pd.DataFrame:
    """Trailing returns and realised volatility per symbol and day, from daily total returns.

    Definitions for day ``D`` (row positions count sessions; ``r`` the point-in-time daily total
    return of each row, as stored in ``symbol_returns``):

    * ``return_1d`` = ``r_D``; ``return_1m``, ``return_3m``, ``return_1y`` = ``Π (1 + r) − 1`` over
      the last 21, 63 and 252 rows ending at ``D`` (the total return of holding since the close
      21, 63, 252 sessions back, dividends reinvested, splits neutral).
    * ``return_mtd`` = the same product over the rows after ``B``, the last session *before* the
      first day of ``D``'s month (from the previous month's last close); ``return_ytd`` likewise
      from the previous year's last close.
    * ``volatility_21d`` / ``volatility_63d`` = sample standard deviation (ddof = 1) of the daily
      returns in the last 21 / 63 rows ending at ``D``, times ``sqrt(252)``.

    Units: decimal (0.05 = 5 %); volatilities annualised.

    NaN policy (nothing is filled or searched for further back):

    * a compounded return is ``NaN`` if any daily return of its span is missing (a missing close
      makes its own and the next day's return missing; compounding across it would hide a split
      or dividend of the gap), or if the span reaches before the first row of the frame (a 1y
      return needs 253 rows: the base row's own return is not used);
    * a volatility uses the returns present in its window and is ``NaN`` unless at least 80 % of
      them are present (17 of 21, 51 of 63).

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide daily total returns (sessions x symbols), every session a row.
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``returns_wide``.

    Returns
    -------
    pandas.DataFrame
        Columns ``[date, symbol, return_1d, return_mtd, return_ytd, return_1m, return_3m,
        return_1y, volatility_21d, volatility_63d]``; one row per (day, symbol), ordered by date
        then column order -- including rows whose metrics are all ``NaN``, so missing stays
        visible and countable.
    """
    check_wide_frame(returns_wide, "returns_wide")
    returns = np.array(returns_wide.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    with np.errstate(invalid="ignore"):
        returns[~(np.isfinite(returns) & (returns > -1.0))] = np.nan
    days, pos = day_positions(returns_wide.index, days)
    n_days, n_sym = len(days), returns.shape[1]
    missing = np.isnan(returns)
    cum_log = np.cumsum(np.where(missing, 0.0, np.log1p(np.where(missing, 0.0, returns))), axis=0)
    cum_missing = np.cumsum(missing, axis=0)

    out: dict[str, np.ndarray] = {}
    for col, lag in LOOKBACKS.items():
        out[col] = _compound(cum_log, cum_missing, pos, pos - lag)
    out["return_1d"] = returns[pos]  # exactly the stored return (no exp/log round trip)
    out["return_mtd"] = _compound(cum_log, cum_missing, pos, _period_base(returns_wide.index, days, "M"))
    out["return_ytd"] = _compound(cum_log, cum_missing, pos, _period_base(returns_wide.index, days, "Y"))

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
        "symbol": np.tile(np.asarray(returns_wide.columns, dtype=object), n_days),
        **{col: out[col].ravel() for col in METRIC_COLUMNS[2:]},
    }]
    return concat_columns(parts, METRIC_COLUMNS)
