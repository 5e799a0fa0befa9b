"""The portfolio analytics through Dagster (issue 4): ``portfolio_snapshots``, ``correlations``,
``aggregated_exposures``, ``stress_results``.

One ledger of six small books, written as CSV and loaded like ``load-portfolios``:

* ``P-HAND`` long 200 AAPL, short 100 MSFT, 3 AAPL calls (×100), a private fund at its manual value,
  a deposit, a weekend withdrawal and a mid-range deposit: snapshot, exposures and stress are
  recomputed here by plain arithmetic from the stored prices, betas and factor_model loadings;
* ``P-TLT`` long TLT (the rate shock); ``P-BETA`` $1.2M of SPY on $1.0M of equity (beta 1.2);
* ``P-PRIV`` private only, ``P-NEW`` NEWCO only (listed 2026-03-02, < 30 returns in the range: no
  regression betas), ``P-CASH`` a position exited before the range plus a deleted one (cash only).

Set-up (module scope): market-data history over the 91 sessions before the range, a copy of it,
then ONE run of the whole graph over the 4-session range (warehouse ``single``) and the same range
night by night (whole graph, one partition per run, in order) on the copy. The reverse-order run
recomputes only the portfolio assets, newest day first, on a copy of ``single`` whose portfolio
tables were emptied (their upstream partitions exist, as in any backfill of the portfolio layer).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetCheckSeverity, DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.market_data.synthetic import SyntheticProvider

from .helpers_graph import (
    stored_returns,
    MARKET_ASSETS,
    PORTFOLIO_ASSETS,
    STYLE_ETFS,
    assert_tables_equal,
    check_outcomes,
    copy_warehouse,
    iso,
    load_ledger,
    materializations,
    metadata,
    module_env,
    new_warehouse,
    run_each_day,
    run_range,
    table,
)

RANGE = calendar.sessions("2026-03-16", "2026-03-19")
HISTORY = calendar.sessions_back(calendar.previous_session(RANGE[0]), 91)
PREV = {d: calendar.previous_session(d) for d in RANGE}
SCENARIO_FILE = Path(__file__).resolve().parent.parent / "sigmasight_assets" / "data" / "stress_scenarios.yaml"
SHOCK_ETF = {"Market": "SPY", "Interest_Rate": "TLT", "Value": "VTV", "Growth": "VUG", "Momentum": "MTUM",
             "Quality": "QUAL", "Size": "IWM", "Low_Volatility": "USMV"}
ETF_STYLE = {etf: style for style, etf in STYLE_ETFS.items()}
DURATION = 17.0
OPTION = "AAPL260618C00090000"


def spy_close(day) -> float:
    return float(SyntheticProvider(7).fetch_prices(["SPY"], day.date(), day.date()).frame["close"].iloc[0])


# P-BETA: $1.2M of SPY bought at the close of the range's first day on $1.0M of equity (borrowing
# $0.2M), so its equity-weighted market exposure is 1.2 (SPY's beta on itself is exactly 1).
SPY_ENTRY = spy_close(RANGE[0])
SPY_QTY = 1_200_000 / SPY_ENTRY


def ledger_rows():
    pos = [
        dict(portfolio_id="P-HAND", symbol="AAPL", quantity=200, entry_price=150, entry_date="2026-01-05"),
        dict(portfolio_id="P-HAND", symbol="MSFT", quantity=-100, entry_price=180, entry_date="2026-01-05"),
        dict(portfolio_id="P-HAND", symbol=OPTION, quantity=3, entry_price=5.0, entry_date="2026-01-05"),
        dict(portfolio_id="P-HAND", symbol="PRIVATE_FUND_X", quantity=1, entry_price=200_000, entry_date="2026-01-05",
             investment_class="PRIVATE", manual_value=250_000),
        dict(portfolio_id="P-TLT", symbol="TLT", quantity=1000, entry_price=170, entry_date="2025-06-02"),
        dict(portfolio_id="P-BETA", symbol="SPY", quantity=repr(SPY_QTY), entry_price=repr(SPY_ENTRY),
             entry_date=iso(RANGE[0])),
        dict(portfolio_id="P-PRIV", symbol="PRIVATE_FUND_Y", quantity=1, entry_price=280_000, entry_date="2025-09-01",
             investment_class="PRIVATE", manual_value=300_000),
        dict(portfolio_id="P-NEW", symbol="NEWCO", quantity=500, entry_price=45, entry_date="2026-03-02"),
        dict(portfolio_id="P-CASH", symbol="AAPL", quantity=10, entry_price=100, entry_date="2026-01-05",
             exit_date="2026-02-02", exit_price=95),
        dict(portfolio_id="P-CASH", symbol="MSFT", quantity=5, entry_price=170, entry_date="2026-01-05", deleted="true"),
    ]
    flows = [
        dict(portfolio_id="P-HAND", date="2026-01-02", amount=500_000, description="initial"),
        dict(portfolio_id="P-HAND", date="2026-03-14", amount=-10_000, description="Saturday withdrawal"),
        dict(portfolio_id="P-HAND", date="2026-03-18", amount=25_000, description="mid-range deposit"),
        dict(portfolio_id="P-TLT", date="2025-06-02", amount=170_000),
        dict(portfolio_id="P-BETA", date=iso(RANGE[0]), amount=1_000_000),
        dict(portfolio_id="P-PRIV", date="2025-09-01", amount=300_000),
        dict(portfolio_id="P-NEW", date="2026-03-02", amount=22_500),
        dict(portfolio_id="P-CASH", date="2026-01-02", amount=10_000),
    ]
    return pos, flows


PORTFOLIOS = ["P-BETA", "P-CASH", "P-HAND", "P-NEW", "P-PRIV", "P-TLT"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    base = tmp_path_factory.mktemp("portfolio_graph")
    with module_env(base):
        url, wh = new_warehouse(base, "single")
        load_ledger(wh, base / "ledger", *ledger_rows())
        assert run_range(url, HISTORY[0], HISTORY[-1], MARKET_ASSETS).success
        nightly_url, nightly_wh = copy_warehouse(wh, base, "nightly")
        with DagsterInstance.ephemeral() as instance:
            single = run_range(url, RANGE[0], RANGE[-1], instance=instance)  # the whole graph
            n_runs = len(instance.get_runs())
        nightly = run_each_day(nightly_url, RANGE)  # whole graph, one day per run, in order
        reverse_url, reverse_wh = copy_warehouse(wh, base, "reverse")
        with reverse_wh.engine.begin() as conn:
            for t in PORTFOLIO_ASSETS:
                conn.exec_driver_sql(f"DELETE FROM {t}")
        reverse = run_each_day(reverse_url, RANGE[::-1], PORTFOLIO_ASSETS)
        yield {"base": base, "url": url, "wh": wh, "single": single, "n_runs": n_runs, "nightly": nightly,
               "nightly_wh": nightly_wh, "reverse": reverse, "reverse_wh": reverse_wh}


# -- independent arithmetic -------------------------------------------------------------------------
def closes(wh, symbols) -> pd.DataFrame:
    px = wh.read("prices", PREV[RANGE[0]], RANGE[-1], keys=symbols, columns=["date", "symbol", "close"])
    return px.pivot(index="date", columns="symbol", values="close")


def betas_of(wh, day, symbol) -> dict[str, float]:
    out = {}
    for t in ("symbol_betas", "ridge_factors"):
        b = wh.read(t, day, day, keys=[symbol], columns=["factor", "beta"])
        out.update(dict(zip(b["factor"], b["beta"])))
    return out


def held_dividends(wh, symbol: str, qty: float, entry, through, exit=None) -> float:
    """Dividends a holding of ``qty`` receives (a short pays): ex-dates after ``entry`` up to ``through``
    (and up to ``exit``, the last day held at a previous close), from the stored prices; no split."""
    end = min(pd.Timestamp(through), pd.Timestamp(exit)) if exit is not None else pd.Timestamp(through)
    if end <= pd.Timestamp(entry):
        return 0.0
    acts = wh.read("prices", calendar.sessions(pd.Timestamp(entry) + pd.Timedelta(days=1), end)[0], end,
                   keys=[symbol], columns=["dividend", "split_ratio"])
    assert (acts["split_ratio"] == 1.0).all()
    return qty * float(acts["dividend"].sum())


def hand_dividends(wh, day) -> float:
    """Dividends of P-HAND's stocks with an ex-date after the 2026-01-05 entry up to ``day``: credited
    on the long 200 AAPL, debited on the short 100 MSFT (neither splits in 2026)."""
    acts = wh.read("prices", "2026-01-06", day, keys=["AAPL", "MSFT"], columns=["symbol", "dividend", "split_ratio"])
    assert (acts["split_ratio"] == 1.0).all()
    per_share = acts.groupby("symbol")["dividend"].sum()
    return 200 * per_share.get("AAPL", 0.0) - 100 * per_share.get("MSFT", 0.0)


def loadings_of(wh, day, symbol) -> dict[str, float]:
    """The symbol's joint factor_model loadings (market, rates, <style>_excess) on ``day``."""
    b = wh.read("factor_model", day, day, keys=[symbol], columns=["factor", "beta"])
    return dict(zip(b["factor"], b["beta"]))


