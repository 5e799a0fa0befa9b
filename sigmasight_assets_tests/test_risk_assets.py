"""The ex-ante risk assets through Dagster (issue 18): ``portfolio_risk``, ``risk_contributions``,
``var_backtest``.

A small ledger on the synthetic market: ``P-MIX`` (four stocks long and short, an option, a private
fund), ``P-ONE`` (one stock), ``P-PRIV`` (private only). Market data for the 260 sessions before the
range, then ONE run of the whole graph over a 3-session range. The numbers are recomputed here from
the stored tables with plain numpy: the volatility as sqrt(wᵀ(L Σ_f Lᵀ + diag D)w) with a dense N×N
matrix, the hypothetical P&L from the stored closes, the backtest's VaR from the previous day's row.

The backtest's traffic-light check runs on stored ``portfolio_risk`` rows written here (a year of
normal P&L against a correct and an under-scaled σ), selecting ``var_backtest`` alone.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, DagsterInstance
from scipy import stats

from sigmasight_assets import calendar
from sigmasight_assets.warehouse import Replacement

from .helpers_graph import (MARKET_ASSETS, assert_tables_equal, check_outcomes, load_ledger,
                            metadata, module_env, new_warehouse, run_range, table)

RISK_ASSETS = ["portfolio_risk", "risk_contributions", "var_backtest"]
RANGE = calendar.sessions("2026-03-16", "2026-03-18")
HISTORY = calendar.sessions_back(calendar.previous_session(RANGE[0]), 260)
OPTION = "AAPL260618C00090000"
ETFS = ["SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]
FACTORS = ["market", "rates", "value_excess", "growth_excess", "momentum_excess", "quality_excess", "size_excess",
           "low_volatility_excess"]
HOLDINGS = {"P-MIX": {"AAPL": 300, "MSFT": -120, "JPM": 250, "XOM": 400}, "P-ONE": {"NVDA": 150}}


def ledger_rows():
    pos = []
    for pid, held in HOLDINGS.items():
        for sym, qty in held.items():
            pos.append(dict(portfolio_id=pid, symbol=sym, quantity=qty, entry_price=100, entry_date="2025-01-06"))
    pos += [
        dict(portfolio_id="P-MIX", symbol=OPTION, quantity=2, entry_price=5.0, entry_date="2025-01-06",
             investment_class="OPTIONS"),
        dict(portfolio_id="P-MIX", symbol="FUND_A", quantity=1, entry_price=100_000, entry_date="2025-01-06",
             investment_class="PRIVATE", manual_value=110_000),
        dict(portfolio_id="P-PRIV", symbol="FUND_B", quantity=1, entry_price=50_000, entry_date="2025-01-06",
             investment_class="PRIVATE", manual_value=50_000),
    ]
    for i, p in enumerate(pos):
        p.setdefault("investment_class", "PUBLIC")
        p.update(position_id=f"{p['portfolio_id']}-{i}", portfolio_name=p["portfolio_id"])
    flows = [dict(portfolio_id=p, date="2025-01-06", amount=200_000) for p in ("P-MIX", "P-ONE", "P-PRIV")]
    return pos, flows


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    base = tmp_path_factory.mktemp("risk_graph")
    with module_env(base):
        url, wh = new_warehouse(base, "risk")
        load_ledger(wh, base / "ledger", *ledger_rows())
        assert run_range(url, HISTORY[0], HISTORY[-1], MARKET_ASSETS).success
        with DagsterInstance.ephemeral() as instance:
            single = run_range(url, RANGE[0], RANGE[-1], instance=instance)
        yield {"base": base, "url": url, "wh": wh, "single": single}


def basis() -> np.ndarray:
    """f = A r_ETF: market = SPY, rates = TLT, each style = its ETF − SPY (written out here)."""
    a = np.eye(8)
    a[2:, 0] = -1.0
    return a


def dense_inputs(wh, day, pid):
    """Covered dollar positions w, loadings L (N×8), specific variances D and Σ_f of ``pid`` on ``day``."""
    held = HOLDINGS[pid]
    px = wh.read("prices", day, day, keys=list(held), columns=["symbol", "close"]).set_index("symbol")["close"]
    w = np.array([held[s] * px[s] for s in held])
    fm = wh.read("factor_model", day, day, keys=list(held))
    lw = fm.pivot(index="symbol", columns="factor", values="beta").loc[list(held), FACTORS].to_numpy()
    d = fm.groupby("symbol")["specific_variance"].first().loc[list(held)].to_numpy()
    cov = wh.read("factor_covariance", day, day).pivot(index="factor_1", columns="factor_2", values="covariance")
    sig_etf = cov.loc[ETFS, ETFS].to_numpy()
    a = basis()
    return w, lw, d, a @ sig_etf @ a.T


def store_backtest_pairs(wh, rows: pd.DataFrame, days) -> None:
    """Store hand-made ``portfolio_risk`` rows (date, portfolio_id, the 99 % VaR and the hypothetical
    P&L the backtest reads) over ``days``, with the table's count columns at 0."""
    rows = rows.copy()
    for c in ("positions_covered", "positions_options", "positions_private", "positions_unpriced",
              "positions_no_loadings", "hist_observations", "hist_proxied_returns", "positions_missing_return",
              "positions_proxied_return"):
        rows[c] = 0
    wh.replace_many([Replacement("portfolio_risk", rows, days[0], days[-1])])

