"""The portfolio analytics through Dagster (issue 4): ``portfolio_snapshots``, ``correlations``,
``aggregated_exposures``, ``stress_results``.

One ledger of six small books, written as CSV and loaded like ``load-portfolios``:

* ``P-HAND`` long 200 AAPL, short 100 MSFT, 3 AAPL calls (×100), a private fund at its manual value,
  a deposit, a weekend withdrawal and a mid-range deposit: snapshot, exposures and direct stress are
  recomputed here by plain arithmetic from the stored prices and betas;
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


def hand_equity(px: pd.DataFrame, day) -> float:
    flows = 500_000 - (10_000 if day >= pd.Timestamp("2026-03-14") else 0) + (25_000 if day >= pd.Timestamp("2026-03-18") else 0)
    cost = 200 * 150 + (-100) * 180 + 3 * 5.0 * 100 + 200_000
    mv = 200 * px.at[day, "AAPL"] - 100 * px.at[day, "MSFT"] + 300 * px.at[day, OPTION] + 250_000
    return flows - cost + mv


def scenarios(path=SCENARIO_FILE) -> list[dict]:
    return [s for s in yaml.safe_load(Path(path).read_text())["scenarios"] if s["active"]]


def direct_return(b: dict[str, float], shocks: dict[str, float]) -> float:
    """β_m·ΔSPY + β_ir·ΔTLT + Σ_k β_k·(Δ_k − ΔSPY) over the named shocks only (calc/stress.py mapping)."""
    moves = {SHOCK_ETF[k]: (-DURATION * v if k == "Interest_Rate" else v) for k, v in shocks.items()}
    spy = moves.get("SPY", 0.0)
    r = b["market"] * spy + b["ir"] * moves.get("TLT", 0.0)
    for etf, style in ETF_STYLE.items():
        if etf in moves:
            r += b[style] * (moves[etf] - spy)
    return r


def correlated_return(b: dict[str, float], shocks: dict[str, float], cov: pd.DataFrame) -> float:
    """Unshocked ETFs filled with Σ_us Σ_ss⁻¹ Δ_s, then the same mapping on every ETF."""
    moves = {SHOCK_ETF[k]: (-DURATION * v if k == "Interest_Rate" else v) for k, v in shocks.items()}
    s = [e for e in cov.index if e in moves]
    u = [e for e in cov.index if e not in moves]
    fill = cov.loc[u, s].to_numpy() @ np.linalg.solve(cov.loc[s, s].to_numpy(), np.array([moves[e] for e in s]))
    moves.update(dict(zip(u, fill)))
    r = b["market"] * moves["SPY"] + b["ir"] * moves["TLT"]
    for etf, style in ETF_STYLE.items():
        r += b[style] * (moves[etf] - moves["SPY"])
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
        cash = flows - (200 * 150 - 100 * 180 + 300 * 5.0 + 200_000)
        equity = hand_equity(px, day)
        prev_equity = hand_equity(px, PREV[day])
        flow_today = {pd.Timestamp("2026-03-16"): -10_000, pd.Timestamp("2026-03-18"): 25_000}.get(day, 0)
        pnl = equity - prev_equity - flow_today
        expect = {
            "cash": cash, "equity": cash + a + m + o + 250_000,
            "long_exposure": a + o + 250_000, "short_exposure": m, "gross_exposure": a - m + o + 250_000,
            "net_exposure": a + m + o + 250_000, "daily_pnl": pnl, "daily_return": pnl / prev_equity,
            "cumulative_flows": flows, "cumulative_pnl": equity - flows,
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
    scns = scenarios()
    day = RANGE[-1]
    mv = {"AAPL": 200 * px.at[day, "AAPL"], "MSFT": -100 * px.at[day, "MSFT"]}
    b = {s: betas_of(wh, day, s) for s in mv}
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
        top = json.loads(r["top_contributors"])
        assert {t["symbol"] for t in top} == {"AAPL", "MSFT"}
    # The rate shock is a TLT move of −17·Δy (no legacy sign error): +100bp moves TLT by −17 %.
    r = row(stress, portfolio_id="P-HAND", date=day, scenario_id="rates_up_100bp")
    ir_only = sum(v * b[s]["ir"] * (-0.17) for s, v in mv.items())
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
        # TLT's IR beta is 1 (itself), so +100bp is exactly −17 % of the position.
        assert betas_of(wh, day, "TLT")["ir"] == pytest.approx(1.0, abs=1e-12)
        assert up["direct_pnl"] < 0 < down["direct_pnl"]
        assert up["direct_pnl"] == pytest.approx(-0.17 * mv, rel=1e-9)
        assert up["correlated_pnl"] < 0


def test_beta_1_2_book_loses_12_percent_in_market_down_10(graph):
    """Direct P&L = −10 % × Σ MV·β̂_market, i.e. −10 % × 1.2 × equity for the levered SPY book.

    Exactly −12 % of equity on the entry day (MV = 1.2M, equity = 1.0M); on later days the ratio
    MV / (MV − 0.2M) drifts with SPY: a ±5 % SPY move keeps it within 1.2 ∓ 0.013, so the loss stays
    within 12 % ± 0.15 % (tolerance 0.002 of equity).
    """
    wh = graph["wh"]
    stress = wh.read("stress_results")
    expo = wh.read("aggregated_exposures")
    px = closes(wh, ["SPY"])
    for day in RANGE:
        r = row(stress, portfolio_id="P-BETA", date=day, scenario_id="market_down_10")
        m = row(expo, portfolio_id="P-BETA", date=day, factor="market")
        mv = SPY_QTY * px.at[day, "SPY"]
        equity = 1_000_000 - SPY_QTY * SPY_ENTRY + mv
        assert betas_of(wh, day, "SPY")["market"] == pytest.approx(1.0, abs=1e-12)
        assert m["exposure_value"] == pytest.approx(mv / equity, rel=1e-9)
        assert r["direct_pnl"] == pytest.approx(-0.10 * m["exposure_dollar"], rel=1e-9)
        assert r["direct_pct_equity"] == pytest.approx(-0.10 * m["exposure_value"], rel=1e-9)
        assert r["direct_pct_equity"] == pytest.approx(-0.12, abs=0.002)
        assert m["coverage"] == 1.0 and r["positions_covered"] == 1
    first = row(stress, portfolio_id="P-BETA", date=RANGE[0], scenario_id="market_down_10")
    assert first["direct_pnl"] == pytest.approx(-120_000, rel=1e-12)
    assert first["direct_pct_equity"] == pytest.approx(-0.12, rel=1e-12)
    # The legacy loss cap used net exposure; here the 35 % crash is simply 1.2 × 35 % of equity.
    crash = row(stress, portfolio_id="P-BETA", date=RANGE[0], scenario_id="market_crash_35")
    assert crash["direct_pct_equity"] == pytest.approx(-0.42, rel=1e-12)


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
        assert len(st) == 19
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
        assert st["direct_pnl"].isna().all() and st["correlated_pnl"].isna().all()
        assert (st["positions_covered"] == 0).all() and (st["positions_missing_beta"] == 1).all()
        s = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-NEW")
        assert s["equity"] == pytest.approx(22_500 - 500 * 45 + mv, rel=1e-12)


def test_cash_only_book_after_an_exit_and_a_deleted_row(graph):
    wh = graph["wh"]
    for day in RANGE:
        s = row(wh.read("portfolio_snapshots", day, day), portfolio_id="P-CASH")
        # 10,000 deposit − 10×100 bought + 10×95 sold; the deleted MSFT row never existed.
        assert (s["equity"], s["cash"], s["gross_exposure"], s["net_exposure"]) == (9_950, 9_950, 0, 0)
        assert (s["position_count"], s["long_count"], s["short_count"]) == (0, 0, 0)
        assert s["daily_pnl"] == 0 and s["daily_return"] == 0
        assert math.isnan(s["hhi"]) and math.isnan(s["effective_positions_hhi"])
        expo = wh.read("aggregated_exposures", day, day).query("portfolio_id == 'P-CASH'")
        assert len(expo) == 13 and expo["exposure_dollar"].isna().all() and expo["coverage"].isna().all()
        st = wh.read("stress_results", day, day).query("portfolio_id == 'P-CASH'")
        assert len(st) == 19 and st["direct_pnl"].isna().all() and (st["positions_covered"] == 0).all()
        assert row(wh.read("correlations", day, day), portfolio_id="P-CASH")["n_symbols"] == 0


# -- scenarios ---------------------------------------------------------------------------------------
def test_every_active_scenario_has_a_row_for_every_portfolio_day(graph):
    stress = graph["wh"].read("stress_results")
    active = {s["id"] for s in scenarios()}
    assert len(active) == 19
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
    assert (stress[stress["date"] == day].groupby("portfolio_id").size() == 20).all()
    assert (stress[stress["date"] != day].groupby(["date", "portfolio_id"]).size() == 19).all()
    # Priced like any other scenario.
    px = closes(wh, ["AAPL", "MSFT"])
    mv = {"AAPL": 200 * px.at[day, "AAPL"], "MSFT": -100 * px.at[day, "MSFT"]}
    shocks = data["scenarios"][-1]["shocks"]
    want = sum(v * direct_return(betas_of(wh, day, s), shocks) for s, v in mv.items())
    assert row(new, portfolio_id="P-HAND")["direct_pnl"] == pytest.approx(want, rel=1e-9)
    assert check_outcomes(result)[("stress_results", "every_active_scenario")]


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
    sess = calendar.sessions_back(day, 91)
    px = wh.read("prices", sess[0], day, keys=["AAPL", "MSFT"], columns=["date", "symbol", "adj_close"])
    lr = np.log(px.pivot(index="date", columns="symbol", values="adj_close").reindex(sess)).diff().iloc[1:]
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