def hand_equity(px: pd.DataFrame, day, wh) -> float:
    flows = 500_000 - (10_000 if day >= pd.Timestamp("2026-03-14") else 0) + (25_000 if day >= pd.Timestamp("2026-03-18") else 0)
    cost = 200 * 150 + (-100) * 180 + 3 * 5.0 * 100 + 200_000
    mv = 200 * px.at[day, "AAPL"] - 100 * px.at[day, "MSFT"] + 300 * px.at[day, OPTION] + 250_000
    return flows - cost + hand_dividends(wh, day) + mv


def scenarios(path=SCENARIO_FILE) -> list[dict]:
    return [s for s in yaml.safe_load(Path(path).read_text())["scenarios"] if s["active"]]


def shock_scenarios(path=SCENARIO_FILE) -> list[dict]:
    """The active shock scenarios (the replays have a dated window instead of shocks)."""
    return [s for s in scenarios(path) if s.get("kind", "shock") == "shock"]


REPLAY_IDS = {s["id"] for s in scenarios() if s.get("kind") == "replay"}


def direct_return(b: dict[str, float], shocks: dict[str, float]) -> float:
    """L_market·ΔSPY + L_rates·ΔTLT + Σ_k L_k_excess·(Δ_k − ΔSPY) over the named shocks only (an unnamed
    style ETF moves with SPY: no excess move; DESIGN §5 Stress)."""
    moves = {SHOCK_ETF[k]: (-DURATION * v if k == "Interest_Rate" else v) for k, v in shocks.items()}
    spy = moves.get("SPY", 0.0)
    r = b["market"] * spy + b["rates"] * moves.get("TLT", 0.0)
    for etf, style in ETF_STYLE.items():
        if etf in moves:
            r += b[f"{style}_excess"] * (moves[etf] - spy)
    return r


def correlated_return(b: dict[str, float], shocks: dict[str, float], cov: pd.DataFrame) -> float:
    """Unshocked ETFs filled with Σ_us Σ_ss⁻¹ Δ_s, then the same mapping on every ETF."""
    moves = {SHOCK_ETF[k]: (-DURATION * v if k == "Interest_Rate" else v) for k, v in shocks.items()}
    s = [e for e in cov.index if e in moves]
    u = [e for e in cov.index if e not in moves]
    fill = cov.loc[u, s].to_numpy() @ np.linalg.solve(cov.loc[s, s].to_numpy(), np.array([moves[e] for e in s]))
    moves.update(dict(zip(u, fill)))
    r = b["market"] * moves["SPY"] + b["rates"] * moves["TLT"]
    for etf, style in ETF_STYLE.items():
        r += b[f"{style}_excess"] * (moves[etf] - moves["SPY"])
    return r


def row(frame: pd.DataFrame, **keys) -> pd.Series:
    sel = frame
    for k, v in keys.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, keys
    return sel.iloc[0]


