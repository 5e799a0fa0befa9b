"""The one reader of price and return windows, shared by the symbol and portfolio pipelines.

Every analytic of a run reads overlapping windows of the same prices (betas and ridge 90 returns,
spreads 180, covariance and metrics 252, portfolio valuation and correlations 90): a
:class:`WindowReader` keeps the ``close`` and ``adj_close`` it has read as wide arrays (sessions ×
symbols) and reads from the warehouse only what it lacks — new symbols or earlier sessions (then
from the widest look-back before the first session asked), or the sessions after the ones it
holds (a later chunk of the range). One reader per run
(:func:`window_reader` keys it by the Dagster run id), so the steps of an in-process run share it.
Within a run, ``prices`` is stored before any of its readers starts, so a cached window equals a
fresh read.

Returns are read through :meth:`WindowReader.returns` only — "the simple daily returns of these
symbols on the sessions [start, end]" — today derived from ``adj_close``; moving every return-based
analytic to another source (the point-in-time ``symbol_returns`` table) is a change to that one
method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.factors import BETA_WINDOW, COV_WINDOW, RIDGE_WINDOW, SPREAD_WINDOW
from ..calc.metrics import METRICS_WINDOW
from ..calc.returns import simple_returns

PRICE_COLUMNS = ("close", "adj_close")
# A (re)read starts this many sessions before the session asked for: the widest look-back of the
# run's steps (252 returns = 253 prices), so the steps that follow — whatever their window — are
# served from the cache instead of reading again further back.
LOOKBACK_SESSIONS = max(BETA_WINDOW, RIDGE_WINDOW, SPREAD_WINDOW, COV_WINDOW, METRICS_WINDOW) + 1
READ_SLICE = 42  # sessions per warehouse query


class WindowReader:
    """Wide windows of ``prices`` over sessions × symbols, cached (see the module docstring).

    Missing prices stay NaN; a symbol with no price at all is an all-NaN column.
    """

    def __init__(self, wh):
        self.wh = wh
        self.sessions = pd.DatetimeIndex([])
        self.symbols = pd.Index([], dtype=object)
        self.values: dict[str, np.ndarray] = {c: np.empty((0, 0)) for c in PRICE_COLUMNS}
        self.sessions_read = 0  # sessions fetched from the warehouse so far (for tests and logs)

    # -- public ---------------------------------------------------------------------------------------
    def prices(self, symbols, start, end, column: str = "close") -> pd.DataFrame:
        """``column`` (``close`` or ``adj_close``) on every session in [start, end] × ``symbols``."""
        if column not in PRICE_COLUMNS:
            raise ValueError(f"WindowReader reads {PRICE_COLUMNS}, not {column!r}")
        syms = _index(symbols)
        want = calendar.sessions(start, end)
        self._ensure(syms, want)
        return self._slice(column, syms, want)

    def returns(self, symbols, start, end) -> pd.DataFrame:
        """Simple daily returns ``r_s = P_s / P_prev(s) − 1`` of ``symbols`` on every session ``s`` in
        [start, end] (``P`` = ``adj_close``, ``prev(s)`` the previous session; a missing price on
        either session makes ``r_s`` missing — never 0, never spanning a gap)."""
        syms = _index(symbols)
        want = calendar.sessions(start, end)
        if not len(want):
            return pd.DataFrame(index=want, columns=syms, dtype=float)
        with_prev = calendar.sessions(calendar.previous_session(want[0]), want[-1])
        self._ensure(syms, with_prev)
        return simple_returns(self._slice("adj_close", syms, with_prev)).iloc[1:]

    # -- cache ----------------------------------------------------------------------------------------
    def _ensure(self, syms: pd.Index, want: pd.DatetimeIndex) -> None:
        if not len(want) or not len(syms):
            return
        cached = len(self.sessions) > 0
        if not cached or want[0] < self.sessions[0] or not syms.isin(self.symbols).all():
            symbols = syms.union(self.symbols, sort=False) if cached else syms
            first = calendar.sessions_back(want[0], LOOKBACK_SESSIONS)[0]
            first = min(first, self.sessions[0]) if cached else first
            last = max(want[-1], self.sessions[-1]) if cached else want[-1]
            sessions = calendar.sessions(first, last)
            self.values = self._read(symbols, sessions)
            self.sessions, self.symbols = sessions, symbols
        elif want[-1] > self.sessions[-1]:
            tail = calendar.sessions(self.sessions[-1] + pd.Timedelta(days=1), want[-1])
            more = self._read(self.symbols, tail)
            self.values = {c: np.vstack([self.values[c], more[c]]) for c in PRICE_COLUMNS}
            self.sessions = self.sessions.append(tail)

    def _read(self, symbols: pd.Index, sessions: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        # Slices of sessions: the long rows of one query (5,000 symbols × a year is 1.3M rows, ~3× their
        # size in transient Python objects) never exceed READ_SLICE sessions at once.
        out = {c: np.full((len(sessions), len(symbols)), np.nan) for c in PRICE_COLUMNS}
        for i in range(0, len(sessions), READ_SLICE):
            part = sessions[i : i + READ_SLICE]
            px = self.wh.read("prices", part[0], part[-1], keys=list(symbols), columns=["date", "symbol", *PRICE_COLUMNS])
            for c in PRICE_COLUMNS:
                wide = px.pivot(index="date", columns="symbol", values=c).reindex(index=part, columns=symbols)
                out[c][i : i + len(part)] = wide.to_numpy(dtype=float)
            del px
        self.sessions_read += len(sessions)
        return out

    def _slice(self, column: str, syms: pd.Index, want: pd.DatetimeIndex) -> pd.DataFrame:
        if not len(syms) or not len(want):
            return pd.DataFrame(index=want, columns=syms, dtype=float)
        rows = self.sessions.get_indexer(want)
        cols = self.symbols.get_indexer(syms)
        return pd.DataFrame(self.values[column][np.ix_(rows, cols)], index=want, columns=syms)


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
