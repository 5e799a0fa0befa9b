"""Hand-computed tests of the ledger-based portfolio snapshots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.returns import simple_returns
from sigmasight_assets.calc.concentration import concentration_metrics, top_k_per_group
from sigmasight_assets.calc.snapshots import (
    POSITION_VALUE_COLUMNS,
    SNAPSHOT_COLUMNS,
    compute_snapshots,
)

SESSIONS = pd.bdate_range("2024-01-02", periods=8)  # Tue 2 .. Thu 11 Jan 2024
D0, D1, D2, D3, D4 = SESSIONS[:5]
OPT = "AAA240119C00050000"


def pos(pid, posid, sym, cls, q, px, entry, exit=None, exitp=np.nan, exp=None, mv=np.nan, deleted=False):
    return dict(
        portfolio_id=pid, position_id=posid, symbol=sym, investment_class=cls, quantity=float(q),
        entry_price=float(px), entry_date=pd.Timestamp(entry),
        exit_date=pd.Timestamp(exit) if exit else pd.NaT, exit_price=exitp,
        underlying="AAA" if cls == "OPTIONS" else None, option_type="C" if cls == "OPTIONS" else None,
        strike=50.0 if cls == "OPTIONS" else np.nan,
        expiration=pd.Timestamp(exp) if exp else pd.NaT, manual_value=mv, deleted=deleted,
    )


def frame(rows):
    return pd.DataFrame(rows, columns=list(pos("p", "x", "s", "PUBLIC", 1, 1, D0).keys()))


def flows_frame(rows):
    return pd.DataFrame(
        [dict(portfolio_id=p, date=pd.Timestamp(d), amount=float(a), description="") for p, d, a in rows],
        columns=["portfolio_id", "date", "amount", "description"],
    )


CLOSE = pd.DataFrame(
    {
        "AAA": [50, 52, 55, 57, 60, 61, 62, 63],
        "BBB": [20, 21, 19, np.nan, 18, 18, 18, 18],
        OPT: [3.0, 3.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
        "OLD": [10.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
    },
    index=SESSIONS,
    dtype=float,
)

PORTFOLIOS = pd.DataFrame({"portfolio_id": ["P1", "P2", "P3"], "name": ["main", "cash", "empty"]})

# P1: long 100 AAA @50, short 50 BBB @20, 2 calls @3.00 premium (×100), private fund 1 unit
# bought for 20,000 now marked at 25,000. Deposits 100,000 on D0 and 10,000 on D2.
P1_POSITIONS = [
    pos("P1", "A", "AAA", "PUBLIC", 100, 50, D0),
    pos("P1", "B", "BBB", "PUBLIC", -50, 20, D0),
    pos("P1", "O", OPT, "OPTIONS", 2, 3.0, D0, exp="2024-01-19"),
    pos("P1", "X", "PRIV_FUND", "PRIVATE", 1, 20_000, D0, mv=25_000.0),
    pos("P1", "Z", "AAA", "PUBLIC", 1_000, 50, D0, deleted=True),  # booking error: ignored entirely
]
FLOWS = flows_frame([("P1", D0, 100_000), ("P1", D2, 10_000), ("P2", D1, 500)])


def snap(positions, flows=FLOWS, days=SESSIONS[:3], **kw):
    s, pv = compute_snapshots(PORTFOLIOS, frame(positions), flows, CLOSE, days, **kw)
    return s.set_index(["date", "portfolio_id"]), pv


def test_columns_and_grain():
    s, pv = compute_snapshots(PORTFOLIOS, frame(P1_POSITIONS), FLOWS, CLOSE, SESSIONS[:3])
    assert list(s.columns) == SNAPSHOT_COLUMNS
    assert list(pv.columns) == POSITION_VALUE_COLUMNS
    assert len(s) == 3 * 3 and not s.duplicated(["date", "portfolio_id"]).any()
    assert len(pv) == 3 * 4  # deleted position never appears


def test_two_day_cash_equity_pnl_with_flow_short_option_private():
    s, pv = snap(P1_POSITIONS)
    # D0: cash = 100,000 − (100·50 + (−50)·20 + 2·3·100 + 1·20,000) = 75,400
    #     MV  = 5,000 − 1,000 + 600 + 25,000 = 29,600 → equity 105,000
    r0 = s.loc[(D0, "P1")]
    assert r0.cash == pytest.approx(75_400)
    assert r0.equity == pytest.approx(105_000)
    assert math.isnan(r0.daily_pnl)  # first session of the price frame: no previous session
    assert r0.cumulative_pnl == pytest.approx(5_000)  # the private mark-up
    # D1: AAA 52 (+200), BBB 21 (short: −50), calls 3.5 (+100) → P&L 250
    r1 = s.loc[(D1, "P1")]
    assert r1.cash == pytest.approx(75_400)
    assert r1.equity == pytest.approx(105_250)
    assert r1.daily_pnl == pytest.approx(250)
    assert r1.daily_return == pytest.approx(250 / 105_000)
    # D2: deposit 10,000; AAA 55 (+300), BBB 19 (+100), calls 4.0 (+100) → P&L 500, not 10,500
    r2 = s.loc[(D2, "P1")]
    assert r2.cash == pytest.approx(85_400)
    assert r2.equity == pytest.approx(115_750)
    assert r2.daily_pnl == pytest.approx(500)
    assert r2.daily_return == pytest.approx(500 / 105_250)
    assert r2.cumulative_flows == pytest.approx(110_000)
    assert r2.cumulative_pnl == pytest.approx(5_750)
    assert r2.long_exposure == pytest.approx(5_500 + 800 + 25_000)
    assert r2.short_exposure == pytest.approx(-950)
    assert r2.gross_exposure == pytest.approx(32_250)
    assert r2.net_exposure == pytest.approx(30_350)
    assert (r2.position_count, r2.long_count, r2.short_count) == (4, 3, 1)
    assert (r2.unpriced_count, r2.stale_count, r2.is_partial, r2.has_stale) == (0, 0, False, False)
    w = np.array([25_000, 5_500, 950, 800]) / 32_250
    assert r2.hhi == pytest.approx((w**2).sum())
    assert r2.effective_positions_hhi == pytest.approx(1 / (w**2).sum())
    assert r2.top3_weight == pytest.approx(w[:3].sum())
    assert r2.top10_weight == pytest.approx(1.0)
    # position values: option ×100, private price = manual value / quantity, no price date
    p2 = pv[pv.date == D2].set_index("position_id")
    assert p2.loc["O", "market_value"] == pytest.approx(800) and p2.loc["O", "multiplier"] == 100
    assert p2.loc["B", "market_value"] == pytest.approx(-950)
    assert p2.loc["X", "market_value"] == pytest.approx(25_000) and pd.isna(p2.loc["X", "price_date"])
    assert p2.loc["A", "price_date"] == D2 and bool(p2.loc["A", "is_priced"])


def test_flow_only_and_empty_portfolios_have_defined_rows():
    s, _ = snap(P1_POSITIONS)
    cash_only = s.loc[(D1, "P2")]
    assert cash_only.equity == pytest.approx(500) and cash_only.cash == pytest.approx(500)
    assert cash_only.daily_pnl == pytest.approx(0.0)  # the deposit is not P&L
    assert math.isnan(cash_only.daily_return)  # equity(D−1) = 0
    assert cash_only.position_count == 0 and cash_only.gross_exposure == 0
    for col in ["hhi", "effective_positions_hhi", "top3_weight", "top10_weight", "volatility_21d"]:
        assert math.isnan(cash_only[col])
    empty = s.loc[(D2, "P3")]
    assert empty.equity == 0 and empty.cash == 0 and empty.position_count == 0
    assert not empty.is_partial and math.isnan(empty.hhi)


def test_exited_position_stops_accruing():
    positions = [pos("P1", "A", "AAA", "PUBLIC", 100, 50, D0, exit=D3, exitp=56.0)]
    s, pv = snap(positions, days=SESSIONS[:6])
    # D3: proceeds 5,600 replace the D2 value 5,500 → P&L +100 (the D3 close 57 is irrelevant)
    assert s.loc[(D3, "P1"), "daily_pnl"] == pytest.approx(100)
    assert s.loc[(D3, "P1"), "cash"] == pytest.approx(110_000 - 5_000 + 5_600)
    assert s.loc[(D3, "P1"), "position_count"] == 0
    # afterwards AAA keeps rising, the exited position earns nothing
    for d in SESSIONS[4:6]:
        assert s.loc[(d, "P1"), "daily_pnl"] == pytest.approx(0.0)
        assert s.loc[(d, "P1"), "equity"] == pytest.approx(110_600)
    assert set(pv.loc[pv.date >= D3, "position_id"]) == set()


def test_position_entered_later_pnl_is_close_minus_entry():
    positions = [pos("P1", "A", "AAA", "PUBLIC", 100, 51, D1)]  # bought on D1 at 51, close 52
    s, _ = snap(positions)
    assert s.loc[(D0, "P1"), "position_count"] == 0
    assert s.loc[(D1, "P1"), "daily_pnl"] == pytest.approx(100 * (52 - 51))
    assert s.loc[(D2, "P1"), "daily_pnl"] == pytest.approx(100 * (55 - 52))


def test_stale_price_is_used_and_flagged():
    positions = [pos("P1", "B", "BBB", "PUBLIC", -50, 20, D0)]
    s, pv = snap(positions, days=[D3])
    # BBB has no close on D3: the D2 close 19 is used and flagged stale
    row = s.loc[(D3, "P1")]
    assert row.stale_count == 1 and row.has_stale and not row.is_partial
    assert row.short_exposure == pytest.approx(-950)
    p = pv.set_index("position_id").loc["B"]
    assert p.is_stale and p.price == 19 and p.price_date == D2
    # P&L D3 vs D2 uses the same close on both days
    assert row.daily_pnl == pytest.approx(0.0)


def test_unpriced_position_is_not_valued_at_zero():
    positions = [
        pos("P1", "A", "AAA", "PUBLIC", 100, 50, D0),
        pos("P1", "N", "NOPRICE", "PUBLIC", 10, 100, D0),  # no close at all
    ]
    s, pv = snap(positions)
    row = s.loc[(D1, "P1")]
    assert row.unpriced_count == 1 and row.is_partial
    assert row.position_count == 2
    # Equity is unknown, not "cash (94,000) + the priced AAA (5,200)": a partial sum would read as a
    # 1,000 loss. Everything built on equity is unknown with it; cash and the priced exposures stay.
    assert math.isnan(row.equity) and math.isnan(row.cumulative_pnl)
    assert row.cash == pytest.approx(94_000)
    assert row.gross_exposure == pytest.approx(5_200)
    assert math.isnan(row.daily_pnl) and math.isnan(row.daily_return)
    n = pv[(pv.date == D1) & (pv.position_id == "N")].iloc[0]
    assert not n.is_priced and math.isnan(n.market_value) and math.isnan(n.price)


def test_price_older_than_stale_window_is_unpriced():
    positions = [pos("P1", "Q", "OLD", "PUBLIC", 10, 10, D0)]
    s, _ = snap(positions, days=SESSIONS[5:7], stale_days=5)
    assert s.loc[(SESSIONS[5], "P1"), "stale_count"] == 1  # D0 close is 5 sessions back
    assert s.loc[(SESSIONS[6], "P1"), "unpriced_count"] == 1  # 6 sessions back: too old
    assert s.loc[(SESSIONS[6], "P1"), "is_partial"]


def test_expired_option_is_inactive_and_worthless():
    positions = [pos("P1", "O", OPT, "OPTIONS", 2, 3.0, D0, exp=D2)]
    s, pv = snap(positions, days=SESSIONS[2:4])
    assert s.loc[(D2, "P1"), "position_count"] == 1  # expiration day: still active
    assert s.loc[(D3, "P1"), "position_count"] == 0
    assert s.loc[(D3, "P1"), "daily_pnl"] == pytest.approx(-800)  # value on D2 lost
    assert s.loc[(D3, "P1"), "equity"] == pytest.approx(110_000 - 600)


def test_private_without_a_mark_is_valued_at_entry_cost():
    positions = [pos("P1", "X", "PRIV_FUND", "PRIVATE", 1, 20_000, D0, mv=np.nan)]
    s, _ = snap(positions)
    assert s.loc[(D1, "P1"), "unpriced_count"] == 0
    assert s.loc[(D1, "P1"), "equity"] == pytest.approx(100_000)  # 80,000 cash + 20,000 at cost


def test_days_are_independent_of_the_batch():
    full, _ = compute_snapshots(PORTFOLIOS, frame(P1_POSITIONS), FLOWS, CLOSE, SESSIONS[:5])
    one, _ = compute_snapshots(PORTFOLIOS, frame(P1_POSITIONS), FLOWS, CLOSE, [D3])
    a = full[full.date == D3].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, one.reset_index(drop=True))


def test_day_outside_price_frame_is_an_error():
    with pytest.raises(ValueError, match="not in the close_wide"):
        compute_snapshots(PORTFOLIOS, frame(P1_POSITIONS), FLOWS, CLOSE, [pd.Timestamp("2024-01-06")])


# ---------------------------------------------------------------------------------------------
# volatility


def _vol_oracle(weights: dict[str, float], rets: pd.DataFrame, window: int) -> float:
    """Slow reference: loop over days, renormalise over present weight ≥ 90 %, ≥ 80 % of days."""
    gross = sum(abs(w) for w in weights.values())
    rp = []
    for _, row in rets.iloc[-window:].iterrows():
        present = {s: w for s, w in weights.items() if not math.isnan(row[s])}
        cov = sum(abs(w) for w in present.values()) / gross
        if cov >= 0.9:
            rp.append(sum(w * row[s] for s, w in present.items()) / (cov * gross))
    if len(rp) < math.ceil(0.8 * window):
        return math.nan
    return float(np.std(rp, ddof=1) * math.sqrt(252))


def test_volatility_matches_reference_with_missing_returns():
    rng = np.random.default_rng(3)
    idx = pd.bdate_range("2023-06-01", periods=80)
    rets = pd.DataFrame(rng.normal(0, 0.01, (80, 3)), index=idx, columns=["AAA", "BBB", "CCC"])
    adj = 100 * (1 + rets).cumprod()
    adj.iloc[0] = 100.0
    adj.loc[idx[70], "CCC"] = np.nan  # small weight missing → renormalised (2 returns)
    adj.loc[idx[60], "AAA"] = np.nan  # large weight missing → that day (2 returns) dropped
    positions = [
        pos("P1", "A", "AAA", "PUBLIC", 100, 100, idx[0]),
        pos("P1", "B", "BBB", "PUBLIC", -30, 100, idx[0]),
        pos("P1", "C", "CCC", "PUBLIC", 5, 100, idx[0]),
        pos("P1", "X", "PRIV_FUND", "PRIVATE", 1, 1_000, idx[0], mv=50_000.0),  # excluded
    ]
    day = idx[-1]
    s, pv = compute_snapshots(
        PORTFOLIOS, frame(positions), flows_frame([("P1", idx[0], 1e6)]), adj, [day],
        returns_wide=simple_returns(adj),
    )
    mv = pv.set_index("symbol")["market_value"]
    w = {k: mv[k] for k in ["AAA", "BBB", "CCC"]}
    simple = adj / adj.shift(1) - 1  # NaN where either price missing
    row = s.set_index("portfolio_id").loc["P1"]
    assert row.volatility_21d == pytest.approx(_vol_oracle(w, simple.loc[:day], 21), rel=1e-10)
    assert row.volatility_63d == pytest.approx(_vol_oracle(w, simple.loc[:day], 63), rel=1e-10)
    assert not math.isnan(row.volatility_63d)


def test_volatility_needs_80_percent_of_days():
    idx = pd.bdate_range("2023-06-01", periods=30)
    adj = pd.DataFrame({"AAA": np.linspace(100, 110, 30)}, index=idx)
    adj.iloc[20:25] = np.nan  # 6 of the last 21 returns missing → 15 < 17 days
    positions = [pos("P1", "A", "AAA", "PUBLIC", 10, 100, idx[0])]
    close = adj.ffill()
    s, _ = compute_snapshots(PORTFOLIOS, frame(positions), FLOWS.iloc[:0], close, [idx[-1]],
                             returns_wide=simple_returns(adj))
    row = s.set_index("portfolio_id").loc["P1"]
    assert math.isnan(row.volatility_21d)  # not a number made of a truncated window
    assert math.isnan(row.volatility_63d)  # the frame has only 29 returns


# ---------------------------------------------------------------------------------------------
# concentration helpers


def test_concentration_metrics_by_hand():
    g = np.array([0, 0, 0, 1, 2, 2])
    v = np.array([1.0, 1.0, 2.0, 5.0, 0.0, 0.0])
    m = concentration_metrics(g, v, 4)
    assert m["hhi"][0] == pytest.approx(0.25**2 * 2 + 0.5**2)
    assert m["effective_positions_hhi"][0] == pytest.approx(1 / 0.375)
    assert m["top3_weight"][0] == pytest.approx(1.0)
    assert m["hhi"][1] == pytest.approx(1.0)
    assert np.isnan(m["hhi"][2]) and np.isnan(m["hhi"][3])  # zero gross / no positions


def _top_k_oracle(g, score, k):
    """Per group and column: sort the members by score descending (NaN last, ties in input order)."""
    out = {}
    for grp in np.unique(g):
        members = np.flatnonzero(g == grp)
        for j in range(score.shape[1]):
            s = np.where(np.isnan(score[members, j]), -np.inf, score[members, j])
            out[(grp, j)] = members[np.argsort(-s, kind="stable")][:k]
    return out


@pytest.mark.parametrize("skewed", [False, True], ids=["dense", "lexsort-fallback"])
def test_top_k_per_group_equals_a_sort_per_group_and_column(skewed):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 50, 600) * 3  # sparse codes: only the present groups are ranked
    g[g == 21] = 24  # one group absent
    score = rng.normal(size=(600, 3))
    score[5, 0] = np.nan
    score[7:9, 1] = score[6, 1]  # ties keep the input order
    if skewed:  # one huge group makes the dense table too large: the per-column lexsort path
        g = np.r_[g, np.full(5_000, 999)]
        score = np.vstack([score, rng.normal(size=(5_000, 3))])
    groups, idx = top_k_per_group(g, score, 5)
    np.testing.assert_array_equal(groups, np.unique(g))
    assert idx.shape == (len(groups), 3, 5)
    oracle = _top_k_oracle(g, score, 5)
    for gi, grp in enumerate(groups):
        for j in range(3):
            got = idx[gi, j]
            np.testing.assert_array_equal(got[got >= 0], oracle[(grp, j)])
            assert (got[len(oracle[(grp, j)]):] == -1).all()  # small groups are padded with −1


def test_top_k_per_group_of_nothing_and_of_small_groups():
    groups, idx = top_k_per_group(np.empty(0, dtype=int), np.empty((0, 2)), 3)
    assert groups.size == 0 and idx.shape == (0, 2, 0)
    groups, idx = top_k_per_group(np.array([4, 4, 9]), np.array([[1.0], [2.0], [0.5]]), 3)
    assert groups.tolist() == [4, 9] and idx.shape == (2, 1, 2)  # kk = the largest group
    assert idx[:, 0].tolist() == [[1, 0], [2, -1]]


def test_a_book_without_flows_or_positions_still_has_float_money_columns():
    """A scoped run may compute one book that has no capital flow (and no position yet): its money
    columns are 0.0 floats, not integers (np.bincount of no weights returns int64)."""
    idx = pd.bdate_range("2024-01-02", periods=5)
    close = pd.DataFrame({"AAA": np.linspace(10, 11, 5)}, index=idx)
    books = pd.DataFrame({"portfolio_id": ["P-EMPTY"], "name": ["empty"]})
    empty_pos = frame([])
    s, pv = compute_snapshots(books, empty_pos, FLOWS.iloc[:0], close, [idx[-1]])
    for col in ("equity", "cash", "cumulative_flows", "gross_exposure", "net_exposure"):
        assert s[col].dtype == np.float64, col
        assert s[col].iloc[0] == 0.0
    assert pv.empty


# -- splits, dividends and dated marks (issue 14), by hand -----------------------------------------------
# SPL: 4:1 split on D2 (102 → 25.5: no move), then on D4 a 2:1 split with a 0.25 dividend per
# post-split share (26 → 13.0: a total return of 2 × 13.25 / 26 − 1 = +1.92 %).
ACT_CLOSE = pd.DataFrame({"SPL": [100.0, 102.0, 25.5, 26.0, 13.0, 13.0, 13.0, 13.0]}, index=SESSIONS)
ACTIONS = pd.DataFrame({"date": [D2, D4, D1], "symbol": ["SPL", "SPL", "ZZZ"], "dividend": [0.0, 0.25, 1.0],
                        "split_ratio": [4.0, 2.0, 1.0]})
ACT_FLOWS = flows_frame([("P1", D0, 100_000)])


def act_snap(positions, days=SESSIONS[:6], actions=ACTIONS, marks=None):
    s, pv = compute_snapshots(PORTFOLIOS, frame(positions), ACT_FLOWS, ACT_CLOSE, days, actions=actions, marks=marks)
    return s.set_index(["date", "portfolio_id"]), pv.set_index(["date", "position_id"])


def test_a_split_after_entry_multiplies_the_quantity_and_is_no_loss():
    s, pv = act_snap([pos("P1", "L", "SPL", "PUBLIC", 100, 100.0, D0)])
    assert pv.loc[(D1, "L"), "quantity"] == 100 and pv.loc[(D2, "L"), "quantity"] == 400
    assert pv.loc[(D4, "L"), "quantity"] == 800
    assert s.loc[(D2, "P1"), "daily_pnl"] == pytest.approx(400 * 25.5 - 100 * 102.0)  # 0: no fake −75 %
    assert s.loc[(D2, "P1"), "equity"] == pytest.approx(100_000 - 10_000 + 400 * 25.5)
    # D4: 400 → 800 shares, 800 × 0.25 credited; P&L = 800 × 13 + 200 − 400 × 26 = +200.
    assert s.loc[(D4, "P1"), "dividends"] == pytest.approx(200.0)
    assert s.loc[(D4, "P1"), "daily_pnl"] == pytest.approx(800 * 13.0 + 200.0 - 400 * 26.0)
    assert s.loc[(D4, "P1"), "cash"] == pytest.approx(90_000 + 200.0)
    assert s.loc[(D3, "P1"), "dividends"] == 0.0
    # the P&L of the day is the holder's total return on the previous value
    assert s.loc[(D4, "P1"), "daily_pnl"] / (400 * 26.0) == pytest.approx(2 * (13.0 + 0.25) / 26.0 - 1)


def test_a_short_pays_the_dividend_and_its_split_shares():
    s, pv = act_snap([pos("P1", "S", "SPL", "PUBLIC", -100, 100.0, D0)])
    assert pv.loc[(D4, "S"), "quantity"] == -800
    assert s.loc[(D4, "P1"), "dividends"] == pytest.approx(-200.0)
    assert s.loc[(D4, "P1"), "daily_pnl"] == pytest.approx(-(800 * 13.0 + 200.0 - 400 * 26.0))
    assert s.loc[(D2, "P1"), "daily_pnl"] == pytest.approx(0.0)


def test_entry_on_a_split_day_is_already_post_split_and_the_ex_date_rule_for_dividends():
    s, pv = act_snap([
        pos("P1", "E2", "SPL", "PUBLIC", 400, 25.5, D2),  # bought on the split day at its own close
        pos("P1", "E4", "SPL", "PUBLIC", 10, 13.0, D4),  # bought on the ex-date: no dividend
    ])
    assert pv.loc[(D2, "E2"), "quantity"] == 400 and pv.loc[(D3, "E2"), "quantity"] == 400
    assert pv.loc[(D4, "E2"), "quantity"] == 800 and pv.loc[(D4, "E4"), "quantity"] == 10
    assert s.loc[(D4, "P1"), "dividends"] == pytest.approx(800 * 0.25)


def test_exit_proceeds_use_the_quantity_after_the_splits_and_an_exit_on_the_ex_date_gets_the_dividend():
    s, _ = act_snap([pos("P1", "X", "SPL", "PUBLIC", 100, 100.0, D0, exit=D3, exitp=26.0),
                     pos("P1", "Y", "SPL", "PUBLIC", 100, 100.0, D0, exit=D4, exitp=13.0)])
    # X: 400 shares sold at 26 on D3; Y: held at D3's close, sold on the ex-date D4 (800 at 13 + 200).
    assert s.loc[(D3, "P1"), "cash"] == pytest.approx(100_000 - 20_000 + 400 * 26.0)
    assert s.loc[(D4, "P1"), "cash"] == pytest.approx(100_000 - 20_000 + 400 * 26.0 + 800 * 13.0 + 200.0)
    assert s.loc[(D4, "P1"), "dividends"] == pytest.approx(200.0)
    assert s.loc[(D4, "P1"), "daily_pnl"] == pytest.approx(800 * 13.0 + 200.0 - 400 * 26.0)
    assert s.loc[(D5, "P1"), "dividends"] == 0.0 and s.loc[(D5, "P1"), "position_count"] == 0


def test_unknown_actions_and_other_symbols_change_nothing():
    unknown = pd.DataFrame({"date": [D2], "symbol": ["SPL"], "dividend": [np.nan], "split_ratio": [np.nan]})
    s, pv = act_snap([pos("P1", "L", "SPL", "PUBLIC", 100, 100.0, D0)], actions=unknown)
    assert pv.loc[(D2, "L"), "quantity"] == 100 and s.loc[(D2, "P1"), "dividends"] == 0.0


D5 = SESSIONS[5]


def test_private_value_is_the_last_mark_on_or_before_the_day_never_a_later_one():
    positions = [pos("P1", "F", "FUND_A", "PRIVATE", 1, 20_000, D0, mv=21_000),  # manual_value = mark at entry
                 pos("P1", "G", "FUND_B", "PRIVATE", 2, 5_000, D1)]  # no manual value: at cost first
    marks = pd.DataFrame({"portfolio_id": ["P1", "P1", "P1", "P1"], "position_id": ["F", "F", "G", "F"],
                          "date": [D2, D5, D3, D0], "value": [25_000.0, 30_000.0, 12_000.0, 22_000.0]})
    s, pv = act_snap(positions, marks=marks)
    mv = pv["market_value"]
    assert mv[(D0, "F")] == 22_000  # the file's mark dated at entry wins over manual_value
    assert mv[(D1, "F")] == 22_000 and mv[(D2, "F")] == 25_000
    assert mv[(D4, "F")] == 25_000  # the D5 mark never reaches D4
    assert mv[(D5, "F")] == 30_000
    assert mv[(D1, "G")] == 10_000 and mv[(D2, "G")] == 10_000  # entry cost before the first mark
    assert mv[(D3, "G")] == 12_000 and pv.loc[(D3, "G"), "price"] == 6_000
    assert s.loc[(D4, "P1"), "equity"] == pytest.approx(100_000 - 20_000 - 10_000 + 25_000 + 12_000)
    assert not s["is_partial"].any()
    without, _ = act_snap(positions, days=[D4], marks=marks[marks["date"] <= D4])
    assert without.loc[(D4, "P1"), "equity"] == s.loc[(D4, "P1"), "equity"]  # later marks change nothing


def test_split_quantities_and_dividends_of_many_positions_equal_a_per_position_loop():
    """Random books over several symbols with repeated splits and dividends (some on the same day):
    every position's quantity and every portfolio's dividend cash per day equal the obvious loop over
    positions and their symbol's actions (entry < action day; a dividend on a split day is per
    post-split share; paid while held at the ex-date's previous close, i.e. exit on or after it)."""
    rng = np.random.default_rng(11)
    days = pd.bdate_range("2024-03-01", periods=40)
    syms = [f"S{i}" for i in range(6)]
    close = pd.DataFrame(rng.uniform(20, 40, (len(days), len(syms))), index=days, columns=syms)
    acts = []
    for s in syms:
        for d in rng.choice(days[1:], size=5, replace=False):
            acts.append({"date": d, "symbol": s, "dividend": float(rng.choice([0.0, 0.3, 0.55])),
                         "split_ratio": float(rng.choice([1.0, 1.0, 2.0, 3.0, 0.5]))})
    actions = pd.DataFrame(acts)
    rows = []
    for k in range(300):
        entry = days[rng.integers(0, 30)]
        exit_ = days[rng.integers(days.get_loc(entry), len(days))] if rng.random() < 0.3 else None
        rows.append(pos(f"P{k % 17}", f"L{k}", syms[rng.integers(0, len(syms))], "PUBLIC",
                        float(rng.choice([-50, 10, 100, 250])), 30.0, entry, exit=exit_, exitp=30.0))
    positions = frame(rows)
    books = pd.DataFrame({"portfolio_id": [f"P{i}" for i in range(17)], "name": "x"})
    flows = flows_frame([(f"P{i}", days[0], 1e6) for i in range(17)])
    s, pv = compute_snapshots(books, positions, flows, close, days, actions=actions)

    want_div = {}
    for r in rows:
        mine = actions[(actions["symbol"] == r["symbol"]) & (actions["date"] > r["entry_date"])].sort_values("date")
        factor = 1.0
        for a in mine.itertuples():
            factor *= a.split_ratio
            held = pd.isna(r["exit_date"]) or a.date <= r["exit_date"]
            if held and a.dividend > 0:
                key = (a.date, r["portfolio_id"])
                want_div[key] = want_div.get(key, 0.0) + r["quantity"] * factor * a.dividend
        for d in pv.loc[pv["position_id"] == r["position_id"], "date"]:
            f = float(np.prod(mine.loc[mine["date"] <= d, "split_ratio"]))
            got = pv.loc[(pv["position_id"] == r["position_id"]) & (pv["date"] == d), "quantity"].item()
            assert got == pytest.approx(r["quantity"] * f, rel=1e-12), (r["position_id"], d)
    got_div = s.set_index(["date", "portfolio_id"])["dividends"]
    for key, value in got_div.items():
        assert value == pytest.approx(want_div.get(key, 0.0), rel=1e-10, abs=1e-9), key
    assert sum(v != 0 for v in want_div.values()) > 20  # the draw really pays dividends