# -- the run -----------------------------------------------------------------------------------------
def test_the_range_is_one_run_and_every_portfolio_asset_is_materialised_per_day(graph):
    assert graph["single"].success and graph["n_runs"] == 1
    for name in PORTFOLIO_ASSETS:
        mats = materializations(graph["single"], name, node="portfolio_analytics")
        assert sorted(m.partition for m in mats) == [iso(d) for d in RANGE], name
    snaps = graph["wh"].read("portfolio_snapshots")
    assert sorted(snaps["portfolio_id"].unique()) == PORTFOLIOS
    assert len(snaps) == len(PORTFOLIOS) * len(RANGE)


# -- P-HAND on paper ---------------------------------------------------------------------------------
def test_hand_portfolio_snapshot_equals_the_arithmetic_on_stored_prices(graph):
    wh = graph["wh"]
    px = closes(wh, ["AAPL", "MSFT", OPTION])
    snaps = wh.read("portfolio_snapshots")
    for day in RANGE:
        s = row(snaps, portfolio_id="P-HAND", date=day)
        a, m, o = 200 * px.at[day, "AAPL"], -100 * px.at[day, "MSFT"], 300 * px.at[day, OPTION]
        flows = 500_000 - 10_000 + (25_000 if day >= pd.Timestamp("2026-03-18") else 0)
        cash = flows - (200 * 150 - 100 * 180 + 300 * 5.0 + 200_000) + hand_dividends(wh, day)
        equity = hand_equity(px, day, wh)
        prev_equity = hand_equity(px, PREV[day], wh)
        flow_today = {pd.Timestamp("2026-03-16"): -10_000, pd.Timestamp("2026-03-18"): 25_000}.get(day, 0)
        pnl = equity - prev_equity - flow_today
        expect = {
            "cash": cash, "equity": cash + a + m + o + 250_000,
            "long_exposure": a + o + 250_000, "short_exposure": m, "gross_exposure": a - m + o + 250_000,
            "net_exposure": a + m + o + 250_000, "daily_pnl": pnl, "daily_return": pnl / prev_equity,
            "cumulative_flows": flows, "cumulative_pnl": equity - flows,
            "dividends": hand_dividends(wh, day) - hand_dividends(wh, PREV[day]),
        }
        assert expect["equity"] == pytest.approx(equity, rel=1e-12)
        for col, v in expect.items():
            assert s[col] == pytest.approx(v, rel=1e-9, abs=1e-6), (day, col)
        assert (s["position_count"], s["long_count"], s["short_count"], s["unpriced_count"]) == (4, 3, 1, 0)
        assert not s["is_partial"]
    # The Saturday withdrawal counts from Monday 03-16: it is not a loss of that day.
    monday = row(snaps, portfolio_id="P-HAND", date=RANGE[0])
    assert monday["cumulative_flows"] == 490_000


def test_hand_portfolio_exposures_equal_sum_of_mv_times_beta(graph):
    wh = graph["wh"]
    px = closes(wh, ["AAPL", "MSFT", OPTION])
    expo = wh.read("aggregated_exposures")
    snaps = wh.read("portfolio_snapshots")
    for day in RANGE:
        mv = {"AAPL": 200 * px.at[day, "AAPL"], "MSFT": -100 * px.at[day, "MSFT"]}
        opt = 300 * px.at[day, OPTION]
        equity = row(snaps, portfolio_id="P-HAND", date=day)["equity"]
        b = {s: betas_of(wh, day, s) for s in mv}
        for factor in ("market", "ir", "value", "low_volatility"):
            r = row(expo, portfolio_id="P-HAND", date=day, factor=factor)
            dollar = sum(mv[s] * b[s][factor] for s in mv)
            assert r["exposure_dollar"] == pytest.approx(dollar, rel=1e-9), (day, factor)
            assert r["exposure_value"] == pytest.approx(dollar / equity, rel=1e-9)
            # Options are in scope but never get a beta (no delta); the private fund is out of scope.
            assert r["coverage"] == pytest.approx((abs(mv["AAPL"]) + abs(mv["MSFT"])) /
                                                  (abs(mv["AAPL"]) + abs(mv["MSFT"]) + abs(opt)), rel=1e-12)
            assert (r["positions_with_beta"], r["positions_missing_beta"]) == (2, 1)
    assert set(expo["factor"]) == {"market", "ir", "provider", *STYLE_ETFS, "growth_value", "momentum_spread",
                                   "size_spread", "quality_spread"}


def test_hand_portfolio_direct_and_correlated_stress_on_paper(graph):
    wh = graph["wh"]
    px = closes(wh, ["AAPL", "MSFT", OPTION])
    stress = wh.read("stress_results")
    scns = shock_scenarios()
    day = RANGE[-1]
    mv = {"AAPL": 200 * px.at[day, "AAPL"], "MSFT": -100 * px.at[day, "MSFT"]}
    b = {s: loadings_of(wh, day, s) for s in mv}
    cov_long = wh.read("factor_covariance", day, day)
    cov = cov_long.pivot(index="factor_1", columns="factor_2", values="covariance")
    etfs = list(SHOCK_ETF.values())
    cov = cov.loc[etfs, etfs]
    equity = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-HAND")["equity"]
    for scn in scns:
        direct = corr = 0.0
        for s, v in mv.items():
            d, c = v * direct_return(b[s], scn["shocks"]), v * correlated_return(b[s], scn["shocks"], cov)
            if v > 0:  # a long position cannot lose more than its value
                d, c = max(d, -v), max(c, -v)
            direct, corr = direct + d, corr + c
        r = row(stress, portfolio_id="P-HAND", date=day, scenario_id=scn["id"])
        assert r["direct_pnl"] == pytest.approx(direct, rel=1e-9, abs=1e-6), scn["id"]
        assert r["correlated_pnl"] == pytest.approx(corr, rel=1e-7, abs=1e-4), scn["id"]
        assert r["correlation_effect"] == pytest.approx(corr - direct, rel=1e-6, abs=1e-4)
        assert r["direct_pct_equity"] == pytest.approx(direct / equity, rel=1e-9, abs=1e-12)
        assert (r["positions_covered"], r["positions_missing_beta"]) == (2, 1)  # the option is counted missing
        # coverage: AAPL and MSFT of the in-scope gross (the option is in scope, the private fund is not)
        opt = 300 * px.at[day, OPTION]
        gross = abs(mv["AAPL"]) + abs(mv["MSFT"])
        assert r["coverage"] == pytest.approx(gross / (gross + abs(opt)), rel=1e-12)
        assert math.isnan(r["replayed_share"])
        top = json.loads(r["top_contributors"])
        assert {t[1] for t in top} == {"AAPL", "MSFT"}  # [position_id, symbol, pnl]
    # The rate shock is a TLT move of −17·Δy (no legacy sign error): +100bp moves TLT by −17 %.
    r = row(stress, portfolio_id="P-HAND", date=day, scenario_id="rates_up_100bp")
    ir_only = sum(v * b[s]["rates"] * (-0.17) for s, v in mv.items())
    assert r["direct_pnl"] == pytest.approx(ir_only, rel=1e-9)


