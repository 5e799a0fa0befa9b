"""Daily returns from wide adjusted-close price frames.

Every function in ``sigmasight_assets.calc`` takes prices or returns as a *wide* frame:

* index   -- NYSE session dates, naive ``datetime64``, sorted ascending and unique. The caller
  guarantees that every session of the covered range is a row; a missing price is ``NaN``.
* columns -- symbols (or ETF tickers).
* values  -- ``adj_close`` (split- and dividend-adjusted close) or a daily return derived from it.

Windows everywhere in the calc layer count *rows* of the returns frame (trading sessions), end at
and include the partition day and never look ahead. Because row ``t`` of a returns frame needs the
price of row ``t - 1``, a window of ``w`` returns ending at day ``D`` needs the ``w + 1`` price
rows ``D - w .. D``. A window that would reach before the first row is clipped to the frame; the
callers must load ``w + 1`` sessions of prices before their first partition day if the result is
to be independent of how the backfill range was cut.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["simple_returns", "log_returns", "day_positions", "check_wide_frame", "clean_prices"]


def check_wide_frame(frame: pd.DataFrame, name: str = "frame") -> None:
    """Validate the wide-frame contract (DatetimeIndex, sorted, unique).

    Parameters
    ----------
    frame : pandas.DataFrame
        Wide frame indexed by session date.
    name : str
        Name used in error messages.

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame with a DatetimeIndex.
    ValueError
        If the index is not strictly increasing.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"{name} must be indexed by session dates (DatetimeIndex)")
    if not (frame.index.is_monotonic_increasing and frame.index.is_unique):
        raise ValueError(f"{name} index must be sorted ascending without duplicate dates")


def clean_prices(prices_wide: pd.DataFrame) -> np.ndarray:
    """Return the price values as a float array with invalid prices set to ``NaN``.

    An adjusted close that is not finite or not strictly positive cannot produce a return (a zero
    would divide by zero, a negative one is a data error), so it is treated as missing rather
    than allowed to produce ``inf`` or a sign flip.

    Parameters
    ----------
    prices_wide : pandas.DataFrame
        Wide adjusted-close frame.

    Returns
    -------
    numpy.ndarray
        C-contiguous float64 array of shape ``(sessions, symbols)``.
    """
    values = np.array(prices_wide.to_numpy(dtype=float, na_value=np.nan), dtype=float, order="C")
    with np.errstate(invalid="ignore"):
        values[~(np.isfinite(values) & (values > 0.0))] = np.nan
    return values


def _ratio(prices_wide: pd.DataFrame) -> np.ndarray:
    check_wide_frame(prices_wide, "prices_wide")
    values = clean_prices(prices_wide)
    ratio = np.full_like(values, np.nan)
    if values.shape[0] > 1:
        # NaN on either side propagates through the division: no fill, no spanning of a gap.
        ratio[1:] = values[1:] / values[:-1]
    return ratio


def simple_returns(prices_wide: pd.DataFrame) -> pd.DataFrame:
    """Simple daily returns on consecutive sessions.

    Formula: ``r_t = P_t / P_{t-1} - 1`` where ``t - 1`` is the previous *row* (the previous
    trading session, since every session is a row).

    Parameters
    ----------
    prices_wide : pandas.DataFrame
        Wide adjusted-close frame (sessions x symbols).

    Returns
    -------
    pandas.DataFrame
        Same index and columns as the input; decimal returns (0.01 = 1 %). The first row is
        ``NaN`` (no previous session in the frame).

    Notes
    -----
    NaN policy: ``r_t`` is ``NaN`` when ``P_t`` or ``P_{t-1}`` is missing, non-finite or not
    strictly positive. Missing prices are never filled and a return never spans a gap (the
    return after a missing day is ``NaN`` as well, not the two-day move).
    """
    ratio = _ratio(prices_wide)
    return pd.DataFrame(ratio - 1.0, index=prices_wide.index, columns=prices_wide.columns)


def log_returns(prices_wide: pd.DataFrame) -> pd.DataFrame:
    """Logarithmic daily returns on consecutive sessions.

    Formula: ``l_t = ln(P_t / P_{t-1})``; same conventions and NaN policy as
    :func:`simple_returns`.

    Parameters
    ----------
    prices_wide : pandas.DataFrame
        Wide adjusted-close frame (sessions x symbols).

    Returns
    -------
    pandas.DataFrame
        Same index and columns as the input; natural-log returns, first row ``NaN``.
    """
    ratio = _ratio(prices_wide)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(ratio)
    return pd.DataFrame(logs, index=prices_wide.index, columns=prices_wide.columns)


def day_positions(index: pd.DatetimeIndex, days: Iterable | pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Resolve partition days to row positions of a wide frame.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Index of the wide frame.
    days : DatetimeIndex or iterable of dates
        Partition days to compute. Duplicates are dropped and the days are sorted so results are
        always produced in date order.

    Returns
    -------
    days : pandas.DatetimeIndex
        The sorted unique days.
    positions : numpy.ndarray
        Integer row position of each day in ``index``.

    Raises
    ------
    ValueError
        If a day is not a row of ``index`` (silently skipping it would hide a missing session).
    """
    days = pd.DatetimeIndex(pd.to_datetime(pd.Index(days))).unique().sort_values()
    positions = index.get_indexer(days)
    if (positions < 0).any():
        missing = [d.date().isoformat() for d in days[positions < 0][:5]]
        raise ValueError(f"days not present in the frame index: {missing}")
    return days, positions.astype(np.int64)
