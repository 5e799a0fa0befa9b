"""Historical replays on hand-built returns: own history, proxied symbols, missing windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.factor_model import FACTOR_NAMES
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.calc.replay import (
    REPLAY_RESULT_COLUMNS,
    compound_window_returns,
    compound_windows,
    compute_replays,
    window_factor_moves,
)

S = pd.bdate_range("2020-02-17", periods=8)  # Mon 17 … Wed 26 Feb 2020
TODAY = pd.Timestamp("2024-06-03")


def etf_returns() -> pd.DataFrame:
    r = pd.DataFrame(0.0, index=S, columns=list(FACTOR_ETFS))
    r["SPY"] = [0.0, 0.01, -0.02, -0.03, 0.01, -0.04, 0.0, 0.02]
    r["TLT"] = [0.0, 0.002, 0.004, 0.003, -0.001, 0.006, 0.0, 0.0]
    r["VTV"] = r["SPY"] - 0.002
    r["VUG"] = r["SPY"] + 0.001
    r["MTUM"] = r["SPY"]
    r["QUAL"] = r["SPY"] + 0.003
    r["IWM"] = r["SPY"] * 1.2
    r["USMV"] = r["SPY"] * 0.7
    return r


def stock_returns() -> pd.DataFrame:
    r = pd.DataFrame(index=S)
    r["OLD"] = [0.0, 0.02, -0.05, -0.04, 0.03, -0.06, 0.01, 0.0]
    r["NEW"] = [np.nan, np.nan, np.nan, np.nan, 0.01, -0.03, 0.0, 0.0]  # listed after the start
    r["GAP"] = [0.0, 0.01, np.nan, 0.01, 0.0, 0.0, 0.0, 0.0]  # a hole inside the window
    r["NOMODEL"] = np.nan
    return r


WINDOWS = {"covid": (S[1], S[5]), "later": (S[4], S[7])}


def scenario(sid, **extra):
    return {"id": sid, "name": sid.title(), "category": "historical", "severity": "extreme", "kind": "replay",
            "start": WINDOWS.get(sid, (None, None))[0], "end": WINDOWS.get(sid, (None, None))[1], **extra}


def loadings(symbol, **given):
    return [(TODAY, symbol, f, given.get(f, 0.0), 1e-4) for f in FACTOR_NAMES]


def model(*rows):
    return pd.DataFrame([r for rr in rows for r in rr], columns=["date", "symbol", "factor", "beta", "specific_variance"])


def pv_rows(rows, date=TODAY):
    return pd.DataFrame(
        [dict(date=date, portfolio_id=p, position_id=pid, symbol=s, investment_class=c, quantity=1.0, price=abs(mv),
              price_date=date, multiplier=1.0, market_value=mv, is_stale=False, is_priced=not math.isnan(mv))
         for p, pid, s, c, mv in rows]
    )


def snaps(equity):
    return pd.DataFrame({"date": TODAY, "portfolio_id": list(equity), "equity": list(equity.values())})


# ---------------------------------------------------------------------------------------------
# compounding


def test_compound_window_is_the_move_from_the_close_of_start_to_the_close_of_end():
    r = stock_returns()
    got = compound_window_returns(r, S[1], S[5])
    # sessions strictly after start up to and including end: rows 2..5
    assert got["OLD"] == pytest.approx((1 - 0.05) * (1 - 0.04) * (1 + 0.03) * (1 - 0.06) - 1, rel=1e-14)
    assert math.isnan(got["NEW"])  # lacks the returns of rows 2 and 3
    assert math.isnan(got["GAP"]) and math.isnan(got["NOMODEL"])
    later = compound_window_returns(r, S[4], S[7])
    assert later["NEW"] == pytest.approx((1 - 0.03) * 1.0 * 1.0 - 1, rel=1e-14)  # listed before this window
    assert later["GAP"] == 0.0  # a real zero move, not a fill: every session has its return


def test_window_not_in_the_frame_is_all_missing_and_bad_windows_raise():
    r = stock_returns()
    out = compound_window_returns(r, pd.Timestamp("2008-09-12"), pd.Timestamp("2008-10-10"))
    assert out.isna().all() and list(out.index) == list(r.columns)
    with pytest.raises(ValueError, match="must be before"):
        compound_window_returns(r, S[3], S[3])
    with pytest.raises(ValueError, match="replay scenario 'bad'"):
        compound_windows(r, {"bad": (S[5], S[2])})


def test_compound_windows_one_column_per_scenario():
    r = etf_returns()
    w = compound_windows(r, WINDOWS)
    assert list(w.columns) == ["covid", "later"] and list(w.index) == list(FACTOR_ETFS)
    assert w.loc["SPY", "covid"] == pytest.approx(compound_window_returns(r, *WINDOWS["covid"])["SPY"])


def test_window_factor_moves_map_compounded_etf_returns_to_the_basis():
    etf = compound_windows(etf_returns(), WINDOWS).T
    etf.loc["broken"] = etf.loc["covid"]
    etf.loc["broken", "MTUM"] = np.nan
    moves, ok, reasons = window_factor_moves(etf, ["covid", "broken", "absent"])
    spy = etf.loc["covid", "SPY"]
    # market, rates, then compounded style return minus compounded SPY return
    expect = [spy, etf.loc["covid", "TLT"], *(etf.loc["covid", list(FACTOR_ETFS[2:])] - spy)]
    assert moves[:, 0].tolist() == pytest.approx(expect, abs=1e-16)
    assert ok.tolist() == [True, False, False]
    assert reasons[0] is None and "MTUM" in reasons[1] and "no ETF returns" in reasons[2]
    assert np.isnan(moves[:, 1:]).all()


# ---------------------------------------------------------------------------------------------
# replay P&L


def run(pv, m, eq, scns=("covid", "later"), etf=None):
    own = compound_windows(stock_returns(), WINDOWS)
    etf = compound_windows(etf_returns(), WINDOWS).T if etf is None else etf
    return compute_replays(pv, m, snaps(eq), [scenario(s) for s in scns], own, etf).set_index(
        ["portfolio_id", "scenario_id"])


def test_own_history_proxy_and_missing_positions():
    pv = pv_rows([
        ("P1", "a", "OLD", "PUBLIC", 10_000.0),  # own history in both windows
        ("P1", "b", "NEW", "PUBLIC", 5_000.0),  # proxied in covid, own history in later
        ("P1", "c", "NOMODEL", "PUBLIC", 2_000.0),  # neither: missing
        ("P1", "d", "OLD240621C00100000", "OPTIONS", 1_000.0),  # options: missing
        ("P1", "e", "PRIV_X", "PRIVATE", 50_000.0),  # private: not replayed, not in scope
        ("P1", "f", "OLD", "PUBLIC", float("nan")),  # unpriced: not in scope
    ])
    m = model(loadings("OLD", market=1.3), loadings("NEW", market=1.5, rates=0.2, growth_excess=0.8))
    res = run(pv, m, {"P1": 100_000.0})
    assert set(res.reset_index().columns) == set(REPLAY_RESULT_COLUMNS)
    own = compound_windows(stock_returns(), WINDOWS)
    etf = compound_windows(etf_returns(), WINDOWS)
    spy, tlt, vug = etf.loc["SPY", "covid"], etf.loc["TLT", "covid"], etf.loc["VUG", "covid"]
    proxy = 1.5 * spy + 0.2 * tlt + 0.8 * (vug - spy)
    r = res.loc[("P1", "covid")]
    assert r.pnl == pytest.approx(10_000 * own.loc["OLD", "covid"] + 5_000 * proxy, rel=1e-12)
    assert r.pct_equity == pytest.approx(r.pnl / 100_000)
    assert (r.positions_replayed, r.positions_proxied, r.positions_missing) == (1, 1, 2)
    assert r.replayed_share == pytest.approx(10_000 / 18_000)
    assert r.proxied_share == pytest.approx(5_000 / 18_000)
    assert r.coverage == pytest.approx(15_000 / 18_000)
    assert r.replayable and r.reason is None
    top = json.loads(r.top_contributors)
    assert [t[0] for t in top] == sorted(["a", "b"], key=lambda p: -abs({"a": 10_000 * own.loc["OLD", "covid"], "b": 5_000 * proxy}[p]))
    assert all(t[2] is not None for t in top)
    later = res.loc[("P1", "later")]
    assert later.pnl == pytest.approx(10_000 * own.loc["OLD", "later"] + 5_000 * own.loc["NEW", "later"], rel=1e-12)
    assert (later.positions_replayed, later.positions_proxied, later.positions_missing) == (2, 0, 2)


def test_long_proxy_loss_capped_at_value_short_uncapped():
    etf = compound_windows(etf_returns(), WINDOWS).T
    etf.loc["covid", "SPY"] = -0.45  # a crash window
    pv = pv_rows([("P1", "l", "NOMODEL", "PUBLIC", 10_000.0), ("P2", "s", "NOMODEL", "PUBLIC", -10_000.0)])
    m = model(loadings("NOMODEL", market=3.0))
    res = run(pv, m, {"P1": 10_000.0, "P2": 30_000.0}, scns=("covid",), etf=etf)
    ret = 3.0 * -0.45  # only the market loading is non-zero
    assert ret < -1
    assert res.loc[("P1", "covid"), "pnl"] == pytest.approx(-10_000)  # not −13,500
    assert res.loc[("P2", "covid"), "pnl"] == pytest.approx(-10_000 * ret)  # short: uncapped gain


def test_missing_etf_window_is_not_replayable_never_zero():
    etf = compound_windows(etf_returns(), WINDOWS).T
    etf.loc["covid", "USMV"] = np.nan
    pv = pv_rows([("P1", "a", "OLD", "PUBLIC", 10_000.0)])
    res = run(pv, model(loadings("OLD", market=1.0)), {"P1": 10_000.0}, scns=("covid", "later", "lehman"), etf=etf)
    for sid in ("covid", "lehman"):
        r = res.loc[("P1", sid)]
        assert math.isnan(r.pnl) and math.isnan(r.pct_equity) and not r.replayable
        assert r.reason.startswith("not_replayable: ") and r.top_contributors == "[]"
    assert "USMV" in res.loc[("P1", "covid"), "reason"]
    assert res.loc[("P1", "later"), "replayable"] and np.isfinite(res.loc[("P1", "later"), "pnl"])


def test_portfolios_with_nothing_replayed_have_nan_not_zero():
    pv = pv_rows([
        ("P2", "x", "PRIV_FUND", "PRIVATE", 50_000.0),
        ("P3", "o", "OLD240621C00100000", "OPTIONS", 1_000.0),
        ("P4", "n", "NOMODEL", "PUBLIC", 1_000.0),
    ])
    res = run(pv, model(loadings("OLD", market=1.0)), {"P1": 1_000.0, "P2": 1.0, "P3": 1.0, "P4": 1.0})
    assert len(res) == 4 * 2
    for p in ("P1", "P2", "P3", "P4"):
        r = res.loc[(p, "covid")]
        assert math.isnan(r.pnl) and r.top_contributors == "[]" and r.replayable
    assert math.isnan(res.loc[("P1", "covid"), "coverage"])  # nothing in scope
    assert res.loc[("P3", "covid"), "coverage"] == 0.0 and res.loc[("P3", "covid"), "positions_missing"] == 1


def test_contributor_list_leaves_out_positions_not_replayed_for_that_window_and_escapes_ids():
    pv = pv_rows([("P1", 'we"ird', "OLD", "PUBLIC", 10_000.0), ("P1", "n", "NEW", "PUBLIC", 5_000.0)])
    res = run(pv, model(), {"P1": 20_000.0})  # no loadings at all: NEW cannot be proxied
    covid = json.loads(res.loc[("P1", "covid"), "top_contributors"])
    assert [t[0] for t in covid] == ['we"ird']
    assert res.loc[("P1", "covid"), "positions_missing"] == 1
    later = json.loads(res.loc[("P1", "later"), "top_contributors"])
    assert {t[0] for t in later} == {'we"ird', "n"}


def test_other_kinds_are_skipped_and_dates_match_loadings():
    pv = pv_rows([("P1", "b", "NEW", "PUBLIC", 5_000.0)])
    stale = model(loadings("NEW", market=1.0)).assign(date=TODAY - pd.Timedelta(days=1))
    own = compound_windows(stock_returns(), WINDOWS)
    etf = compound_windows(etf_returns(), WINDOWS).T
    res = compute_replays(pv, stale, snaps({"P1": 5_000.0}),
                          [scenario("covid"), {"id": "mkt", "kind": "shock", "shocks": {"Market": -0.1}}], own, etf)
    assert list(res.columns) == REPLAY_RESULT_COLUMNS
    assert list(res["scenario_id"]) == ["covid"]
    assert math.isnan(res.iloc[0].pnl) and res.iloc[0].positions_missing == 1  # yesterday's loadings unused
