"""The one reader of price and return windows, shared by the symbol and portfolio pipelines.

Every analytic of a run reads overlapping windows of the same returns (betas and ridge 90,
spreads 180, covariance and metrics 252, correlations 90, snapshot volatility 63) and a few sessions
of prices (position valuation): a :class:`WindowReader` keeps the ``total_return`` of
``symbol_returns`` and the ``close`` and ``adj_close`` of ``prices`` it has read as wide arrays
(sessions × symbols, one :class:`WideCache` per table) and reads from the warehouse only what it
lacks — new symbols or earlier sessions (then from the table's look-back before the first session
asked), or the sessions after the ones it holds (a later chunk of the range). One reader per run
(:func:`window_reader` keys it by the Dagster run id), so the steps of an in-process run share it.
Within a run, ``prices`` and ``symbol_returns`` are stored before any of their readers starts, so
a cached window equals a fresh read.

Returns are read through :meth:`WindowReader.returns` only: the point-in-time total returns of
``symbol_returns`` (DESIGN §5 Returns), never a return computed across days from a stored price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.factors import BETA_WINDOW, COV_WINDOW, RIDGE_WINDOW, SPREAD_WINDOW
from ..calc.metrics import METRICS_WINDOW

PRICE_COLUMNS = ("close", "adj_close")
RETURN_COLUMN = "total_return"
# A read reaches back at least this many sessions before the LAST session asked for: the widest
# look-back of the run's steps (252 returns), so the steps that follow — whatever their window — are
# served from the cache instead of reading again further back. Anchored at the last session, not the
# first: a step asking for its own 90-session window would otherwise read 90 + 252 sessions.
LOOKBACK_SESSIONS = max(BETA_WINDOW, RIDGE_WINDOW, SPREAD_WINDOW, COV_WINDOW, METRICS_WINDOW) + 1
# Prices are read only for valuation (the day, the previous session and the stale look-back) and the
# day's close of symbol_metrics: a short look-back.
PRICE_LOOKBACK_SESSIONS = 10
READ_SLICE = 42  # sessions per warehouse query


class WideCache:
    """Columns of one table over sessions × symbols, cached as wide arrays; reads only what it lacks."""

    def __init__(self, wh, table: str, columns: tuple[str, ...], lookback: int):
        self.wh, self.table, self.columns, self.lookback = wh, table, columns, lookback
        self.sessions = pd.DatetimeIndex([])
        self.symbols = pd.Index([], dtype=object)
        self.values: dict[str, np.ndarray] = {c: np.empty((0, 0)) for c in columns}
        self.sessions_read = 0

    def get(self, column: str, syms: pd.Index, want: pd.DatetimeIndex) -> pd.DataFrame:
        self._ensure(syms, want)
        if not len(syms) or not len(want):
            return pd.DataFrame(index=want, columns=syms, dtype=float)
        rows = self.sessions.get_indexer(want)
        cols = self.symbols.get_indexer(syms)
        return pd.DataFrame(self.values[column][np.ix_(rows, cols)], index=want, columns=syms)

    def _ensure(self, syms: pd.Index, want: pd.DatetimeIndex) -> None:
        if not len(want) or not len(syms):
            return
        reach = min(want[0], calendar.sessions_back(want[-1], self.lookback)[0])
        if not len(self.sessions):
            sessions = calendar.sessions(reach, want[-1])
            self.values, self.sessions, self.symbols = self._read(syms, sessions), sessions, syms
            return
        # Only what is lacking is read: the held symbols' earlier or later sessions, then the new
        # symbols' columns over every session held (a few ETFs must not re-read 5,000 symbols).
        if want[0] < self.sessions[0]:
            head = calendar.sessions(reach, self.sessions[0] - pd.Timedelta(days=1))
            more = self._read(self.symbols, head)
            self.values = {c: np.vstack([more[c], self.values[c]]) for c in self.columns}
            self.sessions = head.append(self.sessions)
        if want[-1] > self.sessions[-1]:
            tail = calendar.sessions(self.sessions[-1] + pd.Timedelta(days=1), want[-1])
            more = self._read(self.symbols, tail)
            self.values = {c: np.vstack([self.values[c], more[c]]) for c in self.columns}
            self.sessions = self.sessions.append(tail)
        new = syms.difference(self.symbols, sort=False)
        if len(new):
            more = self._read(new, self.sessions)
            self.values = {c: np.hstack([self.values[c], more[c]]) for c in self.columns}
            self.symbols = self.symbols.append(new)

    def _read(self, symbols: pd.Index, sessions: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        # Slices of sessions: the long rows of one query (5,000 symbols × a year is 1.3M rows, ~3× their
        # size in transient Python objects) never exceed READ_SLICE sessions at once.
        out = {c: np.full((len(sessions), len(symbols)), np.nan) for c in self.columns}
        for i in range(0, len(sessions), READ_SLICE):
            part = sessions[i : i + READ_SLICE]
            rows = self.wh.read(self.table, part[0], part[-1], keys=list(symbols),
                                columns=["date", "symbol", *self.columns])
            for c in self.columns:
                wide = rows.pivot(index="date", columns="symbol", values=c).reindex(index=part, columns=symbols)
                out[c][i : i + len(part)] = wide.to_numpy(dtype=float)
            del rows
        self.sessions_read += len(sessions)
        return out


class WindowReader:
    """Wide windows of ``prices`` and ``symbol_returns`` over sessions × symbols, cached (see the
    module docstring).

    Missing values stay NaN; a symbol with no row at all is an all-NaN column.
    """

    def __init__(self, wh):
        self.wh = wh
        self._prices = WideCache(wh, "prices", PRICE_COLUMNS, PRICE_LOOKBACK_SESSIONS)
        self._returns = WideCache(wh, "symbol_returns", (RETURN_COLUMN,), LOOKBACK_SESSIONS)

    @property
    def sessions_read(self) -> int:
        """Sessions fetched from the warehouse so far, both tables (for tests and logs)."""
        return self._prices.sessions_read + self._returns.sessions_read

    # -- public ---------------------------------------------------------------------------------------
    def prices(self, symbols, start, end, column: str = "close") -> pd.DataFrame:
        """``column`` (``close`` or ``adj_close``) on every session in [start, end] × ``symbols``."""
        if column not in PRICE_COLUMNS:
            raise ValueError(f"WindowReader reads {PRICE_COLUMNS}, not {column!r}")
        return self._prices.get(column, _index(symbols), calendar.sessions(start, end))

    def returns(self, symbols, start, end) -> pd.DataFrame:
        """Point-in-time daily total returns of ``symbols`` on every session in [start, end], from
        ``symbol_returns`` (``r_s = split_s × (close_s + dividend_s) / close_prev(s) − 1``; missing
        when either close is missing — never 0, never spanning a gap — or the symbol has no row)."""
        return self._returns.get(RETURN_COLUMN, _index(symbols), calendar.sessions(start, end))


def _index(symbols) -> pd.Index:
    return pd.Index(list(dict.fromkeys(symbols)), dtype=object)


# One reader at a time per process, keyed by (warehouse url, run key): the steps of an in-process run
# share it; a step of another run starts from an empty one.
_READERS: dict[tuple[str, str], WindowReader] = {}


def window_reader(wh, key: str | None) -> WindowReader:
    """The reader of run ``key`` on ``wh`` (a new, unshared one when ``key`` is None)."""
    if key is None:
        return WindowReader(wh)
    hit = _READERS.get((wh.url, key))
    if hit is None:
        _READERS.clear()
        hit = _READERS[(wh.url, key)] = WindowReader(wh)
    return hit