# -- named shocks -------------------------------------------------------------------------------------
def test_rate_rise_loses_money_on_a_long_tlt_book(graph):
    wh = graph["wh"]
    stress = wh.read("stress_results")
    px = closes(wh, ["TLT"])
    for day in RANGE:
        up = row(stress, portfolio_id="P-TLT", date=day, scenario_id="rates_up_100bp")
        down = row(stress, portfolio_id="P-TLT", date=day, scenario_id="rates_down_100bp")
        mv = 1000 * px.at[day, "TLT"]
        # TLT's joint loading on `rates` (itself) is 1 less the ridge shrinkage (α = 1 on 90 standardised
        # returns), so +100bp is −17 % × L_rates of the position (the OLS IR beta was exactly 1).
        l_rates = loadings_of(wh, day, "TLT")["rates"]
        assert l_rates == pytest.approx(1.0, abs=0.03) and l_rates < 1.0
        assert up["direct_pnl"] < 0 < down["direct_pnl"]
        assert up["direct_pnl"] == pytest.approx(-0.17 * mv * l_rates, rel=1e-9)
        assert up["correlated_pnl"] < 0


def test_beta_1_2_book_loses_12_percent_in_market_down_10(graph):
    """Direct P&L = −10 % × MV × L_market, i.e. about −10 % × 1.2 × equity for the levered SPY book.

    SPY's joint `market` loading (on itself) is 1 less the ridge shrinkage, within 3 % of 1 (about
    0.978 here; the ridge moves a little of it to the correlated excess factors; the displayed OLS
    beta in aggregated_exposures is exactly 1). On the entry day MV = 1.2M and equity = 1.0M; on later
    days the ratio MV / (MV − 0.2M) drifts with SPY: a ±5 % SPY move keeps it within 1.2 ∓ 0.013;
    with the shrinkage (≤ 0.36 % of equity) the loss stays within 12 % ± 0.6 %.
    """
    wh = graph["wh"]
    stress = wh.read("stress_results")
    expo = wh.read("aggregated_exposures")
    px = closes(wh, ["SPY"])
    for day in RANGE:
        r = row(stress, portfolio_id="P-BETA", date=day, scenario_id="market_down_10")
        m = row(expo, portfolio_id="P-BETA", date=day, factor="market")
        mv = SPY_QTY * px.at[day, "SPY"]
        equity = 1_000_000 - SPY_QTY * SPY_ENTRY + held_dividends(wh, "SPY", SPY_QTY, RANGE[0], day) + mv
        assert betas_of(wh, day, "SPY")["market"] == pytest.approx(1.0, abs=1e-12)
        l_market = loadings_of(wh, day, "SPY")["market"]
        assert l_market == pytest.approx(1.0, abs=0.03)
        assert m["exposure_value"] == pytest.approx(mv / equity, rel=1e-9)
        assert r["direct_pnl"] == pytest.approx(-0.10 * mv * l_market, rel=1e-9)
        assert r["direct_pct_equity"] == pytest.approx(-0.10 * mv * l_market / equity, rel=1e-9)
        assert r["direct_pct_equity"] == pytest.approx(-0.12, abs=0.006)
        assert m["coverage"] == 1.0 and r["positions_covered"] == 1 and r["coverage"] == 1.0
    first = row(stress, portfolio_id="P-BETA", date=RANGE[0], scenario_id="market_down_10")
    l_first = loadings_of(wh, RANGE[0], "SPY")["market"]
    assert first["direct_pnl"] == pytest.approx(-120_000 * l_first, rel=1e-12)
    assert first["direct_pct_equity"] == pytest.approx(-0.12 * l_first, rel=1e-12)
    # The loss cap is per long position, not on net: the 35 % crash is simply 1.2 × 35 % × L_market of equity.
    crash = row(stress, portfolio_id="P-BETA", date=RANGE[0], scenario_id="market_crash_35")
    assert crash["direct_pct_equity"] == pytest.approx(-0.42 * l_first, rel=1e-12)


# -- books without measurable exposure ----------------------------------------------------------------
def test_private_only_book_has_a_snapshot_and_documented_nan_exposure_and_stress(graph):
    wh = graph["wh"]
    for day in RANGE:
        s = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-PRIV")
        assert (s["equity"], s["cash"], s["gross_exposure"], s["position_count"]) == (320_000, 20_000, 300_000, 1)
        assert s["daily_pnl"] == 0 and s["unpriced_count"] == 0
        expo = wh.read("aggregated_exposures", day, day).query("portfolio_id == 'P-PRIV'")
        assert len(expo) == 13
        # calc/exposures.py: no position in scope → exposure and coverage NaN, both counts 0.
        assert expo[["exposure_dollar", "exposure_value", "coverage"]].isna().all().all()
        assert (expo["positions_with_beta"] == 0).all() and (expo["positions_missing_beta"] == 0).all()
        st = wh.read("stress_results", day, day).query("portfolio_id == 'P-PRIV'")
        # calc/stress.py: no covered position → P&L NaN (nothing measured), never 0.
        assert len(st) == 24  # 19 shocks + 5 replays
        assert st[["direct_pnl", "correlated_pnl", "direct_pct_equity"]].isna().all().all()
        assert (st["positions_covered"] == 0).all() and (st["positions_missing_beta"] == 0).all()
        c = row(wh.read("correlations", day, day), portfolio_id="P-PRIV")
        assert (c["n_symbols"], c["symbols"], c["matrix"]) == (0, "[]", "[]")
        assert math.isnan(c["avg_correlation"]) and math.isnan(c["effective_positions_corr"])


