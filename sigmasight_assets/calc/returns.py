"""Daily returns from wide price frames.

Every function in ``sigmasight_assets.calc`` takes prices or returns as a *wide* frame:

* index   -- NYSE session dates, naive ``datetime64``, sorted ascending and unique. The caller
  guarantees that every session of the covered range is a row; a missing price is ``NaN``.
* columns -- symbols (or ETF tickers).
* values  -- a price (the as-traded ``close`` with its day's ``dividend`` and ``split_ratio`` for
  :func:`total_returns`; any one consistent price series for :func:`simple_returns`) or a daily
  return derived from it.

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

__all__ = ["simple_returns", "log_returns", "total_returns", "day_positions", "check_wide_frame", "clean_prices",
           "TOTAL", "ADJUSTED"]

#: Return bases of :func:`total_returns`.
TOTAL = "total"
ADJUSTED = "adjusted"


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


def total_returns(close_wide: pd.DataFrame, dividend_wide: pd.DataFrame,
                  split_wide: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Point-in-time daily total returns from as-traded closes and the day's corporate actions.

    Formula, on consecutive sessions (rows) ``t - 1, t``::

        r_t = s_t × (c_t + d_t) / c_{t-1} − 1

    with ``c`` the close as traded, ``d_t`` the cash dividend per share going ex on ``t`` and
    ``s_t`` the split ratio effective on ``t`` (new shares per old, 1 when none). A dividend on a
    split day is per *post-split* share, like the close of that day: one old share became ``s_t``
    new shares, each worth ``c_t`` and paying ``d_t``, against ``c_{t-1}`` for the old share the
    day before. Because ``r_t`` reads only rows ``t - 1`` and ``t``, a later split or dividend never
    changes it.

    Adjusted basis: a row whose dividend or split ratio is NaN carries no corporate actions (the
    provider knew only an adjusted close, which is then its close). When both rows ``t - 1`` and
    ``t`` are such rows, ``r_t = c_t / c_{t-1} − 1`` on that adjusted series and the basis is
    ``'adjusted'``; when both rows carry actions, the basis is ``'total'``.

    Parameters
    ----------
    close_wide : pandas.DataFrame
        Close per session (rows) and symbol (columns), USD, as traded (or adjusted, see above).
    dividend_wide : pandas.DataFrame
        Dividend per share going ex that session, USD (0 when none, NaN = actions unknown). Same
        index and columns as ``close_wide``.
    split_wide : pandas.DataFrame
        Split ratio effective that session (1 when none, NaN = actions unknown). Same index and
        columns.

    Returns
    -------
    returns : pandas.DataFrame
        Decimal returns (0.01 = 1 %), same index and columns; the first row is NaN.
    basis : pandas.DataFrame
        ``'total'`` or ``'adjusted'`` (:data:`TOTAL`, :data:`ADJUSTED`) where the return is
        defined, None where it is NaN.

    Notes
    -----
    NaN policy: ``r_t`` is NaN when either close is missing, non-finite or not positive (never 0,
    never the move across a gap: the return after a missing day is NaN too); when row ``t``'s
    dividend is negative or non-finite, or its split ratio is not a positive finite number (bad
    data is not guessed at); and when one of the two rows carries actions and the other does not
    (an as-traded close and an adjusted close are on different scales).

    Raises
    ------
    ValueError
        If the three frames do not share the same index and columns, or the index is not sorted
        and unique.
    """
    check_wide_frame(close_wide, "close_wide")
    for name, other in (("dividend_wide", dividend_wide), ("split_wide", split_wide)):
        check_wide_frame(other, name)
        if not (other.index.equals(close_wide.index) and other.columns.equals(close_wide.columns)):
            raise ValueError(f"{name} must have the index and columns of close_wide")
    close = clean_prices(close_wide)
    div = np.array(dividend_wide.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    split = np.array(split_wide.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    known = ~(np.isnan(div) | np.isnan(split))
    with np.errstate(invalid="ignore"):
        valid_actions = np.isfinite(div) & (div >= 0.0) & np.isfinite(split) & (split > 0.0)
    returns = np.full_like(close, np.nan)
    basis = np.full(close.shape, None, dtype=object)
    if close.shape[0] > 1:
        now_known, prev_known = known[1:], known[:-1]
        # Adjusted rows use s = 1, d = 0 so that one expression serves both bases.
        s = np.where(now_known, split[1:], 1.0)
        d = np.where(now_known, div[1:], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = s * (close[1:] + d) / close[:-1] - 1.0
        same_basis = now_known == prev_known
        ok = same_basis & np.where(now_known, valid_actions[1:], True) & np.isfinite(r)
        returns[1:] = np.where(ok, r, np.nan)
        basis[1:] = np.where(ok, np.where(now_known, TOTAL, ADJUSTED), None)
    return (pd.DataFrame(returns, index=close_wide.index, columns=close_wide.columns),
            pd.DataFrame(basis, index=close_wide.index, columns=close_wide.columns))


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