def test_one_run_materialises_the_three_tables_with_their_grain(graph):
    assert graph["single"].success
    wh = graph["wh"]
    risk = table(wh, "portfolio_risk")
    assert len(risk) == 3 * len(RANGE) and set(risk["portfolio_id"]) == {"P-MIX", "P-ONE", "P-PRIV"}
    contrib = table(wh, "risk_contributions")
    per_day = contrib.groupby(["date", "portfolio_id"]).size()
    assert set(per_day.index.get_level_values(1)) == {"P-MIX", "P-ONE"}  # P-PRIV has no measured risk
    assert (per_day == 10).all()  # 8 factors, specific, one JSON row of the top positions
    assert len(table(wh, "var_backtest")) == 3 * len(RANGE)
    meta = metadata(graph["single"], "portfolio_risk", node="risk_analytics")
    assert meta["rows"] == 3 * len(RANGE) and meta["median_volatility_annual_pct_equity"] > 0
    outcomes = check_outcomes(graph["single"])
    assert outcomes[("risk_contributions", "euler_sums_to_volatility")]
    assert outcomes[("var_backtest", "traffic_light")]  # fewer than 250 observations: no light yet


@pytest.mark.parametrize("pid", ["P-MIX", "P-ONE"])
def test_volatility_equals_the_dense_quadratic_form(graph, pid):
    wh = graph["wh"]
    for day in RANGE:
        w, lw, d, sig_f = dense_inputs(wh, day, pid)
        cov = lw @ sig_f @ lw.T + np.diag(d)  # N × N
        vol = np.sqrt(w @ cov @ w)
        fvol = np.sqrt(w @ lw @ sig_f @ lw.T @ w)
        row = wh.read("portfolio_risk", day, day, keys=[pid]).iloc[0]
        assert row["volatility_daily"] == pytest.approx(vol, rel=1e-10)
        assert row["factor_volatility_daily"] == pytest.approx(fvol, rel=1e-10)
        assert row["specific_volatility_daily"] == pytest.approx(np.sqrt(w * w @ d), rel=1e-10)
        assert row["volatility_annual"] == pytest.approx(vol * np.sqrt(252), rel=1e-12)
        assert row["volatility_daily_pct_equity"] == pytest.approx(vol / row["equity"], rel=1e-12)
        x = lw.T @ w
        assert row["beta_spy"] == pytest.approx((sig_f @ x)[0] / sig_f[0, 0] / row["equity"], rel=1e-10)
        z = stats.norm.ppf(0.99)
        assert row["var_99_parametric"] == pytest.approx(z * vol, rel=1e-12)
        assert row["es_99_parametric"] == pytest.approx(vol * stats.norm.pdf(z) / 0.01, rel=1e-12)
        # Euler: factor + specific sum to σ; the listed positions are the largest |w_i (Σ w)_i / σ|
        c = wh.read("risk_contributions", day, day, keys=[pid])
        fs = c[c["component_type"] != "position"]
        assert fs["contribution"].sum() == pytest.approx(vol, rel=1e-10)
        assert fs["share"].sum() == pytest.approx(1.0, abs=1e-10)
        pos = json.loads(c.loc[c["component_type"] == "position", "positions"].iloc[0])
        expect = w * (cov @ w) / vol
        got = {symbol: c for _, symbol, c, _ in pos}  # [position_id, symbol, contribution, share]
        assert got == pytest.approx(dict(zip(HOLDINGS[pid], np.round(expect, 2))), abs=0.011)
        assert [symbol for _, symbol, _, _ in pos] == [s for _, s in sorted(zip(-np.abs(expect), HOLDINGS[pid]))]
        assert all(abs(share * vol - c) <= 0.0051 + 1e-6 * vol for _, _, c, share in pos)  # cents, 1e-6


