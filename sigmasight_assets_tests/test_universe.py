"""calc.universe.build_universe on hand-built ledgers (every expected row written out)."""

from __future__ import annotations

import pandas as pd
import pytest

from sigmasight_assets import calendar
from sigmasight_assets.warehouse import schemas
from sigmasight_assets.calc.universe import UNIVERSE_COLUMNS, build_universe
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.calc.universe import LOOKAHEAD_SESSIONS
from sigmasight_assets.pipelines.market import lookahead_horizon

DAYS = calendar.sessions("2025-03-03", "2025-03-14")  # Mon 3 .. Fri 14: 10 sessions
AHEAD = 2  # test horizon: each day looks 2 sessions ahead
HORIZON = calendar.sessions("2025-03-03", "2025-03-31")[AHEAD : AHEAD + len(DAYS)]
D = {d.strftime("%m-%d"): d for d in DAYS}


def pos(symbol, entry, exit=None, cls="PUBLIC", deleted=False, pid="P1", expiration=None, underlying=None):
    return {
        "portfolio_id": pid,
        "position_id": f"{symbol}@{entry}@{pid}",
        "symbol": symbol,
        "investment_class": cls,
        "quantity": 10.0,
        "entry_date": pd.Timestamp(entry),
        "exit_date": pd.Timestamp(exit) if exit else pd.NaT,
        "expiration": pd.Timestamp(expiration) if expiration else pd.NaT,
        "underlying": underlying,
        "deleted": deleted,
    }


def universe(rows, days=DAYS, horizon=HORIZON) -> pd.DataFrame:
    positions = pd.DataFrame(rows) if rows else pd.DataFrame(
        columns=["symbol", "investment_class", "entry_date", "exit_date", "expiration", "underlying", "deleted"])
    out = build_universe(positions, days, horizon, FACTOR_ETFS)
    assert list(out.columns) == UNIVERSE_COLUMNS
    schemas.symbol_universe.validate(out)
    return out


