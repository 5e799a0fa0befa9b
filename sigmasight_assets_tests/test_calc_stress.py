"""Hand-computed tests of the stress engine (direct, correlated, caps, edge cases)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.stress import (
    CONTRIBUTOR_COLUMNS,
    EXPOSURE_BETAS,
    FACTOR_ETFS,
    RESULT_COLUMNS,
    compute_stress,
    conditional_factor_moves,
    exposure_moves,
    shocks_to_etf_returns,
)

D = pd.Timestamp("2024-03-01")


def pv_rows(rows, date=D):
    return pd.DataFrame(
        [
            dict(date=date, portfolio_id=p, position_id=pid, symbol=s, investment_class=c, quantity=1.0,
                 price=abs(mv), price_date=date, multiplier=1.0, market_value=mv, is_stale=False,
                 is_priced=not math.isnan(mv))
            for p, pid, s, c, mv in rows
        ]
    )


def betas_for(symbol, **given):
    """All eight stress betas of a symbol (0 unless given); ``None`` drops that factor."""
    rows = []
    for f in EXPOSURE_BETAS:
        v = given.get(f, 0.0)
        if v is not None:
            rows.append((symbol, f, v))
    return rows


def betas(*symbol_rows):
    return pd.DataFrame([r for rows in symbol_rows for r in rows], columns=["symbol", "factor", "beta"])


def cov_long(cov: np.ndarray, date=None) -> pd.DataFrame:
    sd = np.sqrt(np.diag(cov))
    rows = [
        (a, b, cov[i, j], cov[i, j] / (sd[i] * sd[j]))
        for i, a in enumerate(FACTOR_ETFS)
        for j, b in enumerate(FACTOR_ETFS)
    ]
    out = pd.DataFrame(rows, columns=["factor_1", "factor_2", "covariance", "correlation"])
    if date is not None:
        out.insert(0, "date", date)
    return out


def snaps(equity: dict[str, float], date=D):
    return pd.DataFrame({"date": date, "portfolio_id": list(equity), "equity": list(equity.values())})


def scenario(sid, shocks, active=True):
    return {"id": sid, "name": sid.replace("_", " "), "category": "test", "severity": "base",
            "shocks": shocks, "active": active}


DIAG_COV = np.diag(np.full(8, 1e-4))


def realistic_cov() -> np.ndarray:
    """A plausible 8×8 daily covariance: equity ETFs ~0.8–0.9 correlated, TLT slightly negative."""
    vol = np.array([0.010, 0.009, 0.010, 0.012, 0.012, 0.010, 0.013, 0.008])
    corr = np.full((8, 8), 0.8)
    corr[1, :] = corr[:, 1] = -0.2
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(vol, vol)


# ---------------------------------------------------------------------------------------------
# factor moves


def test_rate_shock_maps_to_negative_tlt_return():
    assert shocks_to_etf_returns({"Interest_Rate": 0.01}) == {"TLT": pytest.approx(-0.17)}
    assert shocks_to_etf_returns({"Interest_Rate": -0.0025}, duration=10)["TLT"] == pytest.approx(0.025)
    assert shocks_to_etf_returns({"Market": -0.1, "Low_Volatility": 0.05}) == {"SPY": -0.1, "USMV": 0.05}
    with pytest.raises(ValueError, match="unknown shock factor"):
        shocks_to_etf_returns({"Markt": 0.1})


def test_conditional_fill_matches_precision_matrix_and_simulation():
    labels = ["A", "B", "C"]
    sigma = np.array([[0.04, 0.018, -0.006], [0.018, 0.09, 0.012], [-0.006, 0.012, 0.0225]])
    cov = pd.DataFrame(sigma, index=labels, columns=labels)
    got = conditional_factor_moves({"A": -0.10}, cov)
    # Independent route 1: precision matrix. E[x_u | x_s] = −Λ_uu⁻¹ Λ_us x_s.
    lam = np.linalg.inv(sigma)
    u, s = [1, 2], [0]
    expect = -np.linalg.solve(lam[np.ix_(u, u)], lam[np.ix_(u, s)] @ np.array([-0.10]))
    assert got["A"] == -0.10
    assert [got["B"], got["C"]] == pytest.approx(expect.tolist(), rel=1e-12)
    # Independent route 2: regression of simulated draws of (B, C) on A (sampling error of the
    # slope × 0.1 is ~2.3e-4 here, so this is a coarse sanity check of route 1).
    draws = np.random.default_rng(11).multivariate_normal(np.zeros(3), sigma, size=400_000)
    coef = np.linalg.lstsq(draws[:, [0]], draws[:, 1:], rcond=None)[0]
    assert (np.array([-0.10]) @ coef).tolist() == pytest.approx(expect.tolist(), abs=1.5e-3)  # ~6 standard errors
    # two shocked factors
    got2 = conditional_factor_moves({"A": -0.10, "C": 0.02}, cov)
    expect2 = -(lam[1, [0, 2]] @ np.array([-0.10, 0.02])) / lam[1, 1]
    assert got2["B"] == pytest.approx(expect2, rel=1e-12)


def test_conditional_fill_without_shocks_is_zero_and_unlabelled_matrix_is_accepted():
    assert conditional_factor_moves({}, realistic_cov()) == {k: 0.0 for k in FACTOR_ETFS}
    full = conditional_factor_moves({"SPY": -0.1}, realistic_cov())
    assert list(full) == list(FACTOR_ETFS)
    assert full["VTV"] == pytest.approx(-0.1 * 0.8 * 0.010 / 0.010)  # β_VTV,SPY = ρ σ_V / σ_S
    assert full["TLT"] == pytest.approx(-0.1 * -0.2 * 0.009 / 0.010)


def test_exposure_moves_count_the_market_once():
    # direct: unshocked styles move with the market (excess 0); named style priced on its excess
    m = exposure_moves({"SPY": -0.05, "QUAL": 0.12}, direct=True)
    assert m.tolist() == pytest.approx([-0.05, 0.0, 0.0, 0.0, 0.0, 0.17, 0.0, 0.0])
    full = dict(zip(FACTOR_ETFS, [-0.1, 0.02, -0.09, -0.11, -0.1, -0.08, -0.12, -0.07]))
    m = exposure_moves(full)
    assert m.tolist() == pytest.approx([-0.1, 0.02, 0.01, -0.01, 0.0, 0.02, -0.02, 0.03])


# ---------------------------------------------------------------------------------------------
# portfolio stress


def run(pv, b, eq, cov=DIAG_COV, scns=None, **kw):
    scns = scns or [scenario("mkt_down_10", {"Market": -0.10}), scenario("rates_up_100bp", {"Interest_Rate": 0.01})]
    res, contrib = compute_stress(pv, b, snaps(eq), None if cov is None else cov_long(cov), scns, **kw)
    return res.set_index(["portfolio_id", "scenario_id"]), contrib


def test_output_columns():
    res, contrib = compute_stress(
        pv_rows([("P1", "a", "AAA", "PUBLIC", 1_000.0)]), betas(betas_for("AAA", market=1.0)),
        snaps({"P1": 1_000.0}), cov_long(DIAG_COV), [scenario("s", {"Market": 0.1})],
    )
    assert list(res.columns) == RESULT_COLUMNS and list(contrib.columns) == CONTRIBUTOR_COLUMNS


def test_rate_up_100bp_on_long_tlt_loses_17_percent():
    pv = pv_rows([("P1", "t", "TLT", "PUBLIC", 100_000.0)])
    res, _ = run(pv, betas(betas_for("TLT", ir=1.0)), {"P1": 100_000.0})
    r = res.loc[("P1", "rates_up_100bp")]
    assert r.direct_pnl == pytest.approx(-17_000)
    assert r.direct_pct_equity == pytest.approx(-0.17)
    # uncorrelated factors: nothing to fill, correlated == direct
    assert r.correlated_pnl == pytest.approx(-17_000) and r.correlation_effect == pytest.approx(0.0)


def test_market_down_10_with_beta_1_2_loses_12_percent():
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 100_000.0)])
    res, _ = run(pv, betas(betas_for("AAA", market=1.2, value=0.4, growth=-0.3)), {"P1": 200_000.0})
    r = res.loc[("P1", "mkt_down_10")]
    assert r.direct_pnl == pytest.approx(-12_000)  # style betas see no excess move in direct mode
    assert r.direct_pct_equity == pytest.approx(-0.06)
    assert (r.positions_covered, r.positions_missing_beta) == (1, 0)


def test_named_style_shock_with_market_uses_the_excess_move():
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 10_000.0)])
    scn = [scenario("quality_flight_12", {"Quality": 0.12, "Market": -0.05})]
    res, _ = run(pv, betas(betas_for("AAA", market=1.0, quality=0.5)), {"P1": 10_000.0}, scns=scn)
    assert res.loc[("P1", "quality_flight_12"), "direct_pnl"] == pytest.approx(10_000 * (-0.05 + 0.5 * 0.17))


def test_correlated_pnl_matches_explicit_computation():
    cov = realistic_cov()
    b = dict(market=1.1, ir=-0.2, value=0.3, growth=0.1, momentum=-0.2, quality=0.25, size=0.05, low_volatility=-0.1)
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 50_000.0), ("P1", "b", "BBB", "PUBLIC", -20_000.0)])
    bb = betas(betas_for("AAA", **b), betas_for("BBB", market=0.7, ir=0.3))
    res, _ = run(pv, bb, {"P1": 100_000.0}, cov=cov, scns=[scenario("liq", {"Market": -0.2, "Low_Volatility": -0.3})])
    # independent: Δ_u = Σ_us Σ_ss⁻¹ Δ_s with an explicit inverse, then the documented mapping
    s_idx, u_idx = [0, 7], [1, 2, 3, 4, 5, 6]
    full = np.zeros(8)
    full[s_idx] = [-0.2, -0.3]
    full[u_idx] = cov[np.ix_(u_idx, s_idx)] @ np.linalg.inv(cov[np.ix_(s_idx, s_idx)]) @ full[s_idx]
    moves = np.r_[full[0], full[1], full[2:] - full[0]]
    beta_a = np.array([b[f] for f in EXPOSURE_BETAS])
    beta_b = np.array([0.7, 0.3, 0, 0, 0, 0, 0, 0])
    expect = 50_000 * beta_a @ moves + -20_000 * beta_b @ moves
    direct_moves = np.array([-0.2, 0, 0, 0, 0, 0, 0, -0.3 + 0.2])
    expect_direct = 50_000 * beta_a @ direct_moves + -20_000 * beta_b @ direct_moves
    r = res.loc[("P1", "liq")]
    assert r.correlated_pnl == pytest.approx(expect, rel=1e-10)
    assert r.direct_pnl == pytest.approx(expect_direct, rel=1e-10)
    assert r.correlation_effect == pytest.approx(expect - expect_direct, rel=1e-9)


def test_long_loss_capped_at_value_short_uncapped():
    pv = pv_rows([("P1", "l", "LEV", "PUBLIC", 10_000.0), ("P2", "s", "LEV", "PUBLIC", -10_000.0)])
    scns = [scenario("crash", {"Market": -0.35}), scenario("rally", {"Market": 0.25})]
    res, _ = run(pv, betas(betas_for("LEV", market=5.0)), {"P1": 10_000.0, "P2": 30_000.0}, scns=scns)
    assert res.loc[("P1", "crash"), "direct_pnl"] == pytest.approx(-10_000)  # not −17,500
    assert res.loc[("P1", "crash"), "correlated_pnl"] == pytest.approx(-10_000)
    assert res.loc[("P2", "rally"), "direct_pnl"] == pytest.approx(-12_500)  # short: uncapped
    assert res.loc[("P2", "crash"), "direct_pnl"] == pytest.approx(17_500)


def test_cap_is_per_position_not_on_net():
    # long 10k (β 5) + short 10k (β 0.5): net exposure 0 must not collapse the cap
    pv = pv_rows([("P1", "l", "LEV", "PUBLIC", 10_000.0), ("P1", "s", "LOW", "PUBLIC", -10_000.0)])
    bb = betas(betas_for("LEV", market=5.0), betas_for("LOW", market=0.5))
    res, _ = run(pv, bb, {"P1": 20_000.0}, scns=[scenario("crash", {"Market": -0.35})])
    assert res.loc[("P1", "crash"), "direct_pnl"] == pytest.approx(-10_000 + 1_750)


def test_edge_portfolios_have_defined_rows():
    pv = pv_rows(
        [
            ("P2", "x", "PRIV_FUND", "PRIVATE", 50_000.0),  # no public positions
            ("P3", "c", "CCC", "PUBLIC", 5_000.0),  # all symbols missing betas
            ("P3", "o", "CCC240621C00010000", "OPTIONS", 1_000.0),  # options counted as missing
            ("P5", "a", "AAA", "PUBLIC", 5_000.0),  # partial betas: missing ir
        ]
    )
    bb = betas(betas_for("AAA", market=1.0, ir=None))
    res, contrib = run(pv, bb, {"P1": 1_000.0, "P2": 60_000.0, "P3": 6_000.0, "P5": 5_000.0})
    assert len(res) == 4 * 2
    for p, covered, missing in [("P1", 0, 0), ("P2", 0, 0), ("P3", 0, 2), ("P5", 0, 1)]:
        r = res.loc[(p, "mkt_down_10")]
        assert math.isnan(r.direct_pnl) and math.isnan(r.correlated_pnl) and math.isnan(r.direct_pct_equity)
        assert (r.positions_covered, r.positions_missing_beta) == (covered, missing)
        assert r.top_contributors == "[]"
    assert contrib.empty


def test_no_covariance_gives_nan_correlated_only():
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 100_000.0)])
    res, contrib = run(pv, betas(betas_for("AAA", market=1.2)), {"P1": 100_000.0}, cov=None)
    r = res.loc[("P1", "mkt_down_10")]
    assert r.direct_pnl == pytest.approx(-12_000)
    assert math.isnan(r.correlated_pnl) and math.isnan(r.correlation_effect)
    assert json.loads(r.top_contributors)[0]["pnl"] == pytest.approx(-12_000)  # ranked on direct


def test_covariance_for_another_day_is_not_used():
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 100_000.0)])
    cl = cov_long(DIAG_COV, date=pd.Timestamp("2024-02-29"))
    res, _ = compute_stress(pv, betas(betas_for("AAA", market=1.0)), snaps({"P1": 1.0}), cl,
                            [scenario("m", {"Market": -0.1})])
    assert math.isnan(res.iloc[0].correlated_pnl) and res.iloc[0].direct_pnl == pytest.approx(-10_000)


def test_top_contributors_json_and_long_frame():
    rows = [("P1", f"p{i}", f"S{i}", "PUBLIC", 1_000.0 * (i + 1)) for i in range(7)]
    bb = betas(*[betas_for(f"S{i}", market=1.0) for i in range(7)])
    res, contrib = run(pv_rows(rows), bb, {"P1": 50_000.0}, scns=[scenario("m", {"Market": -0.1})])
    top = json.loads(res.loc[("P1", "m"), "top_contributors"])
    assert [t["symbol"] for t in top] == ["S6", "S5", "S4", "S3", "S2"]
    assert top[0] == {"position_id": "p6", "symbol": "S6", "pnl": pytest.approx(-700.0)}
    assert list(contrib["rank"]) == [1, 2, 3, 4, 5]
    assert list(contrib["position_id"]) == ["p6", "p5", "p4", "p3", "p2"]
    assert contrib["correlated_pnl"].tolist() == pytest.approx([-700, -600, -500, -400, -300])


def test_inactive_scenarios_skipped_unless_requested():
    pv = pv_rows([("P1", "a", "AAA", "PUBLIC", 1_000.0)])
    scns = [scenario("on", {"Market": 0.1}), scenario("off", {"Market": -0.4}, active=False)]
    res, _ = run(pv, betas(betas_for("AAA", market=1.0)), {"P1": 1_000.0}, scns=scns)
    assert list(res.index.get_level_values("scenario_id")) == ["on"]
    res, _ = run(pv, betas(betas_for("AAA", market=1.0)), {"P1": 1_000.0}, scns=scns, include_inactive=True)
    assert set(res.index.get_level_values("scenario_id")) == {"on", "off"}


def test_legacy_scenario_set_runs():
    from sigmasight_assets.scenarios import load_scenarios

    sset = load_scenarios()
    pv = pv_rows([("P1", "t", "TLT", "PUBLIC", 100_000.0), ("P1", "a", "AAA", "PUBLIC", 100_000.0)])
    bb = betas(betas_for("TLT", ir=1.0), betas_for("AAA", market=1.0))
    res, _ = compute_stress(pv, bb, snaps({"P1": 200_000.0}), cov_long(realistic_cov()), sset,
                            duration=sset.rate_duration)
    assert len(res) == 19
    r = res.set_index("scenario_id")
    assert r.loc["rates_up_100bp", "direct_pnl"] == pytest.approx(-17_000)
    assert r.loc["rates_down_100bp", "direct_pnl"] == pytest.approx(17_000)
    assert r.loc["market_down_10", "direct_pnl"] == pytest.approx(-10_000)
    # market falls → TLT expected to rise a little (negative correlation) → correlated > direct
    assert r.loc["market_down_10", "correlation_effect"] > 0