def test_book_whose_symbols_lack_betas_reports_zero_coverage_not_zero_exposure(graph):
    wh = graph["wh"]
    px = closes(wh, ["NEWCO"])
    for day in RANGE:
        assert betas_of(wh, day, "NEWCO").keys() == {"provider"}  # < 30 returns since listing
        expo = wh.read("aggregated_exposures", day, day).query("portfolio_id == 'P-NEW'").set_index("factor")
        regression = expo.drop(index="provider")
        # calc/exposures.py: in scope but no β → exposure NaN, coverage 0, positions_missing_beta > 0.
        assert regression[["exposure_dollar", "exposure_value"]].isna().all().all()
        assert (regression["coverage"] == 0).all()
        assert (regression["positions_missing_beta"] == 1).all() and (regression["positions_with_beta"] == 0).all()
        prov = expo.loc["provider"]
        mv = 500 * px.at[day, "NEWCO"]
        assert prov["exposure_dollar"] == pytest.approx(mv * betas_of(wh, day, "NEWCO")["provider"], rel=1e-12)
        assert prov["coverage"] == 1.0
        st = wh.read("stress_results", day, day).query("portfolio_id == 'P-NEW'")
        assert loadings_of(wh, day, "NEWCO") == {}  # < 60 returns: no joint model either
        assert st["direct_pnl"].isna().all() and st["correlated_pnl"].isna().all()
        shocks = st[~st["scenario_id"].isin(REPLAY_IDS)]
        assert len(shocks) == 19 and (shocks["coverage"] == 0).all()
        assert (st["positions_covered"] == 0).all() and (st["positions_missing_beta"] == 1).all()
        s = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-NEW")
        divs = held_dividends(wh, "NEWCO", 500, "2026-03-02", day)
        assert s["equity"] == pytest.approx(22_500 - 500 * 45 + divs + mv, rel=1e-12)


def test_cash_only_book_after_an_exit_and_a_deleted_row(graph):
    wh = graph["wh"]
    for day in RANGE:
        s = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-CASH")
        # 10,000 deposit − 10×100 bought + 10×95 sold + the AAPL dividends while held; the deleted MSFT
        # row never existed.
        cash = 9_950 + held_dividends(wh, "AAPL", 10, "2026-01-05", day, exit="2026-02-02")
        assert cash > 9_950  # AAPL went ex-dividend while it was held
        assert (s["equity"], s["cash"], s["gross_exposure"], s["net_exposure"]) == (
            pytest.approx(cash, abs=1e-9), pytest.approx(cash, abs=1e-9), 0, 0)
        assert (s["position_count"], s["long_count"], s["short_count"]) == (0, 0, 0)
        assert s["daily_pnl"] == 0 and s["daily_return"] == 0
        assert math.isnan(s["hhi"]) and math.isnan(s["effective_positions_hhi"])
        expo = wh.read("aggregated_exposures", day, day).query("portfolio_id == 'P-CASH'")
        assert len(expo) == 13 and expo["exposure_dollar"].isna().all() and expo["coverage"].isna().all()
        st = wh.read("stress_results", day, day).query("portfolio_id == 'P-CASH'")
        assert len(st) == 24 and st["direct_pnl"].isna().all() and (st["positions_covered"] == 0).all()
        assert row(wh.read("correlations", day, day), portfolio_id="P-CASH")["n_symbols"] == 0


# -- scenarios ---------------------------------------------------------------------------------------
def test_every_active_scenario_has_a_row_for_every_portfolio_day(graph):
    stress = graph["wh"].read("stress_results")
    active = {s["id"] for s in scenarios()}
    assert len(active) == 24 and len(REPLAY_IDS) == 5  # 19 shocks, 5 replays
    per = stress.groupby(["date", "portfolio_id"])["scenario_id"].agg(set)
    assert len(per) == len(RANGE) * len(PORTFOLIOS)
    assert (per == active).all()
    assert not stress.duplicated(["date", "portfolio_id", "scenario_id"]).any()


def test_a_scenario_added_to_the_yaml_appears_in_the_next_run(graph, tmp_path, monkeypatch):
    data = yaml.safe_load(SCENARIO_FILE.read_text())
    data["scenarios"].append({"id": "test_stagflation", "name": "Test stagflation", "category": "test",
                              "severity": "severe", "active": True,
                              "shocks": {"Market": -0.08, "Interest_Rate": 0.0075, "Quality": 0.03}})
    path = tmp_path / "scenarios.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SIGMASIGHT_SCENARIOS_FILE", str(path))
    url, wh = copy_warehouse(graph["wh"], tmp_path, "more_scenarios")
    day = RANGE[-1]
    result = run_range(url, day, day, ["stress_results"])
    assert result.success
    stress = wh.read("stress_results")
    new = stress[stress["scenario_id"] == "test_stagflation"]
    assert sorted(new["portfolio_id"]) == PORTFOLIOS and set(new["date"]) == {day}
    assert (stress[stress["date"] == day].groupby("portfolio_id").size() == 25).all()
    assert (stress[stress["date"] != day].groupby(["date", "portfolio_id"]).size() == 24).all()
    # Priced like any other scenario.
    px = closes(wh, ["AAPL", "MSFT"])
    mv = {"AAPL": 200 * px.at[day, "AAPL"], "MSFT": -100 * px.at[day, "MSFT"]}
    shocks = data["scenarios"][-1]["shocks"]
    want = sum(v * direct_return(loadings_of(wh, day, s), shocks) for s, v in mv.items())
    assert row(new, portfolio_id="P-HAND")["direct_pnl"] == pytest.approx(want, rel=1e-9)
    assert check_outcomes(result)[("stress_results", "every_active_scenario")]