def test_exclusions_are_counted_and_never_zero_risk(graph):
    risk = table(graph["wh"], "portfolio_risk").set_index(["portfolio_id", "date"])
    mix = risk.loc["P-MIX"]
    assert (mix["positions_covered"] == 4).all() and (mix["positions_options"] == 1).all()
    assert (mix["positions_private"] == 1).all()
    assert ((mix["coverage"] > 0.5) & (mix["coverage"] < 1.0)).all()  # the option's value is not covered
    priv = risk.loc["P-PRIV"]
    assert (priv["positions_private"] == 1).all() and (priv["positions_covered"] == 0).all()
    assert priv["volatility_daily"].isna().all() and priv["var_99_historical"].isna().all()  # NaN, not 0
    one = risk.loc["P-ONE"]
    assert (one["hist_observations"] >= 200).all() and one["var_99_historical"].gt(0).all()
    assert (one["es_99_historical"] >= one["var_99_historical"]).all()


def test_hypothetical_pnl_and_the_backtest_row_use_the_previous_day(graph):
    wh = graph["wh"]
    sym, qty = "NVDA", HOLDINGS["P-ONE"]["NVDA"]
    for day in RANGE:
        prev = calendar.previous_session(day)
        px = wh.read("prices", prev, day, keys=[sym]).set_index("date")
        assert (px["split_ratio"] == 1.0).all()
        # the day's point-in-time total return: (close + dividend) / previous close − 1
        r = (px["close"].iloc[1] + px["dividend"].iloc[1]) / px["close"].iloc[0] - 1.0
        assert r == pytest.approx(wh.read("symbol_returns", day, day, keys=[sym])["total_return"].iloc[0], rel=1e-12)
        row = wh.read("portfolio_risk", day, day, keys=["P-ONE"]).iloc[0]
        if day == RANGE[0]:
            # the previous session has no factor model in this warehouse: its holdings were not
            # covered, so there is no P&L to compare (NaN, not 0)
            assert np.isnan(row["hypothetical_pnl"])
        else:
            assert row["hypothetical_pnl"] == pytest.approx(qty * px["close"].iloc[0] * r, rel=1e-10)
        bt = wh.read("var_backtest", day, day, keys=["P-ONE"]).iloc[0]
        if day == RANGE[0]:
            assert np.isnan(bt["var_99_previous"]) and pd.isna(bt["exception"])  # not an observation
        else:
            before = wh.read("portfolio_risk", prev, prev, keys=["P-ONE"]).iloc[0]
            assert bt["var_99_previous"] == before["var_99_parametric"]
            assert bool(bt["exception"]) == (row["hypothetical_pnl"] < -before["var_99_parametric"])
        assert bt["traffic_light"] is None


def test_rerun_is_idempotent_and_a_scoped_run_touches_only_its_books(graph, tmp_path):
    wh, url = graph["wh"], graph["url"]
    before = {t: table(wh, t) for t in RISK_ASSETS}
    assert run_range(url, RANGE[0], RANGE[-1], RISK_ASSETS).success
    for t in RISK_ASSETS:
        pd.testing.assert_frame_equal(before[t], table(wh, t), obj=t)
    with wh.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE portfolio_risk SET volatility_daily = -1 WHERE portfolio_id = 'P-MIX'")
    scoped = {"ops": {"risk_analytics": {"config": {"portfolio_ids": ["P-ONE"]}}}}
    assert run_range(url, RANGE[0], RANGE[-1], RISK_ASSETS, run_config=scoped).success
    after = table(wh, "portfolio_risk")
    assert (after.loc[after["portfolio_id"] == "P-MIX", "volatility_daily"] == -1).all()  # untouched
    pd.testing.assert_frame_equal(after[after["portfolio_id"] == "P-ONE"].reset_index(drop=True),
                                  before["portfolio_risk"][before["portfolio_risk"]["portfolio_id"] == "P-ONE"]
                                  .reset_index(drop=True))
    assert run_range(url, RANGE[0], RANGE[-1], RISK_ASSETS).success  # restore for the other tests
    assert_tables_equal(wh, wh, RISK_ASSETS)


