"""52-week high and low of stored prices (``daily_valuations`` when the provider publishes none).

For symbol ``s`` and day ``D``: ``week52_high = max(high)`` (``close`` where ``high`` is missing) and
``week52_low = min(low)`` (``close`` where ``low`` is missing) over the ``WEEK52_SESSIONS`` (252)
sessions ending at ``D``; NaN with fewer than ``WEEK52_MIN_OBS`` (200) observations, so a short
history is reported as missing rather than as a truncated range. Prices in USD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["WEEK52_SESSIONS", "WEEK52_MIN_OBS", "week52_range", "week52_from_extremes"]

WEEK52_SESSIONS = 252
WEEK52_MIN_OBS = 200


def week52_range(price_rows: pd.DataFrame, days: pd.DatetimeIndex, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """52-week high/low per symbol and day from stored prices (see the module docstring).

    Parameters
    ----------
    price_rows : DataFrame
        ``date, symbol, high, low, close`` rows covering ``sessions``.
    days : DatetimeIndex
        Days to report; each must be in ``sessions``.
    sessions : DatetimeIndex
        Every session from 251 sessions before the first day to the last day (missing rows stay
        missing, they are not skipped over).

    Returns
    -------
    DataFrame
        ``date, symbol, week52_high, week52_low``.
    """
    if price_rows.empty:
        return pd.DataFrame(columns=["date", "symbol", "week52_high", "week52_low"])
    hi = price_rows["high"].fillna(price_rows["close"])
    lo = price_rows["low"].fillna(price_rows["close"])
    wide_hi = price_rows.assign(v=hi).pivot(index="date", columns="symbol", values="v").reindex(sessions)
    wide_lo = price_rows.assign(v=lo).pivot(index="date", columns="symbol", values="v").reindex(sessions)
    r_hi = wide_hi.rolling(WEEK52_SESSIONS, min_periods=WEEK52_MIN_OBS).max().reindex(days)
    r_lo = wide_lo.rolling(WEEK52_SESSIONS, min_periods=WEEK52_MIN_OBS).min().reindex(days)
    out = pd.concat({"week52_high": r_hi.stack(), "week52_low": r_lo.stack()}, axis=1)
    out.index.names = ["date", "symbol"]
    return out.reset_index()


def week52_from_extremes(extremes: pd.DataFrame, day, symbols) -> pd.DataFrame:
    """:func:`week52_range` for one day from per-symbol aggregates over the day's 252-session window
    (``symbol, high, low, n_high, n_low``, e.g. ``Warehouse.price_extremes``): the same max/min and
    the same 200-observation rule."""
    e = extremes[extremes["symbol"].isin(list(symbols))]
    return pd.DataFrame({
        "date": pd.Timestamp(day),
        "symbol": e["symbol"].to_numpy(dtype=object),
        "week52_high": np.where(e["n_high"] >= WEEK52_MIN_OBS, e["high"], np.nan),
        "week52_low": np.where(e["n_low"] >= WEEK52_MIN_OBS, e["low"], np.nan),
    })