def test_replays_whose_windows_are_not_in_the_warehouse_are_reported_never_zero(graph):
    """The range is 2026: none of the shipped windows (2008–2022) has prices here. Every replay row
    has NULL P&L, coverage and replayed share (never 0), and the stress check warns, naming them."""
    wh, single = graph["wh"], graph["single"]
    stress = wh.read("stress_results")
    rep = stress[stress["scenario_id"].isin(REPLAY_IDS)]
    assert len(rep) == 5 * len(RANGE) * len(PORTFOLIOS)
    assert set(rep["category"]) == {"historical"}
    assert rep[["direct_pnl", "correlated_pnl", "correlated_pct_equity", "coverage", "replayed_share"]].isna().all().all()
    assert (rep["positions_covered"] == 0).all()
    hand = rep[rep["portfolio_id"] == "P-HAND"]
    assert (hand["positions_missing_beta"] == 3).all()  # AAPL, MSFT and the option are in scope, none priced
    evals = [e for e in single.get_asset_check_evaluations() if e.check_name == "replays_replayable"]
    # one verdict per day of the run (checks by day), each a warning
    assert evals and all(not e.passed and e.severity == AssetCheckSeverity.WARN for e in evals)
    md = metadata(single, "stress_results", node="portfolio_analytics")
    assert set(md["replays_not_replayable"]) == REPLAY_IDS
    assert wh.read("replay_window_returns").empty  # no window ends in the range


def test_replay_of_a_window_in_the_warehouse_own_history_proxy_and_missing(graph, tmp_path, monkeypatch):
    """A replay window inside the stored history (prices built by the run), with a hole punched in
    MSFT's prices: AAPL is replayed from its own compounded return, MSFT (a gap) is proxied by its
    factor_model loadings × the window's compounded factor moves, the option is missing; a second
    window (2008) is not in the warehouse and is reported not replayable, never 0."""
    from sigmasight_assets.calc.factor_model import FACTOR_NAMES, basis_matrix

    start, end, gap = HISTORY[-20], HISTORY[-15], HISTORY[-17]
    data = {"scenarios": [
        {"id": "market_down_10", "name": "Market Decline 10%", "category": "market", "severity": "moderate",
         "active": True, "shocks": {"Market": -0.10}},
        {"id": "hand_window", "name": "Hand window", "category": "historical", "severity": "severe", "active": True,
         "kind": "replay", "start": iso(start), "end": iso(end)},
        {"id": "replay_lehman_2008", "name": "Lehman", "category": "historical", "severity": "extreme",
         "active": True, "kind": "replay", "start": "2008-09-12", "end": "2008-10-10"},
    ]}
    path = tmp_path / "replays.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SIGMASIGHT_SCENARIOS_FILE", str(path))
    url, wh = copy_warehouse(graph["wh"], tmp_path, "replays")
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM prices WHERE symbol = 'MSFT' AND date = '{iso(gap)}'")
    # symbol_returns of the gap day and the next session follow the deleted close (missing, never 0).
    assert run_range(url, gap, HISTORY[HISTORY.get_loc(gap) + 1], ["symbol_returns"]).success
    window = run_range(url, start, end, ["replay_window_returns"])
    assert window.success
    stored = wh.read("replay_window_returns")
    assert set(stored["date"]) == {end} and set(stored["scenario_id"]) == {"hand_window"}
    assert "MSFT" not in set(stored["symbol"]) and {"AAPL", "SPY", "TLT", "IWM"} <= set(stored["symbol"])
    assert (stored["window_start"] == start).all() and (stored["sessions"] == 5).all()
    day = RANGE[-1]
    result = run_range(url, day, day, ["stress_results"])
    assert result.success

    # By hand, from the stored prices as traded (close + dividend, no split in the window) and loadings.
    px = wh.read("prices", start, end, columns=["date", "symbol", "close", "dividend", "split_ratio"])
    assert (px["split_ratio"] == 1.0).all()
    close = px.pivot(index="date", columns="symbol", values="close")
    div = px.pivot(index="date", columns="symbol", values="dividend")
    own = ((close + div) / close.shift(1)).iloc[1:].prod(min_count=len(close) - 1) - 1.0
    np.testing.assert_allclose(stored.set_index("symbol")["window_return"].sort_index(),
                               own[sorted(stored["symbol"])].to_numpy(), rtol=1e-12)
    etf = own[list(SHOCK_ETF.values())].to_numpy()  # FACTOR_ETFS order
    f_w = basis_matrix() @ etf
    l_msft = loadings_of(wh, day, "MSFT")
    closes_day = closes(wh, ["AAPL", "MSFT", OPTION])
    mv = {"AAPL": 200 * closes_day.at[day, "AAPL"], "MSFT": -100 * closes_day.at[day, "MSFT"]}
    opt = 300 * closes_day.at[day, OPTION]
    want = mv["AAPL"] * own["AAPL"] + mv["MSFT"] * float(np.array([l_msft[k] for k in FACTOR_NAMES]) @ f_w)
    stress = wh.read("stress_results", day, day)
    r = row(stress, portfolio_id="P-HAND", scenario_id="hand_window")
    gross = abs(mv["AAPL"]) + abs(mv["MSFT"]) + abs(opt)
    equity = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-HAND")["equity"]
    assert r["correlated_pnl"] == pytest.approx(want, rel=1e-9)
    assert r["correlated_pct_equity"] == pytest.approx(want / equity, rel=1e-9)
    assert math.isnan(r["direct_pnl"]) and math.isnan(r["correlation_effect"])
    assert r["replayed_share"] == pytest.approx(abs(mv["AAPL"]) / gross, rel=1e-12)
    assert r["coverage"] == pytest.approx((abs(mv["AAPL"]) + abs(mv["MSFT"])) / gross, rel=1e-12)
    assert (r["positions_covered"], r["positions_missing_beta"], r["category"]) == (2, 1, "historical")
    assert {symbol for _, symbol, _ in json.loads(r["top_contributors"])} == {"AAPL", "MSFT"}  # [position_id, symbol, pnl]
    # P-TLT: TLT's own window; P-NEW: NEWCO listed after the window and without a model → missing, NaN.
    tlt = row(stress, portfolio_id="P-TLT", scenario_id="hand_window")
    assert tlt["correlated_pnl"] == pytest.approx(1000 * closes(wh, ["TLT"]).at[day, "TLT"] * own["TLT"], rel=1e-9)
    assert tlt["replayed_share"] == 1.0
    new = row(stress, portfolio_id="P-NEW", scenario_id="hand_window")
    assert math.isnan(new["correlated_pnl"]) and new["coverage"] == 0 and new["positions_missing_beta"] == 1
    # The 2008 window: not replayable for everyone, reported (metadata, warning), never 0.
    lehman = stress[stress["scenario_id"] == "replay_lehman_2008"]
    assert len(lehman) == len(PORTFOLIOS) and lehman[["correlated_pnl", "coverage"]].isna().all().all()
    md = metadata(result, "stress_results", node="portfolio_analytics")
    assert set(md["replays_not_replayable"]) == {"replay_lehman_2008"}
    evals = [e for e in result.get_asset_check_evaluations() if e.check_name == "replays_replayable"]
    # one verdict per day of the run (checks by day), each a warning
    assert evals and all(not e.passed and e.severity == AssetCheckSeverity.WARN for e in evals)