def test_night_by_night_equals_the_range_run(graph):
    """The risk layer recomputed one partition per run, in date order, on a copy whose risk tables were
    emptied: the backtest of a later night reads the earlier nights' stored portfolio_risk rows instead
    of the range run's in-memory ones, with the same result."""
    from .helpers_graph import copy_warehouse, run_each_day

    url, wh = copy_warehouse(graph["wh"], graph["base"], "risk_nightly")
    with wh.engine.begin() as conn:
        for t in RISK_ASSETS:
            conn.exec_driver_sql(f"DELETE FROM {t}")
    run_each_day(url, RANGE, RISK_ASSETS)
    assert_tables_equal(graph["wh"], wh, RISK_ASSETS)


def test_show_prints_the_risk_block(graph):
    from click.testing import CliRunner

    from sigmasight_assets.cli import main

    # through the group, as the command line does (invoking the command alone would cache its help
    # option without the group's -h alias)
    res = CliRunner().invoke(main, ["show", "P-MIX", "--database-url", graph["url"]])
    assert res.exit_code == 0, res.output
    out = res.output
    print(out)
    row = graph["wh"].read("portfolio_risk", RANGE[-1], RANGE[-1], keys=["P-MIX"]).iloc[0]
    assert "ex-ante risk (1-day, USD; covered 4 positions" in out and "1 options, 1 private" in out
    assert f"{row['volatility_daily']:,.0f}" in out and f"{row['var_99_parametric']:,.0f}" in out
    assert "VaR backtest (99 %, trailing 250 days): none yet" in out
    assert "risk contributions (Euler" in out and "top position" in out and "specific" in out


