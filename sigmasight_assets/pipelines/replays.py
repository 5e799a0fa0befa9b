"""Historical replays without Dagster: the windows' compounded returns (``replay_window_returns``)
and the replay rows of ``stress_results``.

A replay scenario's window ``[start, end]`` is computed once, when the partition of its last day
``end`` is materialised (nightly on that day, or by a backfill of it once its prices are loaded):
the compounded total return over ``(start, end]`` (``calc.replay.compound_window_returns``) of every
symbol priced on ``end`` and of the factor ETFs, one row per (end, scenario, symbol) with a complete
window. The nightly stress run then reads these few rows for the holdings instead of the window's
prices: it never re-reads decades of history.

Each window is read with its own :class:`~.windows.WindowReader` (not the run's shared one, whose
cache would otherwise stretch from the window back in time to today).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.factors import FACTOR_ETFS
from ..calc.replay import compound_window_returns, compute_replays
from ..warehouse.schema import READABLE, TABLES
from .io import write_partitions
from .windows import WindowReader

TABLE = "replay_window_returns"
COLUMNS = [c.name for c in TABLES[TABLE].columns]
COLUMNS_OUT = [c.name for c in READABLE["stress_results"].columns]  # the replay rows of stress_results (as written)


def window_sessions(scenario) -> int:
    """Returns compounded by a replay window: the sessions in ``(start, end]``."""
    return len(calendar.sessions(scenario.start, scenario.end)) - 1


@dataclass
class WindowTotals:
    """What the ``replay_window_returns`` asset reports."""

    written: int = 0
    windows: dict = field(default_factory=dict)  # scenario id → {"end", "symbols", "etfs_complete", "missing_etfs"}

    @property
    def incomplete(self) -> dict[str, str]:
        """Windows computed on their end day whose factor ETFs lack a complete window (not replayable)."""
        return {sid: f"{w['end']}: no complete window for {', '.join(w['missing_etfs'])}"
                for sid, w in self.windows.items() if not w["etfs_complete"]}


def window_returns(wh, days: pd.DatetimeIndex, scenarios) -> WindowTotals:
    """Compute and store the windows of the active replay scenarios that end on one of ``days``
    (rows of every other day of the range are replaced by nothing: no window ends there)."""
    totals = WindowTotals()
    day_set = set(pd.DatetimeIndex(days))
    frames = []
    for scn in scenarios.active_replays:
        end, start = pd.Timestamp(scn.end), pd.Timestamp(scn.start)
        if end not in day_set:
            continue
        priced = wh.read("prices", end, end, columns=["symbol"])["symbol"]
        symbols = sorted(set(priced) | set(FACTOR_ETFS))
        rets = WindowReader(wh).returns(symbols, start, end)
        compounded = compound_window_returns(rets, start, end).dropna()
        frames.append(pd.DataFrame({
            "date": end, "symbol": compounded.index.astype(str), "scenario_id": scn.id, "window_start": start,
            "window_return": compounded.to_numpy(dtype=float), "sessions": len(rets) - 1,
        }))
        missing = [t for t in FACTOR_ETFS if t not in compounded.index]
        totals.windows[scn.id] = {"end": end.date().isoformat(), "symbols": int(len(compounded)),
                                  "etfs_complete": not missing, "missing_etfs": missing}
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    frame = frame.astype({"date": "datetime64[ns]", "window_start": "datetime64[ns]", "symbol": object,
                          "scenario_id": object, "window_return": float, "sessions": np.int64})[COLUMNS]
    totals.written = write_partitions(wh, TABLE, frame, days[0], days[-1])
    return totals


@dataclass
class ReplayWindows:
    """The stored windows of the active replay scenarios, for the held symbols (read once per run)."""

    scenarios: list  # the active replay scenarios
    symbol_returns: pd.DataFrame  # index symbol, one column per scenario id
    etf_returns: pd.DataFrame  # index scenario id, columns FACTOR_ETFS


def read_windows(wh, scenarios, symbols) -> ReplayWindows:
    """The stored compounded returns of every active replay window for ``symbols`` and the factor
    ETFs. A window stored with another start than the scenario's (the file changed since) is not
    used: the scenario is then not replayable until its end day is materialised again."""
    replays = list(scenarios.active_replays)
    ids = [s.id for s in replays]
    keys = sorted(set(symbols) | set(FACTOR_ETFS))
    parts = []
    for scn in replays:
        end = pd.Timestamp(scn.end)
        rows = wh.read(TABLE, end, end, keys=keys, columns=["symbol", "scenario_id", "window_start", "window_return"])
        rows = rows[(rows["scenario_id"] == scn.id) & (pd.to_datetime(rows["window_start"]) == pd.Timestamp(scn.start))]
        parts.append(rows)
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["symbol", "scenario_id", "window_return"])
    wide = (long.pivot(index="symbol", columns="scenario_id", values="window_return") if len(long)
            else pd.DataFrame(dtype=float)).reindex(columns=ids)
    wide.columns.name = None
    etf = wide.reindex(index=list(FACTOR_ETFS)).T.reindex(index=ids)
    return ReplayWindows(replays, wide, etf)


def replay_rows(position_values: pd.DataFrame, factor_model: pd.DataFrame, snapshots: pd.DataFrame,
                windows: ReplayWindows, top_n: int) -> pd.DataFrame:
    """``stress_results`` rows of the replay scenarios (``calc.replay.compute_replays``).

    Column mapping: the replay P&L is a joint move of every factor, so it goes to ``correlated_pnl``
    and ``correlated_pct_equity``; ``direct_pnl``, ``direct_pct_equity`` and ``correlation_effect``
    are NULL (a replay has no "named shocks only" variant). ``positions_covered`` = replayed +
    proxied positions, ``positions_missing_beta`` the rest of the in-scope positions, ``coverage``
    their share of in-scope gross value and ``replayed_share`` the share replayed from own history.
    A window that is not replayable has NULL P&L, coverage and replayed share, no covered position.
    """
    if not windows.scenarios:
        return pd.DataFrame(columns=COLUMNS_OUT)
    res = compute_replays(position_values, factor_model, snapshots, windows.scenarios, windows.symbol_returns,
                          windows.etf_returns, top_n=top_n)
    ok = res["replayable"].to_numpy(dtype=bool)
    covered = (res["positions_replayed"] + res["positions_proxied"]).to_numpy(dtype=np.int64)
    in_scope = covered + res["positions_missing"].to_numpy(dtype=np.int64)
    nan = np.full(len(res), np.nan)
    out = pd.DataFrame({
        "date": res["date"], "portfolio_id": res["portfolio_id"], "scenario_id": res["scenario_id"],
        "scenario_name": res["scenario_name"], "category": res["category"], "severity": res["severity"],
        "direct_pnl": nan, "correlated_pnl": res["pnl"].to_numpy(dtype=float), "correlation_effect": nan,
        "direct_pct_equity": nan, "correlated_pct_equity": res["pct_equity"].to_numpy(dtype=float),
        "positions_covered": np.where(ok, covered, 0), "positions_missing_beta": np.where(ok, in_scope - covered, in_scope),
        "top_contributors": res["top_contributors"],
        "coverage": np.where(ok, res["coverage"].to_numpy(dtype=float), np.nan),
        "replayed_share": np.where(ok, res["replayed_share"].to_numpy(dtype=float), np.nan),
    })
    return out[COLUMNS_OUT]


def not_replayable(windows: ReplayWindows) -> dict[str, str]:
    """Active replay scenarios without every factor ETF's window return: id → reason."""
    out = {}
    for scn in windows.scenarios:
        row = windows.etf_returns.loc[scn.id] if scn.id in windows.etf_returns.index else None
        lacking = [t for t in FACTOR_ETFS if row is None or not np.isfinite(row.get(t, np.nan))]
        if lacking:
            out[scn.id] = (f"window {scn.start.isoformat()}..{scn.end.isoformat()} not in replay_window_returns for "
                           f"{', '.join(lacking)} (load its prices, then materialise replay_window_returns for "
                           f"{scn.end.isoformat()})")
    return out