def test_replay_window_with_a_factor_etf_gap_is_reported_not_replayable(graph, tmp_path, monkeypatch):
    start, end, gap = HISTORY[-20], HISTORY[-15], HISTORY[-17]
    data = {"scenarios": [{"id": "hand_window", "name": "Hand window", "category": "historical", "severity": "severe",
                           "active": True, "kind": "replay", "start": iso(start), "end": iso(end)}]}
    path = tmp_path / "replays.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SIGMASIGHT_SCENARIOS_FILE", str(path))
    url, wh = copy_warehouse(graph["wh"], tmp_path, "etf_gap")
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM prices WHERE symbol = 'TLT' AND date = '{iso(gap)}'")
    assert run_range(url, gap, HISTORY[HISTORY.get_loc(gap) + 1], ["symbol_returns"]).success
    window = run_range(url, end, end, ["replay_window_returns"])
    assert window.success
    [ev, *_] = [e for e in window.get_asset_check_evaluations() if e.check_name == "factor_etfs_complete"]
    assert not ev.passed and ev.severity == AssetCheckSeverity.WARN
    assert "TLT" in metadata(window, "replay_window_returns")["not_replayable"]["hand_window"]
    assert "TLT" not in set(wh.read("replay_window_returns")["symbol"])
    day = RANGE[-1]
    assert run_range(url, day, day, ["stress_results"]).success
    rows = wh.read("stress_results", day, day).query("scenario_id == 'hand_window'")
    assert len(rows) == len(PORTFOLIOS) and rows["correlated_pnl"].isna().all()  # not replayable, never 0


def test_replay_lineage_reads_the_dated_windows():
    from dagster import AssetKey, SpecificPartitionsPartitionMapping, TimeWindowPartitionMapping

    from sigmasight_assets.definitions import defs

    g = defs.resolve_asset_graph()
    ends = ["2008-10-10", "2015-08-25", "2018-02-08", "2020-03-23", "2022-10-12"]
    assert g.get_partition_mapping(AssetKey("stress_results"), AssetKey("replay_window_returns")) == \
        SpecificPartitionsPartitionMapping(ends)
    # the longest window, 2022-01-03..2022-10-12, compounds the 195 returns after its start
    assert g.get_partition_mapping(AssetKey("replay_window_returns"), AssetKey("symbol_returns")) == \
        TimeWindowPartitionMapping(start_offset=-194, end_offset=0)
    assert len(calendar.sessions("2022-01-03", "2022-10-12")) == 196


# -- checks and storage -------------------------------------------------------------------------------
def test_asset_checks(graph):
    single = graph["single"]
    outcomes = check_outcomes(single)
    for key in [("portfolio_snapshots", "equity_finite"), ("portfolio_snapshots", "gross_ge_abs_net"),
                ("stress_results", "every_active_scenario"), ("correlations", "matrices_psd")]:
        assert outcomes[key], key
    # Coverage below 80 % is flagged (warn): P-NEW has no regression betas and P-HAND holds an option.
    evals = [e for e in single.get_asset_check_evaluations() if e.check_name == "exposure_coverage"]
    # One for the range, and its verdict on each day (so no day's check is left "planned").
    [whole] = [e for e in evals if e.partition is None]
    assert not whole.passed and whole.severity == AssetCheckSeverity.WARN
    assert sorted(e.partition for e in evals if e.partition) == [d.date().isoformat() for d in RANGE]
    assert all(not e.passed and e.severity == AssetCheckSeverity.WARN for e in evals)
    # Each day is judged on its own portfolio-days, naming that day's lowest-coverage portfolios.
    expo = graph["wh"].read("aggregated_exposures").query("factor == 'market'").dropna(subset=["coverage"])
    for e in evals:
        if e.partition:
            day = expo[expo["date"] == pd.Timestamp(e.partition)]
            low = day[day["coverage"] < 0.80]
            assert e.description == (f"{len(low)} of {len(day)} portfolio-day(s) below 80% market-beta coverage "
                                     "of public gross value"), e.partition
            assert e.metadata["portfolio_days_below"].value == len(low) > 0
            assert day.nsmallest(1, "coverage")["portfolio_id"].iloc[0] in e.metadata["lowest_portfolios"].value
    snaps = graph["wh"].read("portfolio_snapshots")
    assert np.isfinite(snaps["equity"]).all()
    assert (snaps["gross_exposure"] >= snaps["net_exposure"].abs()).all()