# -- the traffic-light check on a year of stored (VaR, P&L) pairs -----------------------------------------
def test_backtest_check_warns_on_yellow_fails_on_red_and_names_the_worst_portfolios(tmp_path):
    with module_env(tmp_path):
        url, wh = new_warehouse(tmp_path, "bt")
        pos = [dict(portfolio_id=p, portfolio_name=p, position_id=f"{p}-1", symbol="AAPL", quantity=1, entry_price=1,
                    entry_date="2025-01-06", investment_class="PUBLIC") for p in ("P-OK", "P-UNDER", "P-YELLOW")]
        load_ledger(wh, tmp_path / "ledger", pos)
        days = calendar.sessions_back("2026-03-18", 262)
        rng = np.random.default_rng(3)
        sigma = 10_000.0
        z = stats.norm.ppf(0.99)
        frames = []
        for pid, scale in (("P-OK", 1.0), ("P-UNDER", 0.5)):
            f = pd.DataFrame({"date": days, "portfolio_id": pid, "var_99_parametric": scale * z * sigma,
                              "hypothetical_pnl": rng.normal(0, sigma, len(days))})
            frames.append(f)
        yellow = np.zeros(len(days))
        yellow[-200::30] = -3 * z * sigma  # 7 losses beyond the VaR in the last 250 days, none adjacent
        frames.append(pd.DataFrame({"date": days, "portfolio_id": "P-YELLOW", "var_99_parametric": z * sigma,
                                    "hypothetical_pnl": yellow}))
        rows = pd.concat(frames, ignore_index=True)
        store_backtest_pairs(wh, rows, days)
        last = days[-3:]
        scoped = {"ops": {"risk_analytics": {"config": {"portfolio_ids": ["P-OK", "P-YELLOW"]}}}}
        res = run_range(url, last[0], last[-1], ["var_backtest"], run_config=scoped)
        ev = {e.check_name: e for e in res.get_asset_check_evaluations()}["traffic_light"]
        assert not ev.passed and ev.severity == AssetCheckSeverity.WARN  # yellow only: a warning
        assert ev.metadata["yellow_portfolios"].value == "P-YELLOW" and ev.metadata["red"].value == 0
        res = run_range(url, last[0], last[-1], ["var_backtest"], raise_on_error=False)
        assert res.success
        ev = {e.check_name: e for e in res.get_asset_check_evaluations()}["traffic_light"]
        assert not ev.passed and ev.severity == AssetCheckSeverity.ERROR
        assert ev.metadata["red_portfolios"].value == "P-UNDER"
        bt = table(wh, "var_backtest")
        final = bt[bt["date"] == last[-1]].set_index("portfolio_id")
        assert final.loc["P-UNDER", "traffic_light"] == "red" and final.loc["P-OK", "traffic_light"] == "green"
        assert final.loc["P-YELLOW", "traffic_light"] == "yellow" and final.loc["P-YELLOW", "exceptions"] == 7
        # seven isolated exceptions: the Christoffersen statistic equals a direct computation
        n01, n00, n10, n11 = 7, 250 - 1 - 7 - 7, 7, 0
        pi0, pi = n01 / (n00 + n01), (n01 + n11) / (n00 + n01 + n10 + n11)
        lr = -2 * ((n00 + n10) * np.log(1 - pi) + (n01 + n11) * np.log(pi) - n00 * np.log(1 - pi0) - n01 * np.log(pi0))
        assert final.loc["P-YELLOW", "christoffersen_lr"] == pytest.approx(lr, rel=1e-10)
        x, n = 7, 250
        kupiec = -2 * ((n - x) * np.log(0.99) + x * np.log(0.01) - (n - x) * np.log(1 - x / n) - x * np.log(x / n))
        assert final.loc["P-YELLOW", "kupiec_p_value"] == pytest.approx(stats.chi2.sf(kupiec, 1), rel=1e-10)
        assert (final["observations"] == 250).all()
        # the count is the trailing 250 sessions' exceptions of the stored pairs
        ok = rows[rows["portfolio_id"] == "P-OK"].set_index("date")
        exc = (ok["hypothetical_pnl"].to_numpy()[1:] < -ok["var_99_parametric"].to_numpy()[:-1])
        assert final.loc["P-OK", "exceptions"] == exc[-250:].sum()
        meta = metadata(res, "var_backtest", node="risk_analytics")
        assert meta["share_red"] == pytest.approx(1 / 3) and meta["share_yellow"] == pytest.approx(1 / 3)
        assert "P-UNDER" in meta["worst_portfolios"]


def test_a_yellow_day_inside_a_green_range_warns_on_that_day_only(tmp_path):
    """Issue 17, health by day: over a 3-day run P-HIDDEN has 4 exceptions in its trailing window, 5 on
    the middle day (a new one), and 4 again on the last (the oldest leaves the window). The range's
    verdict (the newest day's lights) passes; the middle day's own evaluation warns and names P-HIDDEN."""
    with module_env(tmp_path):
        url, wh = new_warehouse(tmp_path, "hidden")
        pos = [dict(portfolio_id=p, portfolio_name=p, position_id=f"{p}-1", symbol="AAPL", quantity=1, entry_price=1,
                    entry_date="2025-01-06", investment_class="PUBLIC") for p in ("P-CALM", "P-HIDDEN")]
        load_ledger(wh, tmp_path / "ledger", pos)
        days = calendar.sessions_back("2026-03-18", 262)
        var = stats.norm.ppf(0.99) * 10_000.0
        hidden = np.zeros(len(days))
        # day D's exception: P&L of D below −VaR of D−1; D's window holds the P&L of its last 250 sessions
        hidden[[-251, -200, -150, -100, -2]] = -3 * var
        rows = pd.concat([pd.DataFrame({"date": days, "portfolio_id": pid, "var_99_parametric": var,
                                        "hypothetical_pnl": pnl})
                          for pid, pnl in (("P-CALM", np.zeros(len(days))), ("P-HIDDEN", hidden))], ignore_index=True)
        store_backtest_pairs(wh, rows, days)
        last = days[-3:]
        res = run_range(url, last[0], last[-1], ["var_backtest"])
        bt = table(wh, "var_backtest").query("portfolio_id == 'P-HIDDEN'").set_index("date")
        assert list(bt.loc[last, "exceptions"]) == [4, 5, 4]
        assert list(bt.loc[last, "traffic_light"]) == ["green", "yellow", "green"]
        evals = [e for e in res.get_asset_check_evaluations() if e.check_name == "traffic_light"]
        [whole] = [e for e in evals if e.partition is None]
        assert whole.passed  # the newest day is green: the range alone would hide the yellow day
        by_day = {e.partition: e for e in evals if e.partition is not None}
        assert sorted(by_day) == [d.date().isoformat() for d in last]
        first, middle, newest = (by_day[d.date().isoformat()] for d in last)
        assert first.passed and newest.passed
        assert not middle.passed and middle.severity == AssetCheckSeverity.WARN
        assert middle.metadata["yellow"].value == 1 and middle.metadata["red"].value == 0
        assert middle.metadata["yellow_portfolios"].value == "P-HIDDEN"
        assert "P-HIDDEN" in middle.metadata["worst"].value and "judged_over" not in middle.metadata


