"""The symbol universe: which symbols each trading day needs (pure pandas/numpy).

A symbol is in day D's universe when a (non-deleted) position holds it on D — ``status = active`` —
or when a position will hold it within the next ``lookahead`` sessions — ``status = history`` — so
that the lookback windows of the analytics (up to 252 returns) are in the warehouse by the time the
position is entered. Both are pure functions of the ledger and the calendar, so every partition gets
the same universe whatever run computed it. The eight factor ETFs are in every day's universe.

Private symbols (``status = private``) and options past their expiration (``expired_option``) are
listed for visibility but never fetched. ``position_count`` counts positions holding the symbol on D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .symbols import is_private_symbol

# Sessions of history a symbol needs before a position holds it: 252 returns = 253 prices.
LOOKAHEAD_SESSIONS = 253

UNIVERSE_COLUMNS = [
    "date",
    "symbol",
    "asset_class",
    "status",
    "is_factor_etf",
    "fetch",
    "underlying",
    "expiration",
    "position_count",
]


def build_universe(
    positions: pd.DataFrame,
    days: pd.DatetimeIndex,
    horizon: pd.DatetimeIndex,
    factor_etfs: tuple[str, ...],
) -> pd.DataFrame:
    """Universe rows for every day in ``days``.

    Parameters
    ----------
    positions : ledger positions (``symbol, investment_class, entry_date, exit_date, expiration,
        underlying, deleted``).
    days : sorted partition days.
    horizon : for each day, the last session of its look-ahead (same length as ``days``).
    factor_etfs : symbols present every day.
    """
    days = pd.DatetimeIndex(days)
    pos = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    symbols = sorted(set(pos["symbol"]) | set(factor_etfs)) if len(pos) else sorted(factor_etfs)
    code = {s: i for i, s in enumerate(symbols)}
    n_sym, n_day = len(symbols), len(days)
    held = np.zeros((n_sym, n_day + 1), dtype=np.int64)
    needed = np.zeros((n_sym, n_day + 1), dtype=np.int64)
    if len(pos):
        sym_idx = pos["symbol"].map(code).to_numpy()
        entry = pos["entry_date"].to_numpy("datetime64[ns]")
        exit_ = pos["exit_date"].to_numpy("datetime64[ns]")
        d = days.to_numpy()
        # Day index ranges [start, stop) over which each position is held / needed.
        stop = np.where(np.isnat(exit_), n_day, np.searchsorted(d, exit_, side="left"))
        held_start = np.searchsorted(d, entry, side="left")
        need_start = np.searchsorted(horizon.to_numpy(), entry, side="left")
        held_start = np.minimum(held_start, stop)
        need_start = np.minimum(need_start, stop)
        np.add.at(held, (sym_idx, held_start), 1)
        np.add.at(held, (sym_idx, stop), -1)
        np.add.at(needed, (sym_idx, need_start), 1)
        np.add.at(needed, (sym_idx, stop), -1)
    held = np.cumsum(held, axis=1)[:, :n_day]
    needed = np.cumsum(needed, axis=1)[:, :n_day]
    is_etf = np.array([s in factor_etfs for s in symbols])
    present = (needed > 0) | is_etf[:, None]
    s_idx, t_idx = np.nonzero(present)
    out = pd.DataFrame(
        {
            "date": days.to_numpy()[t_idx],
            "symbol": np.asarray(symbols, dtype=object)[s_idx],
            "position_count": held[s_idx, t_idx],
            "is_factor_etf": is_etf[s_idx],
        }
    )
    meta = _symbol_meta(pos, symbols)
    out = out.join(meta, on="symbol")
    private = out["asset_class"].eq("PRIVATE")
    expired = out["expiration"].notna() & (out["date"] > out["expiration"])
    out["status"] = np.select(
        [private, expired, out["position_count"] > 0],
        ["private", "expired_option", "active"],
        default="history",
    )
    out.loc[out["is_factor_etf"], "status"] = np.where(
        out.loc[out["is_factor_etf"], "position_count"] > 0, "active", "factor"
    )
    out["fetch"] = ~(private | expired)
    return out[UNIVERSE_COLUMNS].sort_values(["date", "symbol"], ignore_index=True)


def _symbol_meta(pos: pd.DataFrame, symbols: list[str]) -> pd.DataFrame:
    """asset_class, underlying, expiration per symbol (PRIVATE wins if any lot declares it)."""
    meta = pd.DataFrame(index=pd.Index(symbols, name="symbol"))
    meta["asset_class"] = "PUBLIC"
    meta["underlying"] = None
    meta["expiration"] = pd.NaT
    if len(pos):
        by_sym = pos.groupby("symbol")["investment_class"]
        private_any = (pos["investment_class"] == "PRIVATE").groupby(pos["symbol"]).any()
        classes = by_sym.first().where(~private_any, "PRIVATE")
        meta.loc[classes.index, "asset_class"] = classes
        opts = pos[pos["investment_class"] == "OPTIONS"].drop_duplicates("symbol").set_index("symbol")
        meta.loc[opts.index, "underlying"] = opts["underlying"]
        meta.loc[opts.index, "expiration"] = pd.to_datetime(opts["expiration"])
    private = meta.index.map(is_private_symbol).to_numpy(dtype=bool)
    meta.loc[private, "asset_class"] = "PRIVATE"
    meta["expiration"] = pd.to_datetime(meta["expiration"])
    return meta