def test_correlations_are_one_row_per_portfolio_day_with_the_stored_pearson(graph):
    wh = graph["wh"]
    corr = wh.read("correlations")
    assert not corr.duplicated(["date", "portfolio_id"]).any()
    assert len(corr) == len(RANGE) * len(PORTFOLIOS)
    day = RANGE[-1]
    hand = row(corr, portfolio_id="P-HAND", date=day)
    assert json.loads(hand["symbols"]) == ["AAPL", "MSFT"]  # the option and the private fund are not in
    # log(1 + total return), the total returns recomputed here from the stored closes and actions
    lr = np.log1p(stored_returns(wh, ["AAPL", "MSFT"], day, 90))
    want = lr["AAPL"].corr(lr["MSFT"], min_periods=30)
    assert json.loads(hand["matrix"]) == [pytest.approx(want, abs=5e-7)]
    assert hand["n_pairs"] == 1 and hand["n_pairs_insufficient"] == 0
    # w = |MV|: Neff = (w1 + w2)² / (w1² + w2² + 2 w1 w2 ρ).
    w = np.abs([200 * closes(wh, ["AAPL"]).at[day, "AAPL"], 100 * closes(wh, ["MSFT"]).at[day, "MSFT"]])
    rho = json.loads(hand["matrix"])[0]
    assert hand["effective_positions_corr"] == pytest.approx(w.sum() ** 2 / (w @ w + 2 * w[0] * w[1] * rho), rel=1e-5)
    assert hand["avg_correlation"] == pytest.approx(rho, abs=1e-6)
    single = row(corr, portfolio_id="P-TLT", date=day)
    assert (single["n_symbols"], single["n_pairs"], single["effective_positions_corr"]) == (1, 0, 1.0)


# -- nightly vs backfill -------------------------------------------------------------------------------
def test_nightly_in_order_equals_the_single_run_backfill(graph):
    assert len(graph["nightly"]) == len(RANGE)
    assert_tables_equal(graph["wh"], graph["nightly_wh"], PORTFOLIO_ASSETS)


def test_portfolio_days_in_reverse_order_equal_the_single_run_backfill(graph):
    assert len(graph["reverse"]) == len(RANGE)
    assert_tables_equal(graph["wh"], graph["reverse_wh"], PORTFOLIO_ASSETS)


# -- bounded batches --------------------------------------------------------------------------------
def _emptied_copy(graph, name: str):
    url, wh = copy_warehouse(graph["wh"], graph["base"], name)
    with wh.engine.begin() as conn:
        for t in PORTFOLIO_ASSETS:
            conn.exec_driver_sql(f"DELETE FROM {t}")
    return url, wh


def test_batches_of_portfolios_staged_on_disk_equal_the_single_batch_run(graph, monkeypatch, tmp_path):
    """A book cut into batches of two portfolios (one-day chunks, each batch validated, staged on
    disk and inserted inside the chunk's transaction, correlations sliced from one matrix of every
    held symbol) stores the rows of the one-batch run, and the metadata covers the whole range."""
    from sigmasight_assets.defs import portfolio_assets

    monkeypatch.setattr(portfolio_assets, "BATCH_PORTFOLIO_DAYS", 2)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    url, wh = _emptied_copy(graph, "batches")
    with DagsterInstance.ephemeral() as instance:
        result = run_range(url, RANGE[0], RANGE[-1], PORTFOLIO_ASSETS, instance=instance)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert result.success
    stored = [m for m in logs if "stored in" in m and "batch(es)" in m]
    assert len(stored) == len(RANGE) and all(f"stored in {-(-len(PORTFOLIOS) // 2)} batch(es)" in m for m in stored)
    assert not list(tmp_path.glob("sigmasight-portfolio-*"))  # staging removed
    assert_tables_equal(graph["wh"], wh, PORTFOLIO_ASSETS, check_exact=False)
    assert len(materializations(result, "stress_results", node="portfolio_analytics")) == len(RANGE)
    single = {k: v for k, v in check_outcomes(graph["single"]).items() if k[0] in PORTFOLIO_ASSETS}
    assert check_outcomes(result) == single

    def per_day(res):  # each day's own verdicts merge over batches as over one batch
        return sorted((e.asset_key.to_user_string(), e.check_name, e.partition, e.passed, e.description or "")
                      for e in res.get_asset_check_evaluations()
                      if e.partition and e.asset_key.to_user_string() in PORTFOLIO_ASSETS)

    assert per_day(result) == per_day(graph["single"]) and per_day(result)
    for asset in PORTFOLIO_ASSETS:
        assert (metadata(result, asset, node="portfolio_analytics")["rows"]
                == metadata(graph["single"], asset, node="portfolio_analytics")["rows"]), asset


def test_a_failing_write_keeps_every_day_of_its_chunk_as_it_was(graph, monkeypatch):
    """A batch whose rows cannot be inserted fails the step with that error; its chunk's days keep
    their previous rows in every table (the chunk's single transaction rolled back), also when the
    chunk's earlier batches were already staged and inserted."""
    from sigmasight_assets.defs import portfolio_assets

    monkeypatch.setattr(portfolio_assets, "BATCH_PORTFOLIO_DAYS", 2)
    url, wh = copy_warehouse(graph["wh"], graph["base"], "failing")
    before = {t: table(wh, t) for t in PORTFOLIO_ASSETS}
    last = iso(RANGE[-1])
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER boom BEFORE INSERT ON stress_results WHEN NEW.date = '{last}' "
                             "AND NEW.portfolio_id = 'P-TLT' BEGIN SELECT RAISE(ABORT, 'injected stress write failure'); END")
    result = run_range(url, RANGE[0], RANGE[-1], PORTFOLIO_ASSETS, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "injected stress write failure" in failure[0].event_specific_data.error.to_string()
    for t in PORTFOLIO_ASSETS:
        pd.testing.assert_frame_equal(table(wh, t), before[t], obj=t)  # nothing changed on any day


def test_the_job_runs_its_steps_in_one_process_by_default():
    """Runs are the unit of parallelism: the daily job (and runs outside a job) execute their steps
    one after another in the run's process unless the run asks for the multiprocess executor."""
    from sigmasight_assets.defs import jobs
    from sigmasight_assets.definitions import defs

    assert jobs.executor_config(None) == {"in_process": {}}
    assert jobs.executor_config({"multiprocess": {"max_concurrent": 2}}) == {"multiprocess": {"max_concurrent": 2}}
    job = defs.resolve_job_def("daily_risk_graph")
    assert job.executor_def.name == "in_process_or_multiprocess"
    # the job's own tags: what Dagster gives the runs of a job backfill (and every other run of the job)
    assert jobs.SERIAL_TAG.items() <= dict(job.tags).items() and jobs.SERIAL_TAG.items() <= dict(job.run_tags).items()
