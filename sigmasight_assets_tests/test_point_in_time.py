"""Point-in-time returns, splits and dividends end to end (issue 14), on hand-built CSV price files
(``pit_files``: a 4:1 split, a 2:1 split with a same-day dividend, quarterly dividends).

* ``symbol_returns`` and the holders' P&L on the event days equal numbers computed here by hand;
* **nightly equals backfill**: warehouse A is one backfill of the whole graph over 74 sessions from
  the files as of the last night; warehouse B is a backfill of the first 66 sessions from the files
  as of that night, then one run per night over the last 8 with the files rewritten each night
  (history's ``adj_close`` re-adjusted, as a real provider does). Every table is identical, except
  the convenience column ``adj_close`` (in ``prices`` and its copy in ``symbol_metrics``), which is
  shown to differ (so the files really were re-adjusted, and nothing computed across days reads it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from . import pit_files as P
from .helpers_graph import TABLE_KEYS, iso, load_ledger, module_env, new_warehouse, run_range
from .test_postgres import pg_url  # noqa: F401  (the throwaway-database fixture)

DATA = P.market()
ENTRY = P.SESSIONS[0]
FLOW = 100_000.0


def entry_close(sym: str) -> float:
    return float(DATA[sym].loc[ENTRY, "close"])


POSITIONS = [
    dict(portfolio_id="P-SPLT", symbol="SPLT", quantity=100, entry_price=entry_close("SPLT"), entry_date=iso(ENTRY)),
    dict(portfolio_id="P-DIVS", symbol="DIVS", quantity=200, entry_price=entry_close("DIVS"), entry_date=iso(ENTRY)),
    dict(portfolio_id="P-QDIV", symbol="QDIV", quantity=-300, entry_price=entry_close("QDIV"), entry_date=iso(ENTRY)),
    dict(portfolio_id="P-MIX", symbol="SPLT", quantity=50, entry_price=entry_close("SPLT"), entry_date=iso(ENTRY)),
    dict(portfolio_id="P-MIX", symbol="QDIV", quantity=80, entry_price=entry_close("QDIV"), entry_date=iso(ENTRY)),
    dict(portfolio_id="P-MIX", symbol="SPY", quantity=40, entry_price=entry_close("SPY"), entry_date=iso(ENTRY)),
]
FLOWS = [dict(portfolio_id=p, date=iso(ENTRY), amount=FLOW) for p in ("P-SPLT", "P-DIVS", "P-QDIV", "P-MIX")]
# Tables with no row in this set-up: the CSV directory has no valuations.csv.
EMPTY = {"daily_valuations", "replay_window_returns"}  # CSV market without valuations; no replay window ends in the range


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    base = tmp_path_factory.mktemp("pit")
    with module_env(base):
        final, nightly = base / "files_final", base / "files_nightly"
        P.write_files(final, P.SESSIONS[-1], DATA)
        url_a, wh_a = new_warehouse(base, "backfill")
        load_ledger(wh_a, base / "ledger_a", POSITIONS, FLOWS)
        res = run_range(url_a, P.SESSIONS[0], P.SESSIONS[-1], spec=f"csv:{final}")
        assert res.success

        url_b, wh_b = new_warehouse(base, "nightly")
        load_ledger(wh_b, base / "ledger_b", POSITIONS, FLOWS)
        P.write_files(nightly, P.HISTORY[-1], DATA)
        assert run_range(url_b, P.HISTORY[0], P.HISTORY[-1], spec=f"csv:{nightly}").success
        for night in P.RANGE:
            P.write_files(nightly, night, DATA)  # the provider re-adjusts its history every night
            assert run_range(url_b, night, night, spec=f"csv:{nightly}").success
        yield {"a": wh_a, "b": wh_b}


def rows(wh, name: str) -> pd.DataFrame:
    return wh.read(name).sort_values(TABLE_KEYS[name], ignore_index=True)


def test_nightly_runs_equal_one_backfill_in_every_table(graph):
    a, b = graph["a"], graph["b"]
    compared = []
    for name in TABLE_KEYS:
        left, right = rows(a, name), rows(b, name)
        if "adj_close" in left.columns:  # prices and its copy in symbol_metrics
            # adj_close is the provider's re-adjusted convenience column: it differs by design.
            diff = (left["adj_close"] - right["adj_close"]).abs()
            assert diff.max() > 0.01, "the nightly files were not re-adjusted: the test would prove nothing"
            left, right = left.drop(columns="adj_close"), right.drop(columns="adj_close")
        if name not in EMPTY:
            assert len(left) > 0, f"{name}: no rows to compare"
        pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)
        compared.append(name)
    assert {"symbol_returns", "symbol_betas", "ridge_factors", "spread_factors", "factor_covariance",
            "symbol_metrics", "portfolio_snapshots", "correlations", "aggregated_exposures",
            "stress_results"} <= set(compared)


def returns_on(wh, day) -> pd.DataFrame:
    return wh.read("symbol_returns", day, day).set_index("symbol")


@pytest.mark.parametrize("which", ["a", "b"])
def test_total_returns_of_the_event_days_by_hand(graph, which):
    wh = graph[which]
    split = returns_on(wh, P.SPLIT_DAY).loc["SPLT"]
    assert split.total_return == pytest.approx(4 * 25.25 / 100.0 - 1, abs=1e-12)  # +1 %, not −74.75 %
    assert split.split_ratio == 4.0 and split.dividend == 0.0 and split.return_basis == "total"
    both = returns_on(wh, P.SPLIT_DIV_DAY).loc["DIVS"]
    # A dividend on a split day is per post-split share: 2 × (24.75 + 0.50) / 50 − 1 = +1 %.
    assert both.total_return == pytest.approx(2 * (24.75 + 0.50) / 50.0 - 1, abs=1e-12)
    assert both.split_ratio == 2.0 and both.dividend == 0.5
    for day in P.DIV_DAYS[1:]:
        q = returns_on(wh, day).loc["QDIV"]
        assert q.total_return == pytest.approx((39.80 + 0.40) / 40.0 - 1, abs=1e-12)  # +0.5 %
    first = returns_on(wh, P.SESSIONS[0])
    assert first["total_return"].isna().all() and first["return_basis"].isna().all()  # no previous close


def snap(wh, pid, day) -> pd.Series:
    s = wh.read("portfolio_snapshots", day, day, keys=[pid])
    assert len(s) == 1
    return s.iloc[0]


def test_a_split_holder_shows_no_loss(graph):
    row = snap(graph["a"], "P-SPLT", P.SPLIT_DAY)
    # 100 shares at 100.00 became 400 at 25.25: +100, the 1 % total return.
    assert row.daily_pnl == pytest.approx(400 * 25.25 - 100 * 100.0, abs=1e-6)
    prev = snap(graph["a"], "P-SPLT", P.SESSIONS[P.SESSIONS.get_loc(P.SPLIT_DAY) - 1])
    assert row.daily_return == pytest.approx(100.0 / prev.equity, rel=1e-12)
    assert row.long_exposure == pytest.approx(400 * 25.25) and row.dividends == 0.0
    pv_qty = row.equity - row.cash
    assert pv_qty == pytest.approx(400 * 25.25)


def test_a_split_with_a_dividend_credits_the_post_split_shares(graph):
    row = snap(graph["a"], "P-DIVS", P.SPLIT_DIV_DAY)
    # 200 shares at 50.00 → 400 at 24.75 plus 400 × 0.50 of dividends: +100.
    assert row.dividends == pytest.approx(400 * 0.50)
    assert row.daily_pnl == pytest.approx(400 * 24.75 + 400 * 0.50 - 200 * 50.0, abs=1e-6)


def test_a_short_pays_the_dividend(graph):
    wh = graph["a"]
    row = snap(wh, "P-QDIV", P.DIV_DAYS[1])
    assert row.dividends == pytest.approx(-300 * 0.40)
    # The price falls 0.20 (a short gains 60) and the short pays 120: −60 = −300 × 40 × 0.5 %.
    assert row.daily_pnl == pytest.approx(-300 * (39.80 - 40.0) - 300 * 0.40, abs=1e-6)
    # Both quarterly dividends are in the cash: flow + short proceeds − 2 × 120.
    assert row.cash == pytest.approx(FLOW + 300 * entry_close("QDIV") - 2 * 120.0, abs=1e-6)
    first = snap(wh, "P-QDIV", P.DIV_DAYS[0])
    assert first.dividends == pytest.approx(-120.0)


def test_a_mixed_book_p_and_l_is_the_sum_of_its_holdings(graph):
    wh = graph["a"]
    day = P.SPLIT_DAY
    prev = P.SESSIONS[P.SESSIONS.get_loc(day) - 1]
    row = snap(wh, "P-MIX", day)
    c = {s: DATA[s]["close"] for s in ("SPLT", "QDIV", "SPY")}
    want = (50 * 4 * 25.25 - 50 * 100.0) + 80 * (c["QDIV"][day] - c["QDIV"][prev]) + 40 * (c["SPY"][day] - c["SPY"][prev])
    assert row.daily_pnl == pytest.approx(want, abs=1e-6)
    assert not row.is_partial and np.isfinite(row.equity)


PG_ASSETS = ["symbol_universe", "prices", "symbol_returns", "portfolio_snapshots"]


@pytest.mark.postgres
def test_nightly_on_postgres_equals_the_sqlite_backfill(graph, pg_url, tmp_path):  # noqa: F811
    """The point-in-time path on PostgreSQL: the history as one backfill from that night's files, then
    one run per night with the files rewritten; prices (as traded), symbol_returns and the snapshots
    equal warehouse A's (SQLite, one backfill from the last night's files), hence the hand values."""
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(pg_url)
    wh.create_all()
    load_ledger(wh, tmp_path / "ledger", POSITIONS, FLOWS)
    files = tmp_path / "files"
    P.write_files(files, P.HISTORY[-1], DATA)
    assert run_range(pg_url, P.HISTORY[0], P.HISTORY[-1], PG_ASSETS, spec=f"csv:{files}").success
    for night in P.RANGE:
        P.write_files(files, night, DATA)
        assert run_range(pg_url, night, night, PG_ASSETS, spec=f"csv:{files}").success
    for name in ("prices", "symbol_returns", "portfolio_snapshots"):
        left, right = rows(graph["a"], name), rows(wh, name)
        if name == "prices":
            left, right = left.drop(columns="adj_close"), right.drop(columns="adj_close")
        pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-12, atol=1e-9, obj=name)
    row = wh.read("portfolio_snapshots", P.SPLIT_DIV_DAY, P.SPLIT_DIV_DAY, keys=["P-DIVS"]).iloc[0]
    assert row.daily_pnl == pytest.approx(400 * 24.75 + 400 * 0.50 - 200 * 50.0, abs=1e-6)
    wh.engine.dispose()