# -- a year of backtest on the synthetic market --------------------------------------------------------
def test_a_year_on_the_synthetic_market_correct_model_green_under_scaled_sigma_red():
    """The synthetic market is a linear factor model with normal shocks (market_data/synthetic.py): the
    joint factor model fitted on it (90 sessions), the EWMA factor covariance and the ex-ante σ give a
    99 % VaR whose exceptions over 250 sessions stay near 1 %; half the σ turns every book red."""
    from sigmasight_assets.calc.covariance import ewma_factor_covariance
    from sigmasight_assets.calc.factor_model import factor_returns, rolling_factor_model
    from sigmasight_assets.calc.risk import covered_book, ex_ante_risk
    from sigmasight_assets.calc.var import hypothetical_pnl, var_backtest
    from sigmasight_assets.market_data.synthetic import SyntheticProvider

    stocks = [f"STK{i:03d}" for i in range(40)]
    sess = calendar.sessions_back("2026-03-18", 90 + 252)
    ret = SyntheticProvider(7).model_returns(stocks + ETFS, sess[0].date(), sess[-1].date())
    days = sess[-252:]
    fm, _ = rolling_factor_model(ret[stocks], factor_returns(ret[ETFS]), days)
    cov = ewma_factor_covariance(ret[ETFS], days)
    rng = np.random.default_rng(11)
    parts = []
    for p in range(60):  # 60 books of 8 stocks, long and short, held at constant dollar amounts
        held, mv = rng.choice(stocks, 8, replace=False), rng.uniform(-50_000, 150_000, 8)
        parts.append(pd.DataFrame({
            "date": np.repeat(days, 8), "portfolio_id": f"P{p:02d}", "position_id": np.tile([f"P{p}-{j}" for j in range(8)],
                                                                                            len(days)),
            "symbol": np.tile(held, len(days)), "investment_class": "PUBLIC", "market_value": np.tile(mv, len(days)),
            "is_priced": True}))
    pv = pd.concat(parts, ignore_index=True)
    snaps = (pv.assign(g=pv["market_value"].abs()).groupby(["date", "portfolio_id"], as_index=False)["g"].sum()
             .rename(columns={"g": "equity"}))
    risk, _ = ex_ante_risk(covered_book(pv, fm, snaps), cov)
    hyp = hypothetical_pnl(covered_book(pv, fm, snaps[snaps["date"] < days[-1]]), ret)
    nxt = pd.Series(days[1:], index=days[:-1])
    z = stats.norm.ppf(0.99)
    out = {}
    for scale in (1.0, 0.5):
        var = risk[["date", "portfolio_id"]].assign(var_99_previous=scale * z * risk["volatility_daily"])
        var["date"] = var["date"].map(nxt)
        obs = var.dropna(subset=["date"]).merge(hyp[["date", "portfolio_id", "hypothetical_pnl"]],
                                                on=["date", "portfolio_id"])
        out[scale] = var_backtest(obs, days[1:], days[-1:])
    good, bad = out[1.0], out[0.5]
    assert (good["observations"] == 250).all()
    rate = good["exceptions"].sum() / good["observations"].sum()
    assert 0.005 < rate < 0.015, rate
    lights = good["traffic_light"].value_counts()
    assert lights.get("green", 0) >= 0.85 * len(good) and lights.get("red", 0) == 0
    assert (bad["traffic_light"] == "red").all()