def rows_of(u: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return u[u["symbol"] == symbol].set_index("date")


def test_horizon_fixture():
    assert len(DAYS) == 10 and len(HORIZON) == 10
    assert HORIZON[0] == pd.Timestamp("2025-03-05")


def test_active_vs_history_look_ahead():
    u = universe([pos("AAPL", "2025-03-07")])
    a = rows_of(u, "AAPL")
    # Needed from the first day whose horizon reaches the entry (03-05 → horizon 03-07).
    assert list(a.index) == list(DAYS[DAYS >= "2025-03-05"])
    assert a.loc[D["03-05"], "status"] == "history" and a.loc[D["03-06"], "status"] == "history"
    assert (a.loc[D["03-05"]:D["03-06"], "position_count"] == 0).all()
    assert (a.loc[D["03-07"]:, "status"] == "active").all()
    assert (a.loc[D["03-07"]:, "position_count"] == 1).all()
    assert a["fetch"].all() and (a["asset_class"] == "PUBLIC").all() and not a["is_factor_etf"].any()


def test_entry_beyond_the_horizon_is_absent():
    u = universe([pos("LATE", "2025-03-31")])
    assert "LATE" not in set(u["symbol"])


def test_exit_day_is_excluded():
    u = universe([pos("MSFT", "2025-03-03", exit="2025-03-10")])
    m = rows_of(u, "MSFT")
    assert list(m.index) == list(DAYS[:5])  # 03-03 .. 03-07; absent from 03-10
    assert (m["status"] == "active").all()


def test_position_exited_before_the_range_is_absent():
    u = universe([pos("OLD", "2025-01-02", exit="2025-02-03")])
    assert "OLD" not in set(u["symbol"])


def test_deleted_positions_are_ignored():
    u = universe([pos("NVDA", "2025-03-03", deleted=True), pos("JPM", "2025-03-03", deleted=True),
                  pos("JPM", "2025-03-10", pid="P2")])
    assert "NVDA" not in set(u["symbol"])
    j = rows_of(u, "JPM")
    # Only the live lot counts: history from 03-06 (horizon 03-10), active from 03-10.
    assert list(j.index) == list(DAYS[DAYS >= "2025-03-06"])
    assert j.loc[D["03-06"], "status"] == "history" and j.loc[D["03-07"], "status"] == "history"
    assert (j.loc[D["03-10"]:, "position_count"] == 1).all()


def test_expired_option_status_and_not_fetched():
    sym = "SPY250307C00600000"
    u = universe([pos(sym, "2025-03-03", cls="OPTIONS", expiration="2025-03-07", underlying="SPY")])
    o = rows_of(u, sym)
    assert list(o.index) == list(DAYS)
    live, dead = o.loc[:D["03-07"]], o.loc[D["03-10"]:]
    assert (live["status"] == "active").all() and live["fetch"].all()
    assert (dead["status"] == "expired_option").all() and not dead["fetch"].any()
    assert (o["asset_class"] == "OPTIONS").all()
    assert (o["underlying"] == "SPY").all()
    assert (o["expiration"] == pd.Timestamp("2025-03-07")).all()


def test_private_never_fetched():
    u = universe([pos("PRIVATE_FUND_A", "2025-03-03", cls="PRIVATE"),
                  pos("FARMLAND", "2025-03-03", cls="PRIVATE"),      # private by declared class
                  pos("EQ1A2B3C4D5E", "2025-03-03", cls="PUBLIC")])  # private by its id pattern
    for sym in ("PRIVATE_FUND_A", "FARMLAND", "EQ1A2B3C4D5E"):
        p = rows_of(u, sym)
        assert len(p) == 10, sym
        assert (p["status"] == "private").all(), sym
        assert (p["asset_class"] == "PRIVATE").all(), sym
        assert not p["fetch"].any(), sym
        assert (p["position_count"] == 1).all(), sym


def test_factor_etfs_every_day_even_without_positions():
    u = universe([])
    assert len(u) == len(FACTOR_ETFS) * len(DAYS)
    assert (u.groupby("date")["symbol"].apply(set) == set(FACTOR_ETFS)).all()
    assert (u["status"] == "factor").all() and u["is_factor_etf"].all() and u["fetch"].all()
    assert (u["position_count"] == 0).all()


def test_held_factor_etf_is_active_and_still_flagged():
    u = universe([pos("TLT", "2025-03-10")])
    t = rows_of(u, "TLT")
    assert len(t) == 10 and t["is_factor_etf"].all()
    assert (t.loc[:D["03-07"], "status"] == "factor").all()
    assert (t.loc[D["03-10"]:, "status"] == "active").all()
    assert list(t["position_count"]) == [0] * 5 + [1] * 5


def test_position_count_sums_lots_and_portfolios():
    u = universe([
        pos("AAPL", "2025-03-03", pid="P1"),
        pos("AAPL", "2025-03-03", pid="P2"),
        pos("AAPL", "2025-03-11", pid="P3"),
        pos("AAPL", "2025-03-03", exit="2025-03-05", pid="P4"),
    ])
    a = rows_of(u, "AAPL")["position_count"]
    assert list(a) == [3, 3, 2, 2, 2, 2, 3, 3, 3, 3]
    assert (rows_of(u, "AAPL")["status"] == "active").all()


def test_one_row_per_symbol_day_sorted():
    u = universe([pos("AAPL", "2025-03-03"), pos("AAPL", "2025-03-05", pid="P2"), pos("SPY", "2025-03-03")])
    assert not u.duplicated(["date", "symbol"]).any()
    assert u.equals(u.sort_values(["date", "symbol"], ignore_index=True))
    assert len(u) == len(DAYS) * (len(FACTOR_ETFS) + 1)


def test_same_result_for_a_day_alone_or_inside_a_range():
    """Partitions are independent: a day's universe does not depend on the run's range."""
    rows = [pos("AAPL", "2025-03-07"), pos("MSFT", "2025-03-03", exit="2025-03-10"),
            pos("SPY250307C00600000", "2025-03-03", cls="OPTIONS", expiration="2025-03-07", underlying="SPY")]
    full = universe(rows)
    for i in (0, 3, 5, 9):
        one = universe(rows, days=DAYS[i : i + 1], horizon=HORIZON[i : i + 1])
        pd.testing.assert_frame_equal(one, full[full["date"] == DAYS[i]].reset_index(drop=True))


def test_production_horizon_gives_252_returns_before_entry():
    """With the asset's look-ahead, a symbol enters the universe exactly 252 sessions before its
    entry day, so 253 prices (252 returns) are stored by the time the position is held."""
    entry = pd.Timestamp("2026-03-02")
    first_needed = calendar.sessions_back(entry, LOOKAHEAD_SESSIONS)[0]
    days = calendar.sessions(first_needed - pd.Timedelta(days=10), entry)
    u = build_universe(pd.DataFrame([pos("NEWCO", entry)]), days, lookahead_horizon(days, LOOKAHEAD_SESSIONS), FACTOR_ETFS)
    n = rows_of(u, "NEWCO")
    assert n.index[0] == first_needed
    assert len(calendar.sessions(n.index[0], entry)) == 253
    assert n.loc[entry, "status"] == "active"
    assert (n.loc[: calendar.previous_session(entry), "status"] == "history").all()
