"""``symbol_returns`` without Dagster: the point-in-time total return of every symbol-day with a price.

Day ``D`` reads the ``prices`` rows of ``D`` and of the previous session only
(``calc.returns.total_returns``), so a nightly run and a backfill store the same rows, and a split or
dividend after ``D`` never changes ``D``'s row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.returns import ADJUSTED, TOTAL, total_returns
from .daystats import DayStats
from .io import write_partitions

RETURN_COLUMNS = ["date", "symbol", "total_return", "return_basis", "dividend", "split_ratio"]
CHUNK_DAYS = 63  # sessions per read/compute/write (bounds the long frames of a long backfill)


@dataclass
class ReturnsResult:
    written: int = 0
    symbols: set = field(default_factory=set)
    missing: int = 0  # symbol-days with a price but no return (no previous close, or bases differ)
    basis: dict = field(default_factory=lambda: {TOTAL: 0, ADJUSTED: 0})
    splits: int = 0  # symbol-days with a split ratio ≠ 1
    dividends: int = 0  # symbol-days with a dividend > 0
    duplicated: bool = False
    symbols_by_basis: dict = field(default_factory=lambda: {TOTAL: set(), ADJUSTED: set()})
    last: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RETURN_COLUMNS))
    no_history: int = 0  # … of which on the warehouse's first day of prices (no previous close yet: expected)
    by_day: DayStats = field(default_factory=DayStats)  # per day: ``written``, ``missing``, ``no_history``, ``duplicated``

    @property
    def mixed_basis(self) -> list[str]:
        """Symbols with both total and adjusted returns in the range (the provider changed basis)."""
        return sorted(self.symbols_by_basis[TOTAL] & self.symbols_by_basis[ADJUSTED])


def returns_frame(wh, days: pd.DatetimeIndex, scope: list[str] | None) -> pd.DataFrame:
    """``symbol_returns`` rows of ``days``: one per (day, symbol) with a stored price on the day."""
    first = calendar.previous_session(days[0])
    px = wh.read("prices", first, days[-1], keys=scope, columns=["date", "symbol", "close", "dividend", "split_ratio"])
    on_days = px[px["date"].isin(days)]
    if on_days.empty:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else
                                          (object if c in ("symbol", "return_basis") else float))
                             for c in RETURN_COLUMNS})
    sessions = calendar.sessions(first, days[-1])
    symbols = pd.Index(sorted(on_days["symbol"].unique()), dtype=object)

    def wide(col: str) -> pd.DataFrame:
        return px.pivot(index="date", columns="symbol", values=col).reindex(index=sessions, columns=symbols).astype(float)

    ret, basis = total_returns(wide("close"), wide("dividend"), wide("split_ratio"))
    keys = pd.MultiIndex.from_frame(on_days[["date", "symbol"]])
    rows = sessions.get_indexer(keys.get_level_values(0))
    cols = symbols.get_indexer(keys.get_level_values(1))
    out = pd.DataFrame({
        "date": on_days["date"].to_numpy(dtype="datetime64[ns]"),
        "symbol": on_days["symbol"].astype(object).to_numpy(),
        "total_return": ret.to_numpy(dtype=float)[rows, cols],
        "return_basis": basis.to_numpy(dtype=object)[rows, cols],
        "dividend": on_days["dividend"].to_numpy(dtype=float),
        "split_ratio": on_days["split_ratio"].to_numpy(dtype=float),
    })
    return out.sort_values(["date", "symbol"], ignore_index=True)


def first_price_day(wh) -> pd.Timestamp | None:
    """The first day of the stored prices (one indexed MIN query); None when there are none."""
    from sqlalchemy import func, select

    t = wh.table("prices")
    with wh.engine.connect() as conn:
        first = conn.execute(select(func.min(t.c.date))).scalar()
    return None if first is None else pd.Timestamp(first)


def store_symbol_returns(wh, days: pd.DatetimeIndex, scope: list[str] | None) -> ReturnsResult:
    """Compute and store ``symbol_returns`` for ``days`` (with ``scope``, only those symbols' rows
    are replaced), in chunks of ``CHUNK_DAYS`` sessions."""
    out = ReturnsResult()
    first = first_price_day(wh)
    for chunk in calendar.chunks(days, CHUNK_DAYS):
        frame = returns_frame(wh, chunk, scope)
        out.written += write_partitions(wh, "symbol_returns", frame, chunk[0], chunk[-1], keys=scope)
        out.symbols.update(frame["symbol"])
        out.missing += int(frame["total_return"].isna().sum())
        for b in (TOTAL, ADJUSTED):
            hit = frame["return_basis"] == b
            out.basis[b] += int(hit.sum())
            out.symbols_by_basis[b].update(frame.loc[hit, "symbol"])
        dup = frame.duplicated(["date", "symbol"]).to_numpy()
        out.duplicated = out.duplicated or bool(dup.any())
        missing = frame["total_return"].isna().to_numpy()
        # on the first day with stored prices no symbol has a previous close yet: not enough history, not a hole
        no_history = missing & (frame["date"] <= first).to_numpy() if first is not None else np.zeros(len(frame), bool)
        out.no_history += int(no_history.sum())
        out.by_day.count(frame["date"], written=np.ones(len(frame)), missing=missing, no_history=no_history,
                         duplicated=dup)
        out.splits += int((frame["split_ratio"].fillna(1.0) != 1.0).sum())
        out.dividends += int((frame["dividend"].fillna(0.0) > 0).sum())
        if len(frame):
            out.last = frame[frame["date"] == frame["date"].max()]
    return out