def test_book_on_a_subset_of_days_equals_the_covered_book_of_those_days():
    """The pipeline builds the covered book once for the days and their previous sessions and slices it."""
    from sigmasight_assets.calc.risk import covered_book
    from sigmasight_assets.pipelines.risk import book_on

    days = pd.DatetimeIndex(["2026-03-16", "2026-03-17", "2026-03-18"])
    rng = np.random.default_rng(1)
    rows = []
    for d in days:
        for p in ["A", "B", "C"]:
            for j, s in enumerate(["X", "Y", "Z", OPTION]):
                if p == "B" and d == days[1] and s == "X":
                    continue
                rows.append((d, p, f"{p}{j}", s, "OPTIONS" if s == OPTION else "PUBLIC", rng.normal(1000, 300), True))
    pv = pd.DataFrame(rows, columns=["date", "portfolio_id", "position_id", "symbol", "investment_class",
                                     "market_value", "is_priced"])
    fm = pd.DataFrame([(d, s, f, rng.normal(), 1e-4) for d in days for s in ["X", "Y"] for f in FACTORS],
                      columns=["date", "symbol", "factor", "beta", "specific_variance"])
    snaps = (pv.groupby(["date", "portfolio_id"], as_index=False)["market_value"].sum()
             .rename(columns={"market_value": "equity"}))
    every = covered_book(pv, fm, snaps)
    for sub in (days[1:], days[:-1], days[1:2]):
        a = book_on(every, sub)
        b = covered_book(pv, fm, snaps[snaps["date"].isin(sub)].reset_index(drop=True))
        pd.testing.assert_frame_equal(a.keys, b.keys)
        pd.testing.assert_frame_equal(a.positions, b.positions)
        pd.testing.assert_frame_equal(a.exclusions, b.exclusions)
        for f in ("group", "w", "loadings", "specific_variance"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_top_positions_json_equals_json_dumps_of_each_portfolio_days_ranked_positions():
    """The whole-array JSON of ``compact_contributions`` equals the obvious build: per portfolio-day,
    ``json.dumps`` of its ranked ``[position_id, symbol, round(contribution, 2), round(share, 6)]``
    lists — with identifiers that need escaping, tiny shares printed in exponent form and a
    portfolio-day of one position."""
    from sigmasight_assets.pipelines.risk import TOP_COMPONENT, compact_contributions

    rng = np.random.default_rng(5)
    rows = []
    for d in pd.to_datetime(["2026-03-02", "2026-03-03"]):
        for p in ("P-1", 'P "quoted"', "P-é", "P-single"):
            rows += [dict(date=d, portfolio_id=p, component_type="factor", component=f, symbol=None,
                          contribution=rng.normal(), share=rng.normal()) for f in ("market", "rates")]
            rows.append(dict(date=d, portfolio_id=p, component_type="specific", component="specific", symbol=None,
                             contribution=rng.normal(), share=rng.normal()))
            n = 1 if p == "P-single" else 6
            for i in range(n):
                rows.append(dict(date=d, portfolio_id=p, component_type="position", component=f'L{i}\\"x' if i == 2 else f"L{i}",
                                 symbol="BRK.B" if i == 1 else "ÄPFEL" if i == 3 else f"S{i}",
                                 contribution=rng.normal() * 10.0 ** rng.integers(-3, 5),
                                 share=rng.normal() * 10.0 ** rng.integers(-9, 0)))
    contributions = pd.DataFrame(rows)
    got = compact_contributions(contributions)
    top = got[got["component"] == TOP_COMPONENT].set_index(["date", "portfolio_id"])
    for (d, p), grp in contributions[contributions["component_type"] == "position"].groupby(["date", "portfolio_id"]):
        want = json.dumps([[r.component, r.symbol, round(r.contribution, 2), round(r.share, 6)]
                           for r in grp.itertuples()], separators=(",", ":"))
        assert top.loc[(d, p), "positions"] == want
        assert json.loads(top.loc[(d, p), "positions"]) == json.loads(want)
        assert top.loc[(d, p), "contribution"] == pytest.approx(grp["contribution"].sum(), rel=1e-12)
    assert len(top) == 8 and (got["component_type"] != "position").sum() == 24
